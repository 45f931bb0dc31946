"""The job spec, its validation and the client's signature over it (protocol/spec.py)."""

from __future__ import annotations

import base64
import copy
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.spec import (
    InlineInput,
    JobSpec,
    ObjectInput,
    ObjectOutput,
    SpecError,
    UrlInput,
    UrlOutput,
    new_job_id,
    parse_spec,
    sign_job,
    verify_job,
)

CLIENT = Keypair.generate()
SPEC: dict[str, Any] = {
    "command": ["python", "-c", "print(1)"],
    "env": {"MODE": "fast"},
    "timing": {"execution": 12.5},
    "limits": {"memory_mb": 256},
    "streaming": True,
    "max_attempts": 3,
}


def flip_char(text: str, index: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ 0x01) + text[index + 1 :]


def flip_byte(hex_value: str, index: int) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[index] ^= 0x01
    return raw.hex()


def tampered_specs(value: Any) -> Iterator[Any]:
    """Each variant of ``value`` with one change: a character of a key or string, a number, a bool."""
    if isinstance(value, dict):
        for key, item in value.items():
            for variant in tampered_specs(item):
                yield {**value, key: variant}
            for index in range(len(key)):
                yield {(flip_char(k, index) if k == key else k): v for k, v in value.items()}
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for variant in tampered_specs(item):
                yield [*value[:index], variant, *value[index + 1 :]]
    elif isinstance(value, bool):
        yield not value
    elif isinstance(value, str):
        for index in range(len(value)):
            yield flip_char(value, index)
    elif isinstance(value, int | float):
        yield value + 1


def field_errors(raw: Any) -> list[dict[str, Any]]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert info.value.code == "invalid_spec"
    return info.value.errors


# parse_spec


def test_minimal_spec_gets_every_default() -> None:
    """A spec with only a command validates and gets the documented defaults."""
    spec = parse_spec({"command": ["true"]})
    assert spec.executor_class == "cpu.small"
    assert spec.timing.execution == 60.0
    assert spec.limits.memory_mb == 512
    assert spec.max_attempts == 2
    assert spec.inputs == [] and spec.env == {} and spec.streaming is False


def test_spec_that_is_not_an_object_is_refused() -> None:
    """A non-dict spec raises SpecError invalid_spec with no field list."""
    with pytest.raises(SpecError) as info:
        parse_spec(["true"])
    assert info.value.code == "invalid_spec"
    assert info.value.message == "spec must be a JSON object"
    assert info.value.errors == []


def test_every_field_error_is_listed_with_its_field_path() -> None:
    """All problems come back at once as {field, message} with dotted paths."""
    errors = field_errors(
        {
            "command": [],
            "executor_class": "CPU!",
            "limits": {"memory_mb": 1},
            "timing": {"execution": 0},
            "max_attempts": 11,
            "bogus": 1,
        }
    )
    assert {e["field"] for e in errors} == {
        "command",
        "executor_class",
        "limits.memory_mb",
        "timing.execution",
        "max_attempts",
        "bogus",
    }
    by_field = {e["field"]: e["message"] for e in errors}
    assert by_field["bogus"] == "Extra inputs are not permitted"
    assert by_field["limits.memory_mb"] == "Input should be greater than or equal to 16"
    assert all(set(e) == {"field", "message"} for e in errors)


def test_error_message_summarises_the_field_errors() -> None:
    """SpecError's message names each failing field."""
    with pytest.raises(SpecError) as info:
        parse_spec({"command": []})
    assert info.value.message == "invalid spec: command: List should have at least 1 item after validation, not 0"


def test_missing_command_is_a_field_error() -> None:
    """The command is required."""
    assert field_errors({}) == [{"field": "command", "message": "Field required"}]


@pytest.mark.parametrize("name", ["GRID_JOB_ID", "GRID_ANYTHING", "PORT"])
def test_reserved_env_names_are_refused(name: str) -> None:
    """Names of the job contract (GRID_*, PORT) cannot be set by the client."""
    errors = field_errors({"command": ["true"], "env": {name: "x", "OK": "y"}})
    assert errors == [{"field": "env", "message": f"Value error, reserved variable names: {name}"}]


def test_all_reserved_env_names_are_listed_sorted() -> None:
    """Several reserved names are reported together, sorted."""
    errors = field_errors({"command": ["true"], "env": {"PORT": "1", "GRID_B": "2", "GRID_A": "3"}})
    assert errors[0]["message"] == "Value error, reserved variable names: GRID_A, GRID_B, PORT"


