"""Moving files to and from the grid's store, without I/O of the network: what both clients share.

:class:`UploadSource` reads a file in chunks, hashing and counting what it hands out;
:class:`DownloadSink` writes chunks to a temporary file beside the destination and moves it
into place only once its size and sha256 are right. The clients pump the chunks, sync or async.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from facilitator_sdk.errors import ChecksumError, GridError
from facilitator_sdk.spec import ObjectRef

__all__ = ["CHUNK_SIZE", "DownloadSink", "FileData", "Progress", "UploadSource"]

CHUNK_SIZE = 1024 * 1024
SPOOL_IN_MEMORY = 8 * CHUNK_SIZE  # a stream that cannot seek is spooled to learn its size

FileData = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
# on_progress(bytes_done, bytes_total): called as a transfer goes, once at the start with 0.
Progress = Callable[[int, int], None]


class UploadSource:
    """One file to upload: a name, an exact size (stores want ``Content-Length``) and hashed chunks.

    Use as a context manager: it closes what it opened (never a file object it was given).
    ``on_progress(sent, size)`` is called once the size is known, then after every chunk.
    """

    def __init__(self, file: FileData, filename: str | None = None, on_progress: Progress | None = None) -> None:
        self._stack = contextlib.ExitStack()
        self.on_progress = on_progress
        self.sha256_hash = hashlib.sha256()
        self.sent = 0
        if isinstance(file, (str, os.PathLike)):
            path = Path(file)
            self._fh: IO[bytes] = self._stack.enter_context(path.open("rb"))
            self.size = os.fstat(self._fh.fileno()).st_size
            default_name = path.name
        elif isinstance(file, (bytes, bytearray, memoryview)):
            self._fh = io.BytesIO(file)
            self.size = memoryview(file).nbytes
            default_name = None
        elif hasattr(file, "read"):
            try:
                self._fh, self.size = self._measure(file)
            except BaseException:
                self.close()
                raise
            name = getattr(file, "name", None)
            default_name = Path(name).name if isinstance(name, str) else None
        else:
            raise TypeError(f"upload() takes a path, bytes or a binary file, not {type(file).__name__}")
        if filename is None and default_name is None:
            self.close()
            raise ValueError("give a filename= for data that has none (bytes or an unnamed stream)")
        self.filename = filename or default_name or ""
        if on_progress is not None:
            on_progress(0, self.size)

    def _measure(self, fh: IO[bytes]) -> tuple[IO[bytes], int]:
        mode = getattr(fh, "mode", "b")
        if isinstance(fh, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
            raise TypeError("upload() takes files opened in binary mode ('rb')")
        seekable = getattr(fh, "seekable", None)
        if seekable is not None and seekable():
            start = fh.tell()
            size = fh.seek(0, os.SEEK_END) - start
            fh.seek(start)
            return fh, size
        # A pipe or a socket: copy it aside, chunk by chunk, to know its size before sending.
        spool = self._stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY))  # noqa: SIM115
        size = 0
        while chunk := fh.read(CHUNK_SIZE):
            if not isinstance(chunk, bytes):
                raise TypeError("upload() takes files opened in binary mode ('rb')")
            spool.write(chunk)
            size += len(chunk)
        spool.seek(0)
        return spool, size  # type: ignore[return-value]

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Length": str(self.size), "Content-Type": "application/octet-stream"}

    def read_chunk(self) -> bytes:
        """The next chunk (``b""`` at the end), hashed and counted; never more than ``size`` in all."""
        wanted = min(CHUNK_SIZE, self.size - self.sent)
        if wanted <= 0:
            return b""
        chunk = self._fh.read(wanted)
        if not chunk:
            raise GridError(f"the file ended after {self.sent} of {self.size} bytes: was it changed while sending?")
        self.sha256_hash.update(chunk)
        self.sent += len(chunk)
        if self.on_progress is not None:
            self.on_progress(self.sent, self.size)
        return chunk

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.read_chunk():
            yield chunk

    def finish(self, key: str, answer: dict[str, Any]) -> ObjectRef:
        """The uploaded object, once what the store says it holds matches what was sent.

        The local store answers ``{key, size, sha256}``; a store that answers nothing (S3) is
        taken at its word, which it gave by accepting the exact ``Content-Length``.
        """
        sha256 = self.sha256_hash.hexdigest()
        stored_sha = answer.get("sha256", sha256)
        stored_size = answer.get("size", self.sent)
        if answer.get("key", key) != key:
            raise GridError(f"the store answered for {answer.get('key')!r}, not {key!r}")
        if stored_sha != sha256 or stored_size != self.sent:
            raise ChecksumError(key, sha256, self.sent, str(stored_sha), int(stored_size), what="upload")
        return ObjectRef(key=key, sha256=sha256, size=self.sent)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> UploadSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def target_path(dest: str | os.PathLike[str], path: str) -> Path:
    """Where ``path`` goes: ``dest`` itself, or ``dest/path`` when ``dest`` is a directory.

    A ``dest`` that exists as a directory, or is given with a trailing slash, is a directory;
    the file keeps its relative path under it. Missing parent directories are created.
    """
    is_dir = os.fspath(dest).endswith(("/", os.sep)) or Path(dest).is_dir()
    if is_dir:
        relative = PurePosixPath(path)
        if relative.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
            raise ValueError(f"cannot place {path!r} under a directory: not a plain relative path")
        target = Path(dest).joinpath(*relative.parts)
    else:
        target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


class DownloadSink:
    """Chunks of one file, written beside ``target`` and moved into place only when all is right.

    ``with DownloadSink(...) as sink: sink.write(...); sink.commit()`` — leaving the block
    without :meth:`commit` (an error, a mismatch) removes the temporary file: ``target`` is
    untouched, never half-written. ``on_progress(received, size)`` is called at the start and
    after every chunk.
    """

    def __init__(self, target: Path, name: str, sha256: str, size: int, on_progress: Progress | None = None) -> None:
        self.target, self.name, self.sha256, self.size = target, name, sha256, size
        self.on_progress = on_progress
        self._hash = hashlib.sha256()
        self.received = 0
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        self._temp = Path(temp)
        self._fh = os.fdopen(fd, "wb")
        self._done = False
        if on_progress is not None:
            on_progress(0, size)

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.size:
            raise ChecksumError(self.name, self.sha256, self.size, None, self.received, what="download")
        self._hash.update(chunk)
        self._fh.write(chunk)
        if self.on_progress is not None:
            self.on_progress(self.received, self.size)

    def commit(self) -> Path:
        self._fh.close()
        actual = self._hash.hexdigest()
        if actual != self.sha256 or self.received != self.size:
            raise ChecksumError(self.name, self.sha256, self.size, actual, self.received, what="download")
        os.replace(self._temp, self.target)
        self._done = True
        return self.target

    def __enter__(self) -> DownloadSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self._fh.close()
            self._temp.unlink(missing_ok=True)
