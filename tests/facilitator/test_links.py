"""The store's key scheme, object-input ownership and a job's signed links (facilitator/links.py)."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client, override_settings
from hypothesis import given
from hypothesis import strategies as st

from facilitator import jobs, links
from facilitator.links import FILENAME_PATTERN, InputError, check_filename, check_object_inputs, links_for
from facilitator.models import Job
from facilitator.storage import ObjectStore, get_store
from facilitator.storage.base import MAX_URL_EXPIRY_S
from protocol.messages import FACILITATOR_TO_VALIDATOR, JobNew, parse_frame
from protocol.spec import JobSpec, JobTiming, ObjectInput, ObjectOutput, SpecError, UrlInput, UrlOutput

from .conftest import CLIENT, OTHER_CLIENT, create_job, signed_job

pytestmark = pytest.mark.django_db

DATA = b"some input bytes\n"
DATA_SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store() -> Iterator[ObjectStore]:
    """A fresh in-memory store per test, its URLs served at ``/objects/`` as in production."""
    options = {"secret": "links-test-secret"}
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "memory", "OPTIONS": options}}):
        yield get_store()


def uploaded(store: ObjectStore, client_hotkey: str = CLIENT.hotkey, data: bytes = DATA) -> str:
    key = links.upload_key(client_hotkey, "data.bin")
    store.put(key, data)
    return key


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


# -- keys ------------------------------------------------------------------------------------------


def test_upload_keys_are_fresh_and_under_the_clients_hotkey() -> None:
    first, second = links.upload_key(CLIENT.hotkey, "a.txt"), links.upload_key(CLIENT.hotkey, "a.txt")
    prefix, hotkey, nonce, filename = first.split("/")
    assert (prefix, hotkey, filename) == ("uploads", CLIENT.hotkey, "a.txt")
    assert uuid.UUID(hex=nonce).hex == nonce
    assert first != second


def test_job_keys_follow_the_scheme() -> None:
    job_id = uuid.uuid4()
    assert links.output_key(job_id, "dir/out.csv") == f"jobs/{job_id}/outputs/dir/out.csv"
    assert links.log_key(job_id, "stdout") == f"jobs/{job_id}/logs/stdout"
    assert links.log_key(job_id, "stderr") == f"jobs/{job_id}/logs/stderr"
    with pytest.raises(ValueError, match="not 'stdin'"):
        links.log_key(job_id, "stdin")


@pytest.mark.parametrize("filename", ["a.txt", "x" * 200, "with space.tar.gz", "données.csv", ".hidden"])
def test_check_filename_accepts_one_path_segment(filename: str) -> None:
    assert links.check_filename(filename) == filename


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("", "cannot be empty"),
        ("x" * 201, "at most 200 characters"),
        ("a/b", "without '/'"),
        ("a\\b", "without '/'"),
        ("..", "cannot be '.' or '..'"),
        (".", "cannot be '.' or '..'"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        ("a\x7fb", "control characters"),
    ],
)
def test_check_filename_refuses_anything_else(filename: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        links.check_filename(filename)
    with pytest.raises(ValueError):
        links.upload_key(CLIENT.hotkey, filename)


def test_owns_key_accepts_the_clients_uploads_and_its_own_jobs_files() -> None:
    own, other = create_job(), create_job(OTHER_CLIENT)
    assert links.owns_key(CLIENT.hotkey, f"uploads/{CLIENT.hotkey}/abc/data.bin")
    assert links.owns_key(CLIENT.hotkey, f"jobs/{own.id}/outputs/out.csv")
    assert links.owns_key(CLIENT.hotkey, f"jobs/{own.id}/logs/stdout")
    assert not links.owns_key(CLIENT.hotkey, f"uploads/{OTHER_CLIENT.hotkey}/abc/data.bin")
    assert not links.owns_key(CLIENT.hotkey, f"jobs/{other.id}/outputs/out.csv")
    assert not links.owns_key(CLIENT.hotkey, f"jobs/{uuid.uuid4()}/outputs/out.csv")


@pytest.mark.parametrize(
    "key",
    [
        "uploads/{hotkey}",  # the client's folder itself
        "uploads/{hotkey}/../x/y",
        "uploads/{hotkey}//y",
        "uploads",
        "elsewhere/{hotkey}/x/y",
        "jobs/not-a-uuid/outputs/x",
        "jobs/{upper}/outputs/x",  # the same job, spelled another way: not its key
        "{hotkey}/uploads/x/y",
    ],
)
def test_owns_key_refuses_keys_outside_the_scheme(key: str) -> None:
    job = create_job()
    key = key.format(hotkey=CLIENT.hotkey, upper=str(job.id).upper())
    assert not links.owns_key(CLIENT.hotkey, key)


# -- object inputs ---------------------------------------------------------------------------------


def spec_with(*inputs: Any) -> JobSpec:
    return JobSpec(command=["true"], inputs=list(inputs))


def test_check_object_inputs_accepts_own_uploads_and_own_jobs_outputs(store: ObjectStore) -> None:
    earlier = create_job()
    store.put(links.output_key(earlier.id, "result.csv"), b"1,2\n")
    spec = spec_with(
        ObjectInput(path="a.bin", key=uploaded(store), sha256=DATA_SHA),
        ObjectInput(path="b.csv", key=links.output_key(earlier.id, "result.csv")),
        UrlInput(path="c", url="https://example.org/c"),
    )
    check_object_inputs(CLIENT.hotkey, spec)


def test_another_clients_object_and_a_missing_one_get_the_same_answer(store: ObjectStore) -> None:
    """Nothing tells a client whether a key it does not own exists."""
    theirs = uploaded(store, OTHER_CLIENT.hotkey)
    missing = theirs.replace(OTHER_CLIENT.hotkey, CLIENT.hotkey)
    answers = []
    for key in (theirs, missing, theirs.replace(OTHER_CLIENT.hotkey, "f" * 64)):
        with pytest.raises(InputError) as info:
            check_object_inputs(CLIENT.hotkey, spec_with(ObjectInput(path="in/data.bin", key=key)))
        [error] = info.value.errors
        answers.append(error["message"].replace(key, "KEY"))
        assert error["field"] == "inputs.0.key"
        assert info.value.code == "invalid_input"
    assert set(answers) == {"input 'in/data.bin': no object 'KEY' of yours in the store"}


def test_another_clients_job_output_is_not_an_input(store: ObjectStore) -> None:
    theirs = create_job(OTHER_CLIENT)
    key = links.output_key(theirs.id, "secret.csv")
    store.put(key, b"theirs")
    with pytest.raises(InputError, match=r"no object .* of yours"):
        check_object_inputs(CLIENT.hotkey, spec_with(ObjectInput(path="x", key=key)))


def test_the_sha256_of_an_input_is_left_to_the_executor(store: ObjectStore) -> None:
    """Checking it here could mean reading the whole object (S3 objects uploaded by URL have no digest)."""
    key = uploaded(store)
    with mock.patch.object(type(store), "stat", side_effect=AssertionError("read the object")):
        check_object_inputs(CLIENT.hotkey, spec_with(ObjectInput(path="x", key=key, sha256="0" * 64)))


def test_check_object_inputs_lists_every_bad_input_with_its_index(store: ObjectStore) -> None:
    good = uploaded(store)
    spec = spec_with(
        ObjectInput(path="ok", key=good),
        ObjectInput(path="bad1", key="uploads/nobody/x/y"),
        UrlInput(path="url", url="https://example.org/"),
        ObjectInput(path="bad2", key="a//b"),
    )
    with pytest.raises(InputError) as info:
        check_object_inputs(CLIENT.hotkey, spec)
    assert [error["field"] for error in info.value.errors] == ["inputs.1.key", "inputs.3.key"]
    assert info.value.errors[1]["message"] == "input 'bad2': 'a//b' is not a valid object key"
    assert str(info.value).startswith("invalid input: input 'bad1': no object")
    assert isinstance(info.value, SpecError)


def test_only_owned_keys_are_looked_up_in_the_store(store: ObjectStore) -> None:
    theirs = uploaded(store, OTHER_CLIENT.hotkey)
    with mock.patch.object(type(store), "exists", side_effect=AssertionError("looked up")), pytest.raises(InputError):
        check_object_inputs(CLIENT.hotkey, spec_with(ObjectInput(path="x", key=theirs)))


def test_create_job_refuses_an_object_input_that_is_not_the_clients(store: ObjectStore) -> None:
    body = signed_job(inputs=[ObjectInput(path="x", key=uploaded(store, OTHER_CLIENT.hotkey))])
    with pytest.raises(InputError):
        jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    assert not Job.objects.exists()


def test_create_job_accepts_the_clients_own_object(store: ObjectStore) -> None:
    body = signed_job(inputs=[ObjectInput(path="x", key=uploaded(store))])
    job, created = jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    assert created and job.spec["inputs"][0]["key"].startswith(f"uploads/{CLIENT.hotkey}/")


# -- links -----------------------------------------------------------------------------------------


def test_links_sign_a_get_per_object_input_and_a_put_per_object_output_and_log(store: ObjectStore) -> None:
    key = uploaded(store)
    job = create_job(
        inputs=[ObjectInput(path="in/a.bin", key=key), UrlInput(path="u", url="https://example.org/u")],
        outputs=[ObjectOutput(path="out/r.csv"), UrlOutput(path="mine", url="https://example.org/put")],
    )
    made = links_for(job)
    assert {path: link.key for path, link in made.inputs.items()} == {"in/a.bin": key}
    assert {path: link.key for path, link in made.outputs.items()} == {"out/r.csv": f"jobs/{job.id}/outputs/out/r.csv"}
    assert made.stdout is not None and made.stdout.key == f"jobs/{job.id}/logs/stdout"
    assert made.stderr is not None and made.stderr.key == f"jobs/{job.id}/logs/stderr"
    http = Client()
    # The GET link reads the input; the PUT links write exactly their keys.
    response = http.get(made.inputs["in/a.bin"].url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == DATA
    for link, data in ((made.outputs["out/r.csv"], b"1,2\n"), (made.stdout, b"hello\n")):
        response = http.put(link.url, data, content_type="application/octet-stream")
        assert response.status_code == 200, response.content
        assert response.json() == {"key": link.key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert store.read(link.key) == data


def test_a_link_grants_only_its_method(store: ObjectStore) -> None:
    job = create_job(inputs=[ObjectInput(path="a", key=uploaded(store))], outputs=[ObjectOutput(path="o")])
    made = links_for(job)
    http = Client()
    assert http.put(made.inputs["a"].url, b"overwrite", content_type="application/octet-stream").status_code == 403
    assert store.read(made.inputs["a"].key) == DATA
    assert http.get(made.outputs["o"].url).status_code == 403


def test_links_live_for_the_queue_every_stage_of_every_attempt_and_a_margin(store: ObjectStore) -> None:
    timing = JobTiming(reservation=1, executor_start=2, download=3, execution=4, upload=5, streaming_start=6)
    spec = JobSpec(command=["true"], timing=timing, max_attempts=3)
    with override_settings(FACILITATOR_QUEUE_WAIT_S=100):
        assert links.link_expiry_s(spec) == 100 + 21 * 3 + 15 * 60
        job = create_job(timing=timing, max_attempts=3)
        before = int(time.time())  # links_for counts from whole seconds too
        made = links_for(job)
    expires = int(query(made.stdout.url)["expires"])
    assert before + 100 + 63 + 900 <= expires <= before + 100 + 63 + 900 + 61
    assert expires % 60 == 0


def test_link_expiry_is_capped_at_the_stores_limit() -> None:
    timing = JobTiming(execution=86400, download=3600, upload=3600, executor_start=3600)
    spec = JobSpec(command=["true"], timing=timing, max_attempts=10)
    assert links.link_expiry_s(spec) == MAX_URL_EXPIRY_S


def test_the_same_job_gets_the_same_links_within_a_minute(store: ObjectStore) -> None:
    """A job re-sent to its validator carries identical frames (expiries are rounded up to the minute)."""
    job = create_job(outputs=[ObjectOutput(path="o")])
    start = 1_800_000_000 - links.link_expiry_s(JobSpec.model_validate(job.spec)) + 1  # expires just past a minute
    made = []
    for now in (start, start + 30, start + 59, start + 60):
        with mock.patch("time.time", return_value=float(now)):
            made.append(links_for(job))
    assert made[0] == made[1] == made[2] != made[3]
    assert query(made[0].stdout.url)["expires"] == "1800000060"


def test_job_new_message_carries_the_links_beside_the_unchanged_signed_spec(store: ObjectStore) -> None:
    key = uploaded(store)
    job = create_job(inputs=[ObjectInput(path="a", key=key)], outputs=[ObjectOutput(path="o")])
    message = parse_frame(jobs.job_new_message(job).encode(), FACILITATOR_TO_VALIDATOR)
    assert isinstance(message, JobNew)
    assert message.spec == job.spec
    assert message.context.links.inputs["a"].key == key
    assert message.context.links.outputs["o"].key == f"jobs/{job.id}/outputs/o"
    assert message.context.links.stdout is not None and message.context.links.stderr is not None


def test_links_follow_an_absolute_storage_url() -> None:
    options = {"secret": "s", "base_url": "http://grid.example:8000/objects/"}
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "memory", "OPTIONS": options}}):
        made = links_for(create_job())
    assert made.stdout is not None
    assert made.stdout.url.startswith("http://grid.example:8000/objects/jobs/")


def test_a_job_redelivered_again_and_again_is_parsed_only_at_intake(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redelivery signs fresh links from the plan kept at intake: the stored spec is not parsed again."""
    job = create_job(inputs=[ObjectInput(path="in.bin", key=uploaded(store))], outputs=[ObjectOutput(path="out.txt")])
    parsed: list[object] = []
    real_parse = links.parse_spec
    monkeypatch.setattr(links, "parse_spec", lambda spec: parsed.append(spec) or real_parse(spec))
    made = [jobs.job_new_message(Job.objects.get(id=job.id)).context.links for _ in range(3)]
    assert parsed == []
    assert all(set(m.inputs) == {"in.bin"} and set(m.outputs) == {"out.txt"} for m in made)


def test_a_job_the_process_has_not_seen_is_parsed_once(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    job = create_job()
    monkeypatch.setattr(links, "_plans", type(links._plans)())  # a facilitator process started since
    parsed: list[object] = []
    real_parse = links.parse_spec
    monkeypatch.setattr(links, "parse_spec", lambda spec: parsed.append(spec) or real_parse(spec))
    for _ in range(3):
        links_for(Job.objects.get(id=job.id))
    assert len(parsed) == 1


@given(st.text(st.sampled_from(["a", ".", "/", "\\", "\x00", "\x1f", "\x7f", "é", " "]), max_size=8))
def test_the_filename_pattern_of_the_schema_is_check_filename(filename: str) -> None:
    try:
        check_filename(filename)
        accepted = True
    except ValueError:
        accepted = False
    assert bool(re.fullmatch(FILENAME_PATTERN, filename)) == accepted, filename