@pytest.mark.parametrize("name", ["grid_lower", "PORTS", "MY_GRID_X", "_PORT"])
def test_names_that_only_resemble_reserved_ones_are_allowed(name: str) -> None:
    """Only the exact GRID_ prefix and PORT are reserved."""
    assert name in parse_spec({"command": ["true"], "env": {name: "x"}}).env


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", ""])
def test_env_names_that_are_not_identifiers_are_refused(name: str) -> None:
    """Variable names must look like shell identifiers."""
    errors = field_errors({"command": ["true"], "env": {name: "x"}})
    assert errors[0]["field"] == f"env.{name}.[key]"


def _inline(path: str, content_b64: str = "aGk=") -> dict[str, Any]:
    return {"command": ["true"], "inputs": [{"kind": "inline", "path": path, "content_b64": content_b64}]}


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", "a/../b", "./a", "a/.", "a/", "..", "."])
def test_inline_input_path_that_could_escape_or_is_ambiguous_is_refused(path: str) -> None:
    """Absolute paths, '..', '.' and empty parts are refused on the input's path field."""
    errors = field_errors(_inline(path))
    assert errors == [
        {
            "field": "inputs.0.inline.path",
            "message": "Value error, must be a relative path without '.', '..' or empty parts",
        }
    ]


@pytest.mark.parametrize("path", ["a", "data/in.txt", "a/b/c.bin", "..a", "a..", ".hidden"])
def test_inline_input_relative_paths_are_accepted(path: str) -> None:
    """Plain relative paths, including dotted names that are not '.' or '..', validate."""
    assert parse_spec(_inline(path)).inputs[0].path == path


@pytest.mark.parametrize("content", ["!!!!", "aGk", "aGk=\n", "aGk= ", "é"])
def test_inline_input_with_invalid_base64_is_refused(content: str) -> None:
    """Content must be strict base64: no bad characters, padding required, no whitespace."""
    errors = field_errors(_inline("a", content))
    assert errors == [{"field": "inputs.0.inline.content_b64", "message": "Value error, is not valid base64"}]


def test_inline_input_from_bytes_encodes_the_content() -> None:
    """InlineInput.from_bytes base64-encodes the data."""
    item = InlineInput.from_bytes("x/y.bin", b"\x00\xffhello")
    assert item.kind == "inline"
    assert item.content_b64 == "AP9oZWxsbw=="


def test_unknown_input_kind_is_refused() -> None:
    """Inputs are a tagged union on 'kind'; an unknown kind is a field error."""
    errors = field_errors({"command": ["true"], "inputs": [{"kind": "ftp", "path": "a", "content_b64": ""}]})
    assert errors[0]["field"] == "inputs.0"


def test_spec_is_immutable() -> None:
    """A validated spec cannot be changed in place (it is what the client signed)."""
    spec = parse_spec({"command": ["true"]})
    with pytest.raises(ValueError):
        spec.command = ["false"]  # type: ignore[misc]


# to_wire


def test_to_wire_omits_every_default() -> None:
    """to_wire() keeps only what differs from the defaults, nested blocks included."""
    spec = JobSpec(command=["true"], timing={"execution": 0.5}, limits={"pids": 8})
    assert spec.to_wire() == {"command": ["true"], "timing": {"execution": 0.5}, "limits": {"pids": 8}}


def test_to_wire_of_a_spec_without_inputs_parses_back_equal() -> None:
    """The wire dict of a spec validates back to an equal spec."""
    spec = JobSpec(
        command=["a", "b"],
        env={"A": "1"},
        timing={"execution": 0.5},
        streaming=True,
        streaming_public_key=CLIENT.hotkey,
        max_attempts=4,
    )
    assert parse_spec(spec.to_wire()) == spec


def test_a_streaming_job_needs_its_streaming_key_and_only_it_has_one() -> None:
    assert field_errors({"command": ["a"], "streaming": True})[0]["field"] == "streaming_public_key"
    assert "the SDK makes one" in field_errors({"command": ["a"], "streaming": True})[0]["message"]
    assert field_errors({"command": ["a"], "streaming_public_key": CLIENT.hotkey})[0]["field"] == "spec"
    assert field_errors({"command": ["a"], "streaming": True, "streaming_public_key": "XY"})[0]["field"] == (
        "streaming_public_key"
    )


def test_to_wire_of_a_spec_with_inline_inputs_parses_back_equal() -> None:
    """The SDK sends spec.to_wire(); a spec with inline inputs must survive that trip."""
    spec = JobSpec(command=["cat", "a.txt"], inputs=[InlineInput.from_bytes("a.txt", b"hi")])
    assert parse_spec(spec.to_wire()) == spec


# sign_job / verify_job


def test_job_signature_verifies_for_the_same_job_and_spec() -> None:
    """verify_job accepts the client's signature over exactly this job id and spec."""
    job_id = new_job_id()
    verify_job(CLIENT.hotkey, job_id, copy.deepcopy(SPEC), sign_job(CLIENT, job_id, SPEC))


