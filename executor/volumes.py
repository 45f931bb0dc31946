"""Fetch a job's inputs into its volume (DESIGN.md §5 "fetch inputs", §6).

Inline inputs are decoded; URL and object inputs stream to a temporary file in ``scratch``
(never whole in memory), are counted against the miner's limits as they arrive, checked
against their sha256, and moved into place. With ``unpack`` the download is a zip extracted
into the directory ``path``: every entry name is checked before anything is written, and both
the sizes the archive declares and the bytes it actually produces are counted, since headers lie.

Failures raise :class:`~executor.datapolicy.DataPlaneError`; the caller bounds the whole fetch
with the spec's ``timing.download`` and removes the job directory afterwards, but temporary
files in ``scratch`` are removed here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from executor.datapolicy import DataPlaneError, DataPolicy
from executor.transfer import check_status, guard, new_client, redact, require_store_url, with_retries
from protocol.messages.jobs import StoreLinks
from protocol.spec import InlineInput, JobSpec, ObjectInput, UrlInput
from protocol.status import FailureReason

__all__ = ["fetch_inputs"]

CHUNK = 64 * 1024
MAX_REDIRECTS = 5
DIR_MODE = 0o755
FILE_MODE = 0o644
_DRIVE = re.compile(r"^[A-Za-z]:")
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# What reading a damaged or exotic entry can raise (encrypted entries raise RuntimeError).
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


class _Budget:
    """Bytes the job's inputs may still add to its volume: one limit per input and in total."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def take(self, size: int, what: str) -> None:
        if size > self.remaining:
            raise self.exceeded(what)
        self.used += size

    def exceeded(self, what: str) -> DataPlaneError:
        if self.used == 0:
            message = f"{what} is larger than the miner's limit of {self.limit} bytes"
        else:
            message = f"{what} takes the job's inputs over the miner's limit of {self.limit} bytes"
        return DataPlaneError(FailureReason.INPUT_TOO_LARGE, message)


async def fetch_inputs(spec: JobSpec, links: StoreLinks, volume: Path, scratch: Path, policy: DataPolicy) -> None:
    """Write every input of ``spec`` under ``volume``.

    Args:
        spec: the verified job spec.
        links: the facilitator's signed GET URLs of the object inputs, by input path.
        volume: the job's (empty) input directory.
        scratch: a directory of the executor's for partial downloads.
        policy: the miner's limits.

    Raises:
        DataPlaneError: DOWNLOAD_FAILED, INPUT_TOO_LARGE or INPUT_REFUSED.
    """
    budget = _Budget(policy.max_input_bytes)
    client: httpx.AsyncClient | None = None
    try:
        for item in spec.inputs:
            if isinstance(item, InlineInput):
                _write_inline(item, volume, budget)
                continue
            client = client or new_client(policy)
            await _fetch(client, item, links, volume, scratch, policy, budget)
    finally:
        if client is not None:
            await client.aclose()


def _write_inline(item: InlineInput, volume: Path, budget: _Budget) -> None:
    data = base64.b64decode(item.content_b64)
    budget.take(len(data), f"input {item.path!r}")
    parts = item.path.split("/")
    target = _make_dirs(volume, parts[:-1], f"input {item.path!r}") / parts[-1]
    fd = os.open(target, _NEW_FILE, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, FILE_MODE)
        out.write(data)


