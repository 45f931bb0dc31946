"""The SDK's data plane against a real facilitator on loopback: ``upload`` and ``download``.

The facilitator is this process's Django behind a real HTTP server on 127.0.0.1 (``live_url``,
see conftest.py) with a local store in a temporary directory, so the bytes travel through the same
signed ``/objects/`` URLs as on a real grid. Nothing runs a job: a test plays the executor by
PUTting to the job's own signed links and recording the result the validator would report.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.test import override_settings

from facilitator import links
from facilitator.models import Job
from facilitator.storage import get_store
from facilitator.storage.local import LocalObjectStore
from facilitator_sdk import (
    AsyncClient,
    ChecksumError,
    Client,
    ConflictError,
    Input,
    InvalidRequestError,
    JobSpec,
    NotFoundError,
    ObjectRef,
    Output,
)
from facilitator_sdk._transfer import CHUNK_SIZE
from protocol.keys import Keypair

pytestmark = pytest.mark.django_db(transaction=True)

BIG = os.urandom(3 * CHUNK_SIZE + 12345)  # several chunks and a ragged end
TABLE = b"col\n1\n2\n"
LOG = b"hello from the job\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalObjectStore]:
    options = {"root": str(tmp_path / "objects"), "secret": "sdk-test-secret"}
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "local", "OPTIONS": options}}):
        store = get_store()
        assert isinstance(store, LocalObjectStore)
        yield store


@pytest.fixture
def keypair() -> Keypair:
    return Keypair.generate()


@pytest.fixture
def client(live_url: str, store: LocalObjectStore, keypair: Keypair) -> Iterator[Client]:
    with Client(live_url, keypair) as client:
        yield client


def finished_job(client: Client, live_url: str, outputs: dict[str, bytes], stdout: bytes = LOG) -> str:
    """Submit a job and play its executor: upload through the job's links, record the result."""
    job = client.create_job(JobSpec(command=["true"], outputs=[Output.object(path) for path in outputs]))
    made = links.links_for(Job.objects.get(id=job.job_id))
    records = []
    for path, data in outputs.items():
        link = made.outputs[path]
        answer = httpx.put(live_url + link.url, content=data).raise_for_status().json()
        records.append({"path": path, "sha256": answer["sha256"], "size": answer["size"], "ref": link.key})
    logs = []
    if stdout:
        assert made.stdout is not None
        answer = httpx.put(live_url + made.stdout.url, content=stdout).raise_for_status().json()
        logs.append({"path": "stdout", "sha256": answer["sha256"], "size": answer["size"], "ref": made.stdout.key})
    result = {"exit_code": 0, "stdout": stdout.decode(), "outputs": records, "logs": logs}
    Job.objects.filter(id=job.job_id).update(status="completed", result=result)
    return job.job_id


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".part"))


class CountingReader(io.RawIOBase):
    """A binary stream that records the size of every read: proof nothing reads it whole."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos, self.reads = data, 0, []
        self.name = "counted.bin"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: len(self._data)}[whence] + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        end = len(self._data) if size is None or size < 0 else self._pos + size
        chunk, self._pos = self._data[self._pos : end], min(end, len(self._data))
        return chunk


# -- upload ----------------------------------------------------------------------------------------


def test_upload_a_path_round_trips_its_sha256_and_size(client: Client, store: LocalObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(BIG)
    ref = client.upload(path)
    assert ref == ObjectRef(key=ref.key, sha256=sha(BIG), size=len(BIG))
    prefix, hotkey, _, filename = ref.key.split("/")
    assert (prefix, hotkey, filename) == ("uploads", client.keypair.hotkey, "big.bin")
    info = store.stat(ref.key)
    assert (info.sha256, info.size) == (ref.sha256, ref.size)
    assert store.path(ref.key).read_bytes() == BIG


def test_upload_streams_a_file_in_chunks_never_whole(client: Client, store: LocalObjectStore) -> None:
    reader = CountingReader(BIG)
    ref = client.upload(reader)
    assert ref.key.endswith("/counted.bin") and ref.sha256 == sha(BIG)
    data_reads = [size for size in reader.reads if size != 0]
    assert len(data_reads) >= 4 and max(data_reads) <= CHUNK_SIZE and -1 not in data_reads


def test_upload_bytes_and_streams_from_where_they_stand(client: Client, store: LocalObjectStore) -> None:
    assert client.upload(b"abc", filename="abc.txt").sha256 == sha(b"abc")
    assert client.upload(b"", filename="empty").size == 0
    stream = io.BytesIO(b"skip-me|keep me")
    stream.seek(8)
    ref = client.upload(stream, filename="tail.txt")
    assert (ref.size, store.read(ref.key)) == (7, b"keep me")


def test_upload_a_stream_that_cannot_seek(client: Client, store: LocalObjectStore) -> None:
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(BIG)

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        ref = client.upload(pipe, filename="piped.bin")
    writer.join()
    assert (ref.sha256, ref.size) == (sha(BIG), len(BIG))
    assert store.stat(ref.key).sha256 == sha(BIG)


def test_upload_refuses_data_it_cannot_name_or_read(client: Client, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give a filename="):
        client.upload(b"abc")
    path = tmp_path / "t.txt"
    path.write_text("text")
    with path.open() as text, pytest.raises(TypeError, match="binary mode"):
        client.upload(text)
    with pytest.raises(TypeError, match="not int"):
        client.upload(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("filename", ["a/b", "..", "x" * 201, "bad\nname"])
def test_upload_with_a_bad_filename_is_refused_before_any_byte_is_sent(
    client: Client, store: LocalObjectStore, filename: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        client.upload(b"abc", filename=filename)
    assert info.value.code == "invalid_request"
    assert [item["field"] for item in info.value.errors] == ["filename"]
    assert not (store.root / "data" / "uploads").exists()


def test_upload_raises_when_the_store_holds_other_bytes_than_were_sent(tmp_path: Path) -> None:
    """A store answering another digest (a proxy mangling the body, a bad disk) is not trusted."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/uploads":
            return httpx.Response(200, json={"key": "uploads/k/n/f", "url": "/objects/uploads/k/n/f?x=1"})
        assert request.headers["Content-Length"] == "3" and "X-Grid-Signature" not in request.headers
        request.read()
        return httpx.Response(200, json={"key": "uploads/k/n/f", "size": 3, "sha256": sha(b"xyz")})

    client = Client("http://127.0.0.1:9", Keypair.generate(), transport=httpx.MockTransport(answer))
    with client, pytest.raises(ChecksumError, match="upload of 'uploads/k/n/f' does not match its record: sha256"):
        client.upload(b"abc", filename="f")