def test_new_job_ids_are_distinct_uuids() -> None:
    """Each new job id is a fresh UUID."""
    first, second = new_job_id(), new_job_id()
    assert first != second
    assert str(uuid.UUID(first)) == first


def test_job_signature_with_any_byte_flipped_is_refused() -> None:
    """Flipping any byte of the job signature raises SignatureError bad_signature."""
    job_id = new_job_id()
    signature = sign_job(CLIENT, job_id, SPEC)
    for index in range(64):
        with pytest.raises(SignatureError) as info:
            verify_job(CLIENT.hotkey, job_id, SPEC, flip_byte(signature, index))
        assert info.value.code == "bad_signature", index


def test_job_signature_over_a_job_id_with_any_character_flipped_is_refused() -> None:
    """The signature binds the job id: changing any character of it is refused."""
    job_id = new_job_id()
    signature = sign_job(CLIENT, job_id, SPEC)
    for index in range(len(job_id)):
        with pytest.raises(SignatureError) as info:
            verify_job(CLIENT.hotkey, flip_char(job_id, index), SPEC, signature)
        assert info.value.code == "bad_signature", index


def test_job_signature_over_a_spec_with_any_value_altered_is_refused() -> None:
    """Every key, every character of every string, every number and every flag of the spec is signed."""
    job_id = new_job_id()
    signature = sign_job(CLIENT, job_id, SPEC)
    variants = list(tampered_specs(SPEC))
    assert len(variants) == 89
    for variant in variants:
        with pytest.raises(SignatureError) as info:
            verify_job(CLIENT.hotkey, job_id, variant, signature)
        assert info.value.code == "bad_signature", variant


@pytest.mark.parametrize(
    "change",
    [
        lambda spec: spec.update(extra_default=None),
        lambda spec: spec.pop("env"),
        lambda spec: spec.update(max_attempts=3.0 + 1e-9),
        lambda spec: spec["command"].append(""),
    ],
    ids=["added key", "removed key", "changed number", "added argument"],
)
def test_job_signature_over_a_structurally_altered_spec_is_refused(change: Any) -> None:
    """Adding, removing or extending anything in the signed spec breaks the signature."""
    job_id = new_job_id()
    signature = sign_job(CLIENT, job_id, SPEC)
    altered = copy.deepcopy(SPEC)
    change(altered)
    with pytest.raises(SignatureError):
        verify_job(CLIENT.hotkey, job_id, altered, signature)


def test_job_signature_under_a_hotkey_with_any_byte_flipped_is_refused() -> None:
    """The job signature verifies only under the signing client's hotkey."""
    job_id = new_job_id()
    signature = sign_job(CLIENT, job_id, SPEC)
    for index in range(32):
        with pytest.raises(SignatureError) as info:
            verify_job(flip_byte(CLIENT.hotkey, index), job_id, SPEC, signature)
        assert info.value.code == "bad_signature", index


def test_job_signature_is_not_a_signature_for_another_purpose() -> None:
    """Domain separation: a signature over the same payload for another purpose is refused as a job signature."""
    job_id = new_job_id()
    payload = {"job_id": job_id, "spec": SPEC}
    for purpose in ("request", "ws-auth-client", "ws-auth-server", "job-spec-v2"):
        with pytest.raises(SignatureError):
            verify_job(CLIENT.hotkey, job_id, SPEC, CLIENT.sign(purpose, payload))


# -- url and object inputs, outputs ----------------------------------------------------------------

SHA = "ab" * 32


def spec_with(**fields: Any) -> dict[str, Any]:
    return {"command": ["true"], **fields}


def error_fields(raw: dict[str, Any]) -> list[str]:
    return [error["field"] for error in field_errors(raw)]


def test_every_input_and_output_kind_round_trips_through_the_wire() -> None:
    spec = JobSpec(
        command=["true"],
        inputs=[
            InlineInput.from_bytes("a.txt", b"a"),
            UrlInput(path="b.bin", url="https://example.org/b.bin", sha256=SHA),
            UrlInput(path="tree", url="http://example.org/t.zip", unpack=True),
            ObjectInput(path="c.csv", key="uploads/k/1/c.csv"),
        ],
        outputs=[
            ObjectOutput(path="out.txt"),
            UrlOutput(path="r.pdf", url="https://bucket.example/put?sig=1"),
            UrlOutput(path="f.bin", url="https://bucket.example/", method="POST", fields={"key": "f.bin"}),
        ],
        artifacts_dir="artifacts",
    )
    wire = spec.to_wire()
    assert [item["kind"] for item in wire["inputs"]] == ["inline", "url", "url", "object"]
    assert [item["kind"] for item in wire["outputs"]] == ["object", "url", "url"]
    assert parse_spec(wire) == spec


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/x",
        "file:///etc/passwd",
        "example.org/x",
        "http://",
        "http:///path",
        "https://a b/",
        "gopher://x",
    ],
)
def test_input_and_output_urls_must_be_http_with_a_host(url: str) -> None:
    assert error_fields(spec_with(inputs=[{"kind": "url", "path": "x", "url": url}])) == ["inputs.0.url.url"]
    assert error_fields(spec_with(outputs=[{"kind": "url", "path": "x", "url": url}])) == ["outputs.0.url.url"]


