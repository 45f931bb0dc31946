"""Building inputs and outputs with ``Input`` and ``Output`` (facilitator_sdk/spec.py); no server."""

from __future__ import annotations

import pytest

from facilitator_sdk import (
    InlineInput,
    Input,
    JobSpec,
    ObjectInput,
    ObjectOutput,
    ObjectRef,
    Output,
    UrlInput,
    UrlOutput,
)


def test_input_and_output_helpers_build_the_spec_classes() -> None:
    ref = ObjectRef(key="uploads/k/n/data.zip", sha256="a" * 64, size=3)
    assert Input.inline("a.txt", "héllo") == InlineInput.from_bytes("a.txt", "héllo".encode())
    assert Input.inline("b.bin", b"\x00\x01") == InlineInput.from_bytes("b.bin", b"\x00\x01")
    assert Input.url("m.bin", "https://example.org/m", sha256="b" * 64, unpack=True) == UrlInput(
        path="m.bin", url="https://example.org/m", sha256="b" * 64, unpack=True
    )
    assert Input.object("data", ref, unpack=True) == ObjectInput(path="data", key=ref.key, sha256="a" * 64, unpack=True)
    assert Input.object("data", "uploads/k/n/x") == ObjectInput(path="data", key="uploads/k/n/x")
    assert Output.object("r.csv") == ObjectOutput(path="r.csv")
    assert Output.url("r.pdf", "https://s3.example/b", method="POST", fields={"key": "r.pdf"}) == UrlOutput(
        path="r.pdf", url="https://s3.example/b", method="POST", fields={"key": "r.pdf"}
    )
    assert Output.url("r.pdf", "https://s3.example/b?sig=1").method == "PUT"


def test_helpers_refuse_what_the_spec_refuses() -> None:
    ref = ObjectRef(key="uploads/k/n/data.zip", sha256="a" * 64, size=3)
    with pytest.raises(ValueError, match="contradicts"):
        Input.object("data", ref, sha256="b" * 64)
    with pytest.raises(ValueError, match="relative path"):
        Output.object("/etc/passwd")
    with pytest.raises(ValueError, match="POST only"):
        Output.url("r", "https://x.example/", fields={"a": "b"})
    with pytest.raises(TypeError, match="namespace"):
        Input()


def test_a_spec_built_with_helpers_goes_over_the_wire_with_each_kind() -> None:
    spec = JobSpec(
        command=["true"],
        inputs=[Input.inline("a", "x"), Input.url("b", "https://e.org/b"), Input.object("c", "uploads/k/n/c")],
        outputs=[Output.object("o"), Output.url("p", "https://e.org/p")],
    )
    wire = spec.to_wire()
    assert [item["kind"] for item in wire["inputs"]] == ["inline", "url", "object"]
    assert [item["kind"] for item in wire["outputs"]] == ["object", "url"]
    assert JobSpec.model_validate(wire) == spec
