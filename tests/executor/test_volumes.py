"""Fetching inputs into a job's volume (executor/volumes.py), against a real HTTP server on loopback.

The server (:class:`Server`, :func:`serve`) is also used by ``test_uploads.py``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from executor import volumes
from executor.datapolicy import DataPlaneError
from executor.volumes import fetch_inputs
from protocol.messages.jobs import StoreLink, StoreLinks
from protocol.spec import InlineInput, JobSpec, ObjectInput, UrlInput
from protocol.status import FailureReason
from tests.executor.httpserver import Server, policy

# ---------------------------------------------------------------- helpers


@dataclass
class Job:
    root: Path

    @property
    def volume(self) -> Path:
        return self.root / "volume"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    async def fetch(self, *inputs: Any, links: StoreLinks | None = None, **overrides: Any) -> None:
        spec = JobSpec(command=["true"], inputs=list(inputs))
        await fetch_inputs(spec, links or StoreLinks(), self.volume, self.scratch, policy(**overrides))

    async def refused(self, *inputs: Any, links: StoreLinks | None = None, **overrides: Any) -> DataPlaneError:
        with pytest.raises(DataPlaneError) as caught:
            await self.fetch(*inputs, links=links, **overrides)
        assert list(self.scratch.iterdir()) == [], "a temporary file was left in scratch"
        return caught.value


@pytest.fixture
def job(tmp_path: Path) -> Job:
    (tmp_path / "volume").mkdir()
    (tmp_path / "scratch").mkdir()
    return Job(tmp_path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # duplicate names are on purpose
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so external_attr carries st_mode
    info.external_attr = mode << 16
    return info


def lie_about_sizes(archive: bytes, size: int) -> bytes:
    """Rewrite every uncompressed size of the headers (local and central) to ``size``."""
    data = bytearray(archive)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            struct.pack_into("<I", data, start + offset, size)
            start += 4
    return bytes(data)


# ---------------------------------------------------------------- plain inputs


async def test_inline_input_is_decoded_into_the_volume(job: Job) -> None:
    await job.fetch(InlineInput.from_bytes("dir/a.txt", b"hello"))
    target = job.volume / "dir" / "a.txt"
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE((job.volume / "dir").stat().st_mode) == 0o755


async def test_url_input_is_downloaded_and_scratch_left_empty(job: Job, server: Server) -> None:
    url = server.route("/data.bin", b"x" * 200_000)
    await job.fetch(UrlInput(path="in/data.bin", url=url))
    assert (job.volume / "in" / "data.bin").read_bytes() == b"x" * 200_000
    assert list(job.scratch.iterdir()) == []


async def test_url_input_with_the_right_sha256_is_accepted(job: Job, server: Server) -> None:
    url = server.route("/data.bin", b"payload")
    await job.fetch(UrlInput(path="data.bin", url=url, sha256=sha(b"payload")))
    assert (job.volume / "data.bin").read_bytes() == b"payload"


async def test_url_input_with_a_wrong_sha256_fails_naming_both_digests(job: Job, server: Server) -> None:
    url = server.route("/data.bin", b"payload")
    error = await job.refused(UrlInput(path="data.bin", url=url, sha256="0" * 64))
    assert error.reason is FailureReason.DOWNLOAD_FAILED
    assert f"expected {'0' * 64}, got {sha(b'payload')}" in error.message
    assert not (job.volume / "data.bin").exists()


async def test_404_fails_at_once_without_retrying(job: Job, server: Server) -> None:
    error = await job.refused(UrlInput(path="data.bin", url=server.url("/missing")), retries=3)
    assert error.reason is FailureReason.DOWNLOAD_FAILED
    assert error.message == (
        f"input 'data.bin' (GET http://127.0.0.1:{server.port}/missing): returned 404: no such route"
    )
    assert server.hits["/missing"] == 1


async def test_a_slow_server_times_out_after_the_retries(job: Job, server: Server) -> None:
    url = server.route("/slow", b"late", delay=1.0)
    error = await job.refused(UrlInput(path="data.bin", url=url), retries=1, read_timeout_s=0.2)
    assert error.reason is FailureReason.DOWNLOAD_FAILED
    assert error.message.endswith("timed out waiting for data (gave up after 2 attempts)")
    assert server.hits["/slow"] == 2


async def test_5xx_is_retried_until_it_succeeds(job: Job, server: Server) -> None:
    url = server.route("/flaky", b"finally", fail_times=2, fail_status=503)
    await job.fetch(UrlInput(path="data.bin", url=url), retries=3)
    assert (job.volume / "data.bin").read_bytes() == b"finally"
    assert server.hits["/flaky"] == 3


async def test_5xx_fails_once_the_retries_are_spent(job: Job, server: Server) -> None:
    url = server.route("/down", fail_times=99)
    error = await job.refused(UrlInput(path="data.bin", url=url), retries=1)
    assert error.reason is FailureReason.DOWNLOAD_FAILED
    assert error.message.endswith("returned 500: try again later (gave up after 2 attempts)")


async def test_redirects_are_followed(job: Job, server: Server) -> None:
    target = server.route("/real", b"moved here")
    url = server.route("/old", status=302, headers={"Location": target})
    await job.fetch(UrlInput(path="data.bin", url=url))
    assert (job.volume / "data.bin").read_bytes() == b"moved here"


async def test_input_over_the_limit_is_refused_by_its_declared_length(job: Job, server: Server) -> None:
    url = server.route("/big", b"x" * 2000)
    error = await job.refused(UrlInput(path="big", url=url), max_input_bytes=1000)
    assert error.reason is FailureReason.INPUT_TOO_LARGE
    assert error.message.endswith("is larger than the miner's limit of 1000 bytes")


async def test_input_over_the_limit_is_refused_while_streaming_without_a_length(job: Job, server: Server) -> None:
    url = server.route("/big", b"x" * 200_000, send_length=False)
    error = await job.refused(UrlInput(path="big", url=url), max_input_bytes=100_000)
    assert error.reason is FailureReason.INPUT_TOO_LARGE
    assert not (job.volume / "big").exists()


async def test_inputs_together_over_the_limit_are_refused(job: Job, server: Server) -> None:
    first = server.route("/one", b"x" * 600)
    second = server.route("/two", b"y" * 600)
    error = await job.refused(UrlInput(path="one", url=first), UrlInput(path="two", url=second), max_input_bytes=1000)
    assert error.reason is FailureReason.INPUT_TOO_LARGE
    assert (
        error.message == "input 'two' (GET " + second + ") takes the job's inputs over the miner's limit of 1000 bytes"
    )


# ---------------------------------------------------------------- object inputs and addresses


async def test_object_input_uses_the_facilitators_link_even_on_loopback(job: Job, server: Server) -> None:
    """Store links are trusted: a private address is fine for them when client URLs are refused."""
    url = server.route("/objects/k1", b"object data")
    links = StoreLinks(inputs={"obj.bin": StoreLink(key="k1", url=url + "?expires=1&signature=secret")})
    await job.fetch(
        ObjectInput(path="obj.bin", key="k1", sha256=sha(b"object data")), links=links, allow_private_urls=False
    )
    assert (job.volume / "obj.bin").read_bytes() == b"object data"


async def test_object_input_without_a_link_fails(job: Job) -> None:
    error = await job.refused(ObjectInput(path="obj.bin", key="k1"))
    assert error.reason is FailureReason.DOWNLOAD_FAILED
    assert error.message == "input 'obj.bin': the facilitator gave no link for object 'k1'"


async def test_relative_store_link_blames_grid_storage_url(job: Job) -> None:
    links = StoreLinks(inputs={"obj.bin": StoreLink(key="k1", url="/objects/k1?signature=secret")})
    error = await job.refused(ObjectInput(path="obj.bin", key="k1"), links=links)
    assert error.reason is FailureReason.DOWNLOAD_FAILED
    assert "GRID_STORAGE_URL must be absolute" in error.message
    assert "secret" not in error.message


async def test_failure_messages_leave_out_the_query_string(job: Job, server: Server) -> None:
    error = await job.refused(UrlInput(path="data.bin", url=server.url("/missing?X-Amz-Signature=secret")))
    assert "secret" not in error.message


async def test_client_url_to_a_private_address_is_refused_without_connecting(job: Job, server: Server) -> None:
    url = server.route("/data.bin", b"data")
    error = await job.refused(UrlInput(path="data.bin", url=url), allow_private_urls=False)
    assert error.reason is FailureReason.INPUT_REFUSED
    assert error.message.endswith("refused to connect to 127.0.0.1: not a public address")
    assert server.hits["/data.bin"] == 0


# ---------------------------------------------------------------- zip archives


async def unpack(job: Job, server: Server, archive: bytes, **overrides: Any) -> None:
    await job.fetch(UrlInput(path="tree", url=server.route("/archive.zip", archive), unpack=True), **overrides)


async def unpack_refused(job: Job, server: Server, archive: bytes, **overrides: Any) -> DataPlaneError:
    url = server.route("/archive.zip", archive)
    return await job.refused(UrlInput(path="tree", url=url, unpack=True), **overrides)


async def test_zip_is_extracted_with_its_nested_directories(job: Job, server: Server) -> None:
    archive = make_zip(("top.txt", b"top"), ("a/", b""), ("a/b/c.txt", b"deep"), ("./d/e.txt", b"dotted"))
    await unpack(job, server, archive)
    tree = job.volume / "tree"
    assert (tree / "top.txt").read_bytes() == b"top"
    assert (tree / "a" / "b" / "c.txt").read_bytes() == b"deep"
    assert (tree / "d" / "e.txt").read_bytes() == b"dotted"
    assert stat.S_IMODE((tree / "a" / "b").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "a" / "b" / "c.txt").stat().st_mode) == 0o644
    assert list(job.scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("../evil.txt", "climbs out with '..'"),
        ("a/../../evil.txt", "climbs out with '..'"),
        ("/etc/evil", "is an absolute path"),
        ("C:/evil", "is an absolute path"),
        ("a\\..\\..\\evil", "has a backslash or NUL in its name"),
    ],
)
async def test_zip_entries_with_escaping_names_are_refused(job: Job, server: Server, entry: str, problem: str) -> None:
    error = await unpack_refused(job, server, make_zip(("fine.txt", b"ok"), (entry, b"evil")))
    assert error.reason is FailureReason.INPUT_REFUSED
    assert error.message == f"input 'tree': entry {entry!r} {problem}"
    assert not (job.volume / "tree" / "fine.txt").exists(), "nothing is written before every name is checked"


async def test_zip_symlink_entry_is_refused(job: Job, server: Server) -> None:
    archive = make_zip((zip_info("link", stat.S_IFLNK | 0o777), b"/etc/passwd"))
    error = await unpack_refused(job, server, archive)
    assert error.reason is FailureReason.INPUT_REFUSED
    assert error.message == "input 'tree': entry 'link' is a symbolic link"
    assert not (job.volume / "tree" / "link").is_symlink()


async def test_zip_fifo_entry_is_refused(job: Job, server: Server) -> None:
    error = await unpack_refused(job, server, make_zip((zip_info("pipe", stat.S_IFIFO | 0o644), b"")))
    assert error.reason is FailureReason.INPUT_REFUSED
    assert error.message == "input 'tree': entry 'pipe' is a device, fifo or socket"


async def test_zip_with_duplicate_names_is_refused(job: Job, server: Server) -> None:
    error = await unpack_refused(job, server, make_zip(("a.txt", b"one"), ("a.txt", b"two")))
    assert error.reason is FailureReason.INPUT_REFUSED
    assert error.message == "input 'tree': the archive has two entries named 'a.txt'"


async def test_zip_bomb_is_refused_by_its_declared_size(job: Job, server: Server) -> None:
    archive = make_zip(("bomb", b"\0" * 2_000_000))
    assert len(archive) < 10_000
    error = await unpack_refused(job, server, archive, max_input_bytes=1_000_000)
    assert error.reason is FailureReason.INPUT_TOO_LARGE
    assert error.message == "input 'tree': the archive unpacks to 2000000 bytes; the limit is 1000000"


async def test_zip_with_lying_sizes_is_refused_and_stays_small(job: Job, server: Server) -> None:
    """zipfile stops at the declared size and then fails the CRC: refused, at most the lie written."""
    archive = lie_about_sizes(make_zip(("bomb", b"\0" * 200_000)), 100)
    error = await unpack_refused(job, server, archive, max_input_bytes=150_000)
    assert error.reason is FailureReason.INPUT_REFUSED
    assert "cannot extract entry 'bomb'" in error.message
    assert (job.volume / "tree" / "bomb").stat().st_size <= 100


async def test_zip_bytes_are_counted_while_extracting(
    job: Job, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should declared sizes get past the first check, the bytes actually written still stop it."""
    monkeypatch.setattr(volumes, "_declared_size", lambda infos: 0)
    archive = make_zip(("a", b"\0" * 100_000), ("b", b"\0" * 100_000))
    error = await unpack_refused(job, server, archive, max_input_bytes=150_000)
    assert error.reason is FailureReason.INPUT_TOO_LARGE
    assert error.message == "input 'tree': the archive unpacks to more than 150000 bytes"


async def test_zip_with_too_many_entries_is_refused(job: Job, server: Server) -> None:
    archive = make_zip(*[(f"f{i}", b"") for i in range(11)])
    error = await unpack_refused(job, server, archive, max_zip_entries=10)
    assert error.reason is FailureReason.INPUT_TOO_LARGE
    assert error.message == "input 'tree': the archive has 11 entries; the miner's limit is 10"


async def test_a_file_that_is_not_a_zip_is_refused(job: Job, server: Server) -> None:
    error = await unpack_refused(job, server, b"this is not a zip archive at all")
    assert error.reason is FailureReason.INPUT_REFUSED
    assert error.message == "input 'tree': not a zip archive"


async def test_unpacked_bytes_count_towards_the_jobs_total(job: Job, server: Server) -> None:
    archive = make_zip(("a", b"x" * 700))
    inline = InlineInput(path="first", content_b64=base64.b64encode(b"y" * 400).decode())
    url = server.route("/archive.zip", archive)
    error = await job.refused(inline, UrlInput(path="tree", url=url, unpack=True), max_input_bytes=1000)
    assert error.reason is FailureReason.INPUT_TOO_LARGE