@pytest.mark.parametrize("digest", ["AB" * 32, "ab" * 31, "zz" * 32, ""])
def test_input_digests_are_lowercase_hex_sha256(digest: str) -> None:
    raw = spec_with(inputs=[{"kind": "object", "path": "x", "key": "k", "sha256": digest}])
    assert error_fields(raw) == ["inputs.0.object.sha256"]


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", "a/./b", ""])
def test_output_paths_and_artifacts_dir_cannot_escape(path: str) -> None:
    assert error_fields(spec_with(outputs=[{"kind": "object", "path": path}])) == ["outputs.0.object.path"]
    assert error_fields(spec_with(artifacts_dir=path)) == ["artifacts_dir"]


def test_two_outputs_with_one_path_are_refused() -> None:
    raw = spec_with(outputs=[{"kind": "object", "path": "o"}, {"kind": "url", "path": "o", "url": "https://x.org/"}])
    assert error_fields(raw) == ["outputs"]


def test_form_fields_go_with_post_only() -> None:
    raw = spec_with(outputs=[{"kind": "url", "path": "o", "url": "https://x.org/", "fields": {"a": "b"}}])
    assert error_fields(raw) == ["outputs.0.url"]


def test_an_input_inside_an_unpacked_or_plain_file_input_is_refused() -> None:
    raw = spec_with(
        inputs=[
            {"kind": "url", "path": "tree", "url": "https://x.org/t.zip", "unpack": True},
            {"kind": "inline", "path": "tree/extra.txt", "content_b64": ""},
        ]
    )
    assert error_fields(raw) == ["inputs"]


def test_a_client_signature_covers_the_outputs() -> None:
    """A hop redirecting an output to a URL of its own breaks the client's signature."""
    raw = spec_with(outputs=[{"kind": "url", "path": "o", "url": "https://client.example/put"}])
    job_id = new_job_id()
    signature = sign_job(CLIENT, job_id, raw)
    altered = copy.deepcopy(raw)
    altered["outputs"][0]["url"] = "https://attacker.example/put"
    with pytest.raises(SignatureError):
        verify_job(CLIENT.hotkey, job_id, altered, signature)


# -- the schema's patterns say what the validators do ----------------------------------------------

_PATH_CHARS = st.sampled_from(["a", ".", "/", "\x00", "é", " ", "-"])
_URL_CHARS = st.sampled_from(["h", "t", "p", "s", "H", ":", "/", ".", " ", "\x00", "\x7f", "a", "?"])
_B64_CHARS = st.sampled_from(["A", "z", "0", "+", "/", "=", " ", "-", "\n"])


def _accepts(validator: Any, value: str) -> bool:
    try:
        validator(value)
    except ValueError:
        return False
    return True


@given(st.text(_PATH_CHARS, max_size=12))
def test_the_relative_path_pattern_is_the_validator(value: str) -> None:
    from protocol.spec import RELATIVE_PATH_PATTERN, _relative_path

    accepted = bool(value) and _accepts(_relative_path, value)
    assert bool(re.fullmatch(RELATIVE_PATH_PATTERN, value)) == accepted, value


@given(st.one_of(st.text(_URL_CHARS, max_size=14), st.from_regex(r"https?://[a-z./ ]{0,6}", fullmatch=True)))
def test_the_http_url_pattern_is_the_validator(value: str) -> None:
    from protocol.spec import HTTP_URL_PATTERN, _http_url

    assert bool(re.fullmatch(HTTP_URL_PATTERN, value)) == _accepts(_http_url, value), value


@given(st.text(_B64_CHARS, max_size=12))
def test_the_base64_pattern_is_the_validator(value: str) -> None:
    from protocol.spec import BASE64_PATTERN, InlineInput

    accepted = _accepts(lambda text: InlineInput(path="a", content_b64=text), value)
    assert bool(re.fullmatch(BASE64_PATTERN, value)) == accepted, value
    if accepted:
        base64.b64decode(value, validate=True)  # and what the schema admits decodes
