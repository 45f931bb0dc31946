"""A cross-validation run's outputs (executor/uploads.py ``digest_only``): the records an upload
would make for the same files, with nothing sent. Compared against real uploads to a loopback
server (tests/executor/httpserver.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from executor.datapolicy import DataPlaneError
from executor.uploads import digest_only, upload_logs, upload_outputs
from protocol.messages.jobs import JobResult, OutputRecord, StoreLink, StoreLinks
from protocol.spec import JobSpec, ObjectOutput, UrlOutput
from protocol.status import FailureReason
from tests.executor.httpserver import Server, policy
from validator.ledger import result_digest


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


def essentials(records: list[OutputRecord]) -> list[tuple[str, str, int, str]]:
    """What a record says about the file itself (``ref`` says where it was stored)."""
    return [(r.path, r.sha256, r.size, r.kind) for r in records]


async def refused_digest(spec: JobSpec, out: Path, tmp_path: Path, **overrides: object) -> DataPlaneError:
    with pytest.raises(DataPlaneError) as caught:
        await digest_only(spec, out, tmp_path / "stdout", tmp_path / "stderr", policy(**overrides))
    return caught.value


async def test_the_records_are_those_a_real_upload_of_the_same_files_makes(
    out: Path, tmp_path: Path, server: Server
) -> None:
    model = os.urandom(1_500_000)  # more than one read
    write(out / "res" / "model.bin", model)
    write(out / "report.csv", b"a,b\n1,2\n")
    write(out / "empty", b"")
    stdout = write(tmp_path / "stdout", b"training done\n")
    stderr = write(tmp_path / "stderr", b"warning: slow\n")
    spec = JobSpec(
        command=["true"],
        outputs=[
            ObjectOutput(path="res/model.bin"),
            UrlOutput(path="report.csv", url=server.route("/put/report")),
            UrlOutput(path="empty", url=server.route("/put/empty")),
        ],
    )
    links = StoreLinks(
        outputs={"res/model.bin": StoreLink(key="k-model", url=server.route("/objects/model"))},
        stdout=StoreLink(key="k-out", url=server.route("/objects/out")),
        stderr=StoreLink(key="k-err", url=server.route("/objects/err")),
    )
    uploaded = await upload_outputs(spec, links, out, policy())
    uploaded_logs = await upload_logs(links, stdout, stderr, policy())
    hits = len(server.received)

    outputs, logs = await digest_only(spec, out, stdout, stderr, policy())
    assert essentials(outputs) == essentials(uploaded)
    assert essentials(logs) == essentials(uploaded_logs)
    assert essentials(outputs) == [
        ("res/model.bin", sha(model), len(model), "object"),
        ("report.csv", sha(b"a,b\n1,2\n"), 8, "url"),
        ("empty", sha(b""), 0, "url"),
    ]
    assert essentials(logs) == [
        ("stdout", sha(b"training done\n"), 14, "object"),
        ("stderr", sha(b"warning: slow\n"), 14, "object"),
    ]
    assert all(record.ref is None for record in [*outputs, *logs]), "nothing was stored"
    assert len(server.received) == hits, "nothing was sent"
    # What cross-validation compares: the same digest as the uploading miner's result.
    assert result_digest(JobResult(exit_code=0, outputs=outputs, logs=logs)) == result_digest(
        JobResult(exit_code=0, outputs=uploaded, logs=uploaded_logs)
    )


async def test_no_links_are_needed_for_object_outputs(out: Path, tmp_path: Path) -> None:
    write(out / "a.bin", b"\x00\x01")
    spec = JobSpec(command=["true"], outputs=[ObjectOutput(path="a.bin")])
    outputs, logs = await digest_only(spec, out, tmp_path / "stdout", tmp_path / "stderr", policy())
    assert outputs == [OutputRecord(path="a.bin", sha256=sha(b"\x00\x01"), size=2, kind="object", ref=None)]
    assert logs == []


async def test_empty_and_absent_logs_are_skipped_as_uploads_skip_them(
    out: Path, tmp_path: Path, server: Server
) -> None:
    stdout = write(tmp_path / "stdout", b"")
    stderr = tmp_path / "stderr"  # never written
    links = StoreLinks(
        stdout=StoreLink(key="k-out", url=server.route("/objects/out")),
        stderr=StoreLink(key="k-err", url=server.route("/objects/err")),
    )
    assert await upload_logs(links, stdout, stderr, policy()) == []
    outputs, logs = await digest_only(JobSpec(command=["true"]), out, stdout, stderr, policy())
    assert (outputs, logs) == ([], [])
    write(stderr, b"only stderr\n")
    _, logs = await digest_only(JobSpec(command=["true"]), out, stdout, stderr, policy())
    assert essentials(logs) == [("stderr", sha(b"only stderr\n"), 12, "object")]


async def test_a_missing_output_fails_as_the_upload_would(out: Path, tmp_path: Path) -> None:
    write(out / "first", b"1")
    spec = JobSpec(command=["true"], outputs=[ObjectOutput(path="first"), ObjectOutput(path="second")])
    error = await refused_digest(spec, out, tmp_path)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert error.message == "output 'second' does not exist"


async def test_a_symlinked_output_is_refused_and_its_target_never_read(out: Path, tmp_path: Path) -> None:
    secret = write(tmp_path / "miner" / "secret.key", b"SECRET")
    (out / "result").symlink_to(secret)
    spec = JobSpec(command=["true"], outputs=[ObjectOutput(path="result")])
    error = await refused_digest(spec, out, tmp_path)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert error.message == "output 'result' is a symbolic link (not followed)"


async def test_an_output_under_a_symlinked_directory_is_refused(out: Path, tmp_path: Path) -> None:
    write(tmp_path / "miner" / "keys" / "secret.key", b"SECRET")
    (out / "res").symlink_to(tmp_path / "miner" / "keys")
    spec = JobSpec(command=["true"], outputs=[ObjectOutput(path="res/secret.key")])
    error = await refused_digest(spec, out, tmp_path)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert error.message == "output 'res/secret.key' is under something that is not a directory (or is a symbolic link)"


async def test_a_fifo_in_place_of_an_output_is_refused_without_hanging(out: Path, tmp_path: Path) -> None:
    os.mkfifo(out / "pipe")
    spec = JobSpec(command=["true"], outputs=[ObjectOutput(path="pipe")])
    error = await refused_digest(spec, out, tmp_path)
    assert error.reason is FailureReason.OUTPUT_MISSING
    assert error.message == "output 'pipe' is not a regular file"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"big": 101}, "output 'big' has 101 bytes, over the miner's limit of 100 bytes"),
        ({"a": 60, "b": 60}, "outputs total 120 bytes (at 'b'), over the miner's limit of 100 bytes"),
    ],
)
async def test_outputs_over_the_limit_fail_as_the_upload_would(
    out: Path, tmp_path: Path, files: dict[str, int], expected: str
) -> None:
    for name, size in files.items():
        write(out / name, b"x" * size)
    spec = JobSpec(command=["true"], outputs=[UrlOutput(path=name, url="http://127.0.0.1:9/x") for name in files])
    with pytest.raises(DataPlaneError) as uploading:
        await upload_outputs(spec, StoreLinks(), out, policy(max_output_bytes=100))
    error = await refused_digest(spec, out, tmp_path, max_output_bytes=100)
    assert error.reason is uploading.value.reason is FailureReason.OUTPUT_TOO_LARGE
    assert error.message == uploading.value.message == expected


async def test_a_log_over_the_limit_fails_as_the_upload_would(out: Path, tmp_path: Path, server: Server) -> None:
    stdout = write(tmp_path / "stdout", b"x" * 101)
    links = StoreLinks(stdout=StoreLink(key="k", url=server.route("/objects/out")))
    with pytest.raises(DataPlaneError) as uploading:
        await upload_logs(links, stdout, tmp_path / "stderr", policy(max_output_bytes=100))
    assert uploading.value.reason is FailureReason.OUTPUT_TOO_LARGE
    error = await refused_digest(JobSpec(command=["true"]), out, tmp_path, max_output_bytes=100)
    assert error.reason is FailureReason.OUTPUT_TOO_LARGE