async def _fetch(
    client: httpx.AsyncClient,
    item: UrlInput | ObjectInput,
    links: StoreLinks,
    volume: Path,
    scratch: Path,
    policy: DataPolicy,
    budget: _Budget,
) -> None:
    name = f"input {item.path!r}"
    if isinstance(item, ObjectInput):
        link = links.inputs.get(item.path)
        if link is None:
            raise DataPlaneError(
                FailureReason.DOWNLOAD_FAILED, f"{name}: the facilitator gave no link for object {item.key!r}"
            )
        require_store_url(link.url, FailureReason.DOWNLOAD_FAILED, name)
        url, guarded = link.url, False  # the facilitator's signed link: trusted
    else:
        url, guarded = item.url, True
    what = f"{name} (GET {redact(url)})"

    fd, tmp_name = tempfile.mkstemp(dir=scratch, prefix="input-", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        digest, size = await with_retries(
            lambda: _download(client, url, tmp, guarded, policy, budget, what),
            policy,
            reason=FailureReason.DOWNLOAD_FAILED,
            what=what,
        )
        if item.sha256 is not None and digest != item.sha256:
            raise DataPlaneError(
                FailureReason.DOWNLOAD_FAILED, f"{what}: sha256 mismatch: expected {item.sha256}, got {digest}"
            )
        parts = item.path.split("/")
        if item.unpack:
            target = _make_dirs(volume, parts, name)
            written = await _extract_in_thread(tmp, target, budget.remaining, policy.max_zip_entries, name)
            budget.take(written, name)
        else:
            budget.take(size, name)
            target = _make_dirs(volume, parts[:-1], name) / parts[-1]
            os.chmod(tmp, FILE_MODE)
            shutil.move(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


async def _download(
    client: httpx.AsyncClient, url: str, dest: Path, guarded: bool, policy: DataPolicy, budget: _Budget, what: str
) -> tuple[str, int]:
    """One attempt: stream ``url`` into ``dest`` (truncated first), return its sha256 and size."""
    async with _get(client, url, guarded, policy, what) as response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > budget.remaining:
            raise budget.exceeded(what)
        digest = hashlib.sha256()
        size = 0
        with open(dest, "wb") as out:
            async for chunk in response.aiter_bytes(CHUNK):
                size += len(chunk)
                if size > budget.remaining:
                    raise budget.exceeded(what)
                digest.update(chunk)
                out.write(chunk)
    return digest.hexdigest(), size


@contextlib.asynccontextmanager
async def _get(
    client: httpx.AsyncClient, url: str, guarded: bool, policy: DataPolicy, what: str
) -> AsyncIterator[httpx.Response]:
    """A streamed 2xx reply to GET ``url``, following redirects by hand so each hop is checked."""
    target: str | httpx.URL = url
    for _ in range(MAX_REDIRECTS + 1):
        if guarded:
            await guard(target, policy, FailureReason.INPUT_REFUSED, what)
        # identity: the sha256 and the size limits apply to the bytes as served.
        request = client.build_request("GET", target, headers={"Accept-Encoding": "identity"})
        response = await client.send(request, stream=True)
        try:
            if response.next_request is None:
                await check_status(response)
                yield response
                return
            target = response.next_request.url
        finally:
            await response.aclose()
    raise DataPlaneError(FailureReason.DOWNLOAD_FAILED, f"{what}: more than {MAX_REDIRECTS} redirects")


def _make_dirs(root: Path, parts: list[str], what: str) -> Path:
    """Create ``root/parts...`` (mode 0755) without following links; return the last directory."""
    current = root
    for part in parts:
        current = current / part
        try:
            os.mkdir(current, DIR_MODE)
            os.chmod(current, DIR_MODE)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise DataPlaneError(
                    FailureReason.INPUT_REFUSED, f"{what}: {current.relative_to(root)} is not a directory"
                ) from None
    return current


async def _extract_in_thread(archive: Path, dest: Path, limit: int, max_entries: int, what: str) -> int:
    """Extract off the event loop; a cancelled fetch stops the thread at its next chunk."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_extract_zip, archive, dest, limit, max_entries, what, stop)
    except asyncio.CancelledError:
        stop.set()
        raise


def _refused(message: str) -> DataPlaneError:
    return DataPlaneError(FailureReason.INPUT_REFUSED, message)


def _too_large(message: str) -> DataPlaneError:
    return DataPlaneError(FailureReason.INPUT_TOO_LARGE, message)


def _declared_entries(archive: Path) -> int | None:
    """The entry count of the end-of-central-directory record, read before ``ZipFile`` builds
    one object per entry (millions of empty entries fit in a small archive)."""
    try:
        with open(archive, "rb") as fp:
            record = zipfile._EndRecData(fp)  # type: ignore[attr-defined]  # private, stable since 2.x
    except (AttributeError, OSError):
        return None
    return None if not record else int(record[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]


def _entry_parts(info: zipfile.ZipInfo, what: str) -> list[str]:
    """The checked path parts of one entry (empty for the archive's own ``./``)."""
    name = info.orig_filename
    shown = f"{what}: entry {name!r}"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _refused(f"{shown} is a symbolic link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _refused(f"{shown} is a device, fifo or socket")
    if info.flag_bits & 0x1:
        raise _refused(f"{shown} is encrypted")
    if "\x00" in name or "\\" in name:
        raise _refused(f"{shown} has a backslash or NUL in its name")
    if name.startswith("/") or _DRIVE.match(name):
        raise _refused(f"{shown} is an absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise _refused(f"{shown} climbs out with '..'")
    parts = [part for part in parts if part not in ("", ".")]
    if not parts and not info.is_dir():
        raise _refused(f"{shown} has no name")
    return parts


def _extract_zip(archive: Path, dest: Path, limit: int, max_entries: int, what: str, stop: threading.Event) -> int:
    """Check every entry, then extract into ``dest``; return the bytes written."""
    declared_count = _declared_entries(archive)
    if declared_count is not None and declared_count > max_entries:
        raise _too_large(f"{what}: the archive has {declared_count} entries; the miner's limit is {max_entries}")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise _refused(f"{what}: not a zip archive") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise _too_large(f"{what}: the archive has {len(infos)} entries; the miner's limit is {max_entries}")
        plan: list[tuple[zipfile.ZipInfo, list[str]]] = []
        seen: set[tuple[str, ...]] = set()
        for info in infos:
            parts = _entry_parts(info, what)
            if not parts:
                continue
            if tuple(parts) in seen:
                raise _refused(f"{what}: the archive has two entries named {'/'.join(parts)!r}")
            seen.add(tuple(parts))
            plan.append((info, parts))
        declared = _declared_size(infos)
        if declared > limit:
            raise _too_large(f"{what}: the archive unpacks to {declared} bytes; the limit is {limit}")

        written = 0
        for info, parts in plan:
            if info.is_dir() or stat.S_ISDIR(info.external_attr >> 16):
                _make_dirs(dest, parts, what)
                continue
            target = _make_dirs(dest, parts[:-1], what) / parts[-1]
            try:
                fd = os.open(target, _NEW_FILE, FILE_MODE)
            except FileExistsError:
                raise _refused(f"{what}: entry {info.orig_filename!r} collides with another entry") from None
            with os.fdopen(fd, "wb") as out:
                os.fchmod(fd, FILE_MODE)
                try:
                    with zf.open(info) as source:
                        while chunk := source.read(CHUNK):
                            if stop.is_set():
                                raise asyncio.CancelledError
                            written += len(chunk)
                            if written > limit:  # the declared sizes lied
                                raise _too_large(f"{what}: the archive unpacks to more than {limit} bytes")
                            out.write(chunk)
                except _ZIP_READ_ERRORS as exc:
                    raise _refused(f"{what}: cannot extract entry {info.orig_filename!r}: {exc}") from None
    return written


def _declared_size(infos: list[zipfile.ZipInfo]) -> int:
    """The uncompressed total the archive claims (tests replace it to simulate lying headers)."""
    return sum(info.file_size for info in infos)