def test_an_uploaded_object_is_a_job_input_with_its_sha256(client: Client) -> None:
    ref = client.upload(TABLE, filename="t.csv")
    job = client.create_job(JobSpec(command=["cat", "t.csv"], inputs=[Input.object("t.csv", ref)]))
    assert job.status == "sent"
    assert job.spec["inputs"] == [{"kind": "object", "path": "t.csv", "key": ref.key, "sha256": ref.sha256}]


def test_another_clients_object_is_refused_naming_the_input(client: Client, live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as other:
        theirs = other.upload(TABLE, filename="t.csv")
    with pytest.raises(InvalidRequestError) as info:
        client.create_job(JobSpec(command=["true"], inputs=[Input.object("data/t.csv", theirs)]))
    assert info.value.code == "invalid_input"
    assert info.value.errors == [
        {"field": "inputs.0.key", "message": f"input 'data/t.csv': no object {theirs.key!r} of yours in the store"}
    ]


# -- download --------------------------------------------------------------------------------------


def test_download_an_output_into_a_directory_keeps_its_relative_path(
    client: Client, live_url: str, tmp_path: Path
) -> None:
    job_id = finished_job(client, live_url, {"out/table.csv": TABLE, "big.bin": BIG, "odd/a b#c?%.txt": b"odd"})
    job = client.get_job(job_id)
    dest = tmp_path / "results"
    dest.mkdir()
    assert job.result.download("out/table.csv", dest) == dest / "out" / "table.csv"
    assert (dest / "out" / "table.csv").read_bytes() == TABLE
    assert job.result.download("odd/a b#c?%.txt", dest).read_bytes() == b"odd"
    assert job.result.download("big.bin", tmp_path / "renamed.bin").read_bytes() == BIG
    assert job.result.download("big.bin", f"{tmp_path}/new-dir/") == tmp_path / "new-dir" / "big.bin"
    assert leftovers(dest) == leftovers(tmp_path) == []


def test_download_the_logs_and_an_empty_one(client: Client, live_url: str, tmp_path: Path) -> None:
    job_id = finished_job(client, live_url, {})
    assert client.download(job_id, "stdout", tmp_path).read_bytes() == LOG
    empty = client.download(job_id, "stderr", tmp_path / "err.txt")
    assert empty.exists() and empty.read_bytes() == b""


def test_download_refuses_a_file_whose_sha256_is_not_the_results(
    client: Client, live_url: str, store: LocalObjectStore, tmp_path: Path
) -> None:
    job_id = finished_job(client, live_url, {"table.csv": TABLE})
    store.put(links.output_key(job_id, "table.csv"), TABLE.replace(b"1", b"9"))  # same size, other bytes
    target = tmp_path / "table.csv"
    with pytest.raises(ChecksumError) as info:
        client.get_job(job_id).result.download("table.csv", target)
    assert (info.value.expected_sha256, info.value.actual_size) == (sha(TABLE), len(TABLE))
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_a_failed_download_leaves_an_existing_file_untouched(
    client: Client, live_url: str, store: LocalObjectStore, tmp_path: Path
) -> None:
    job_id = finished_job(client, live_url, {"table.csv": TABLE})
    store.put(links.output_key(job_id, "table.csv"), TABLE + b"and more\n")  # longer: stops early
    target = tmp_path / "table.csv"
    target.write_bytes(b"previous")
    with pytest.raises(ChecksumError, match="bytes, expected 8"):
        client.download(job_id, "table.csv", target)
    assert target.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


def test_download_of_a_missing_object_raises_and_leaves_nothing(
    client: Client, live_url: str, store: LocalObjectStore, tmp_path: Path
) -> None:
    job_id = finished_job(client, live_url, {"table.csv": TABLE})
    store.delete(links.output_key(job_id, "table.csv"))
    with pytest.raises(NotFoundError, match="no such object"):
        client.download(job_id, "table.csv", tmp_path / "t.csv")
    assert os.listdir(tmp_path) == ["objects"]


def test_download_of_an_unknown_path_or_an_unfinished_job_says_why(
    client: Client, live_url: str, tmp_path: Path
) -> None:
    job_id = finished_job(client, live_url, {"table.csv": TABLE})
    with pytest.raises(NotFoundError, match="has no output 'nope'"):
        client.download(job_id, "nope", tmp_path)
    running = client.create_job(JobSpec(command=["true"]))
    with pytest.raises(ConflictError, match="it is sent, not completed"):
        client.download(running.job_id, "stdout", tmp_path)
    with pytest.raises(NotFoundError, match="no job"):
        client.download(str(uuid.uuid4()), "stdout", tmp_path)
    assert os.listdir(tmp_path) == ["objects"]


def test_a_failed_jobs_kept_log_is_downloaded_from_the_job(client: Client, live_url: str, tmp_path: Path) -> None:
    job_id = finished_job(client, live_url, {}, stdout=b"partial output before the crash\n")
    failure = {"reason": "nonzero_exit", "message": "exit 1", "logs": Job.objects.get(id=job_id).result["logs"]}
    Job.objects.filter(id=job_id).update(status="failed", result=None, failure=failure)
    job = client.get_job(job_id)
    assert job.result is None
    assert job.download("stdout", tmp_path).read_bytes() == b"partial output before the crash\n"
    with pytest.raises(NotFoundError, match="is failed and kept no stderr"):
        job.download("stderr", tmp_path)


def test_download_of_another_clients_job_is_not_found(client: Client, live_url: str, tmp_path: Path) -> None:
    with Client(live_url, Keypair.generate()) as other:
        job_id = finished_job(other, live_url, {"table.csv": TABLE})
    with pytest.raises(NotFoundError, match=f"no job {job_id}"):
        client.download(job_id, "table.csv", tmp_path)


# -- async -----------------------------------------------------------------------------------------


@pytest.fixture
def finished(client: Client, live_url: str) -> str:
    return finished_job(client, live_url, {"big.bin": BIG})


async def test_async_upload_and_download_round_trip(
    live_url: str, client: Client, finished: str, store: LocalObjectStore, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(BIG)
    async with AsyncClient(live_url, client.keypair) as aclient:
        ref = await aclient.upload(path)
        assert (ref.sha256, ref.size) == (sha(BIG), len(BIG))
        job = await aclient.get_job(finished)
        saved = await job.result.download("big.bin", f"{tmp_path}/out/")
        stdout = await aclient.download(finished, "stdout", tmp_path / "out")  # a directory now
    assert saved == tmp_path / "out" / "big.bin" and saved.read_bytes() == BIG
    assert stdout.read_bytes() == LOG


async def test_async_download_with_a_bad_sha256_leaves_no_file(
    live_url: str, client: Client, finished: str, store: LocalObjectStore, tmp_path: Path
) -> None:
    tampered = bytearray(BIG)
    tampered[CHUNK_SIZE + 7] ^= 0xFF
    store.put(links.output_key(finished, "big.bin"), bytes(tampered))
    async with AsyncClient(live_url, client.keypair) as aclient:
        with pytest.raises(ChecksumError):
            await aclient.download(finished, "big.bin", tmp_path / "big.bin")
    assert not (tmp_path / "big.bin").exists() and leftovers(tmp_path) == []


# -- progress --------------------------------------------------------------------------------------


def test_upload_and_download_report_progress_from_zero_to_the_whole_size(
    client: Client, live_url: str, finished: str, tmp_path: Path
) -> None:
    uploaded: list[tuple[int, int]] = []
    client.upload(BIG, filename="big.bin", on_progress=lambda done, total: uploaded.append((done, total)))
    downloaded: list[tuple[int, int]] = []
    client.download(finished, "big.bin", tmp_path / "big.bin", on_progress=lambda d, t: downloaded.append((d, t)))
    for calls in (uploaded, downloaded):
        assert calls[0] == (0, len(BIG)) and calls[-1] == (len(BIG), len(BIG))
        assert len(calls) >= 5 and [done for done, _ in calls] == sorted(done for done, _ in calls)


async def test_async_upload_and_download_report_progress(
    live_url: str, client: Client, finished: str, tmp_path: Path
) -> None:
    seen: list[tuple[str, int, int]] = []
    async with AsyncClient(live_url, client.keypair) as aclient:
        await aclient.upload(b"abc", filename="abc.txt", on_progress=lambda d, t: seen.append(("up", d, t)))
        await aclient.download(finished, "stdout", tmp_path, on_progress=lambda d, t: seen.append(("down", d, t)))
    assert seen == [("up", 0, 3), ("up", 3, 3), ("down", 0, len(LOG)), ("down", len(LOG), len(LOG))]
