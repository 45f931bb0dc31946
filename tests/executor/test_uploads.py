"""Sending outputs and logs, collecting artifacts (executor/uploads.py), against a real HTTP server."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from executor.datapolicy import DataPlaneError
from executor.uploads import collect_artifacts, upload_logs, upload_outputs
from protocol.messages.jobs import OutputRecord, StoreLink, StoreLinks
from protocol.spec import JobSpec, ObjectOutput, UrlOutput
from protocol.status import FailureReason
from tests.executor.httpserver import Server, policy, serve


@pytest.fixture
def server() -> Iterator[Server]:
    with serve() as running:
        yield running


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "output").mkdir()
    return tmp_path / "output"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_form(headers: dict[str, str], body: bytes) -> list[tuple[str, str | None, bytes]]:
    """(name, filename, content) of each part of a multipart/form-data body, in order."""
    head = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    return [
        (part.get_param("name", header="content-disposition"), part.get_filename(), part.get_payload(decode=True))
        for part in message.iter_parts()
    ]


async def send(spec: JobSpec, out: Path, links: StoreLinks | None = None, **overrides: Any) -> list[OutputRecord]:
    return await upload_outputs(spec, links or StoreLinks(), out, policy(**overrides))


async def refused(spec: JobSpec, out: Path, links: StoreLinks | None = None, **overrides: Any) -> DataPlaneError:
    with pytest.raises(DataPlaneError) as caught:
        await send(spec, out, links, **overrides)
    return caught.value


def outputs(*items: Any) -> JobSpec:
    return JobSpec(command=["true"], outputs=list(items))


# ---------------------------------------------------------------- outputs


async def test_object_output_is_put_to_its_store_link(out: Path, server: Server) -> None:
    data = os.urandom(300_000)
    write(out / "res" / "model.bin", data)
    url = server.route("/objects/k-model")
    links = StoreLinks(outputs={"res/model.bin": StoreLink(key="k-model", url=url + "?signature=s")})
    records = await send(outputs(ObjectOutput(path="res/model.bin")), out, links, allow_private_urls=False)
    assert records == [
        OutputRecord(path="res/model.bin", sha256=sha(data), size=len(data), kind="object", ref="k-model")
    ]
    [received] = server.received
    assert (received.method, received.body) == ("PUT", data)
    assert received.headers["Content-Length"] == str(len(data))
    assert "Transfer-Encoding" not in received.headers


async def test_empty_output_is_put_with_a_zero_length(out: Path, server: Server) -> None:
    write(out / "empty", b"")
    url = server.route("/put/empty")
    [record] = await send(outputs(UrlOutput(path="empty", url=url)), out)
    assert (record.size, record.sha256, record.kind, record.ref) == (0, sha(b""), "url", None)
    assert server.bodies("/put/empty") == [b""]


async def test_url_output_is_posted_as_a_form_with_its_fields_first(out: Path, server: Server) -> None:
    write(out / "report.csv", b"a,b\n1,2\n")
    url = server.route("/bucket", status=204)
    output = UrlOutput(
        path="report.csv", url=url, method="POST", fields={"key": "up/r.csv", "policy": "p"}, file_field="f"
    )
    [record] = await send(outputs(output), out)
    assert record == OutputRecord(path="report.csv", sha256=sha(b"a,b\n1,2\n"), size=8, kind="url", ref=None)
    [received] = server.received
    assert received.method == "POST"
    assert parse_form(received.headers, received.body) == [
        ("key", None, b"up/r.csv"),
        ("policy", None, b"p"),
        ("f", "report.csv", b"a,b\n1,2\n"),
    ]


async def test_refused_upload_fails_with_the_status_and_the_reply(out: Path, server: Server) -> None:
    write(out / "a.txt", b"data")
    url = server.route("/put/a", status=403, body=b"<Error>AccessDenied " + b"x" * 500 + b"</Error>")
    error = await refused(outputs(UrlOutput(path="a.txt", url=url)), out, retries=3)
    assert error.reason is FailureReason.UPLOAD_FAILED
    prefix = f"output 'a.txt' (PUT {url}): returned 403: <Error>AccessDenied "
    assert error.message.startswith(prefix)
    assert len(error.message) == len(prefix) + 200 - len("<Error>AccessDenied ")
    assert server.hits["/put/a"] == 1


async def test_5xx_upload_is_retried_with_the_whole_file(out: Path, server: Server) -> None:
    data = os.urandom(100_000)
    write(out / "a.bin", data)
    url = server.route("/put/a", fail_times=1)
    [record] = await send(outputs(UrlOutput(path="a.bin", url=url)), out, retries=2)
    assert server.bodies("/put/a") == [data, data]
    assert record.sha256 == sha(data)


async def test_missing_output_fails_before_anything_is_sent(out: Path, server: Server) -> None:
    write(out / "first", b"1")
    url = server.route("/put/x")
    spec = outputs(UrlOutput(path="first", url=url), UrlOutput(path="second", url=url))
    error = await refused(spec, out)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert error.message == "output 'second' does not exist"
    assert server.received == []


async def test_symlinked_output_is_refused_and_its_target_never_sent(out: Path, server: Server, tmp_path: Path) -> None:
    secret = write(tmp_path / "miner" / "secret.key", b"SECRET")
    (out / "result").symlink_to(secret)
    url = server.route("/put/x")
    error = await refused(outputs(UrlOutput(path="result", url=url)), out)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert error.message == "output 'result' is a symbolic link (not followed)"
    assert server.received == []


async def test_output_under_a_symlinked_directory_is_refused(out: Path, server: Server, tmp_path: Path) -> None:
    write(tmp_path / "miner" / "secret.key", b"SECRET")
    (out / "dir").symlink_to(tmp_path / "miner")
    error = await refused(outputs(UrlOutput(path="dir/secret.key", url=server.route("/put/x"))), out)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert "symbolic link" in error.message
    assert server.received == []


async def test_fifo_output_is_refused_without_blocking(out: Path, server: Server) -> None:
    os.mkfifo(out / "pipe")
    error = await refused(outputs(UrlOutput(path="pipe", url=server.route("/put/x"))), out)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert error.message == "output 'pipe' is not a regular file"


async def test_output_over_the_limit_is_refused(out: Path, server: Server) -> None:
    write(out / "big", b"x" * 101)
    error = await refused(outputs(UrlOutput(path="big", url=server.route("/put/x"))), out, max_output_bytes=100)
    assert error.reason is FailureReason.OUTPUT_TOO_LARGE
    assert error.message == "output 'big' has 101 bytes, over the miner's limit of 100 bytes"
    assert server.received == []


async def test_outputs_together_over_the_limit_are_refused(out: Path, server: Server) -> None:
    write(out / "a", b"x" * 60)
    write(out / "b", b"y" * 60)
    url = server.route("/put/x")
    spec = outputs(UrlOutput(path="a", url=url), UrlOutput(path="b", url=url))
    error = await refused(spec, out, max_output_bytes=100)
    assert error.reason is FailureReason.OUTPUT_TOO_LARGE
    assert error.message == "outputs total 120 bytes (at 'b'), over the miner's limit of 100 bytes"
    assert server.received == []


async def test_object_output_without_a_link_fails(out: Path) -> None:
    write(out / "a", b"x")
    error = await refused(outputs(ObjectOutput(path="a")), out)
    assert error.reason is FailureReason.UPLOAD_FAILED
    assert error.message == "output 'a': the facilitator gave no upload link"


async def test_relative_upload_link_blames_grid_storage_url(out: Path) -> None:
    write(out / "a", b"x")
    links = StoreLinks(outputs={"a": StoreLink(key="k", url="/objects/k?signature=s")})
    error = await refused(outputs(ObjectOutput(path="a")), out, links)
    assert error.reason is FailureReason.UPLOAD_FAILED
    assert "the facilitator's GRID_STORAGE_URL must be absolute" in error.message


async def test_client_url_to_a_private_address_is_refused(out: Path, server: Server) -> None:
    write(out / "a", b"x")
    error = await refused(outputs(UrlOutput(path="a", url=server.route("/put/x"))), out, allow_private_urls=False)
    assert error.reason is FailureReason.UPLOAD_FAILED
    assert error.message.endswith("refused to connect to 127.0.0.1: not a public address")
    assert server.received == []


# ---------------------------------------------------------------- logs


async def test_logs_are_put_and_empty_streams_skipped(tmp_path: Path, server: Server) -> None:
    stdout = write(tmp_path / "stdout", b"hello\n")
    stderr = write(tmp_path / "stderr", b"")
    links = StoreLinks(
        stdout=StoreLink(key="k-out", url=server.route("/objects/out")),
        stderr=StoreLink(key="k-err", url=server.route("/objects/err")),
    )
    records = await upload_logs(links, stdout, stderr, policy(allow_private_urls=False))
    assert records == [OutputRecord(path="stdout", sha256=sha(b"hello\n"), size=6, kind="object", ref="k-out")]
    assert server.bodies("/objects/out") == [b"hello\n"]
    assert server.hits["/objects/err"] == 0


async def test_logs_without_a_link_are_skipped(tmp_path: Path) -> None:
    stdout = write(tmp_path / "stdout", b"hello\n")
    assert await upload_logs(StoreLinks(), stdout, tmp_path / "absent", policy()) == []


async def test_log_over_the_limit_is_refused(tmp_path: Path, server: Server) -> None:
    stdout = write(tmp_path / "stdout", b"x" * 101)
    links = StoreLinks(stdout=StoreLink(key="k", url=server.route("/objects/out")))
    with pytest.raises(DataPlaneError) as caught:
        await upload_logs(links, stdout, tmp_path / "stderr", policy(max_output_bytes=100))
    assert caught.value.reason is FailureReason.OUTPUT_TOO_LARGE
    assert server.received == []


# ---------------------------------------------------------------- artifacts


def artifacts_spec(directory: str | None = "art") -> JobSpec:
    return JobSpec(command=["true"], artifacts_dir=directory)


def test_artifacts_come_back_inline_and_symlinks_are_skipped(out: Path, tmp_path: Path) -> None:
    write(out / "art" / "a.txt", b"alpha")
    write(out / "art" / "sub" / "b.bin", b"\x00\x01")
    secret = write(tmp_path / "miner" / "secret.key", b"SECRET")
    (out / "art" / "link").symlink_to(secret)
    (out / "art" / "dirlink").symlink_to(tmp_path / "miner")
    write(out / "elsewhere.txt", b"not an artifact")
    assert collect_artifacts(artifacts_spec(), out, policy()) == {
        "a.txt": base64.b64encode(b"alpha").decode(),
        "sub/b.bin": base64.b64encode(b"\x00\x01").decode(),
    }


def test_artifacts_over_the_limit_are_refused(out: Path) -> None:
    write(out / "art" / "a", b"x" * 60)
    write(out / "art" / "b", b"y" * 60)
    with pytest.raises(DataPlaneError) as caught:
        collect_artifacts(artifacts_spec(), out, policy(max_artifact_bytes=100))
    assert caught.value.reason is FailureReason.OUTPUT_TOO_LARGE
    assert caught.value.message == "artifacts in 'art' total more than the miner's limit of 100 bytes"


def test_missing_or_symlinked_artifacts_dir_gives_nothing(out: Path, tmp_path: Path) -> None:
    assert collect_artifacts(artifacts_spec(), out, policy()) == {}
    assert collect_artifacts(artifacts_spec(None), out, policy()) == {}
    write(tmp_path / "miner" / "secret.key", b"SECRET")
    (out / "art").symlink_to(tmp_path / "miner")
    assert collect_artifacts(artifacts_spec(), out, policy()) == {}
