"""Files between this machine and the grid for ``grid job …``: inputs up, outputs and logs down.

Every transfer goes through the SDK (chunked, checked against its sha256) with a
:class:`~grid.cli.output.TransferBar`. A directory given as an input travels as a zip that the
executor unpacks into the input's path; inline artifacts come back inside the job's result.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from grid.cli.errors import CliError, ExitCode
from grid.cli.output import TransferBar

__all__ = ["STORE_PREFIX", "InputArg", "download_files", "parse_input", "upload_inputs", "write_log"]

STORE_PREFIX = "store:"


@dataclass(frozen=True)
class InputArg:
    """One ``--input``: a local file or directory (``source``), or a key of the store, and its path in the job."""

    source: str
    dest: str
    in_store: bool = False

    @property
    def is_dir(self) -> bool:
        return not self.in_store and Path(self.source).is_dir()


def parse_input(value: str) -> InputArg:
    """``SRC[:DEST]`` (a local path) or ``store:KEY[:DEST]``; ``DEST`` defaults to the source's name.

    Raises:
        CliError: the source is missing, or ``DEST`` is not a plain relative path (a usage error).
    """
    if value.startswith(STORE_PREFIX):
        key, _, dest = value.removeprefix(STORE_PREFIX).partition(":")
        if not key:
            raise CliError(f"--input {value}: give the object's key, store:KEY[:DEST]", ExitCode.USAGE)
        item = InputArg(key, dest or PurePosixPath(key).name, in_store=True)
    else:
        source, dest = value, ""
        if not os.path.lexists(value) and ":" in value:
            source, dest = value.rsplit(":", 1)
        if not os.path.exists(source):
            raise CliError(
                f"--input {value}: no such file or directory {source!r} (an object already in the store is store:KEY)",
                ExitCode.USAGE,
            )
        item = InputArg(source, dest or Path(source).resolve().name)
    _check_job_path(item.dest, f"--input {value}")
    return item


def _check_job_path(path: str, what: str) -> None:
    from protocol.spec import ObjectOutput

    try:
        ObjectOutput(path=path)
    except ValueError:
        raise CliError(
            f"{what}: {path!r} must be a relative path in the job without '.', '..' or empty parts", ExitCode.USAGE
        ) from None


def upload_inputs(client: Any, items: list[InputArg]) -> list[Any]:
    """The job's inputs for ``items``: local files and directories uploaded (with a bar), store keys as they are."""
    from facilitator_sdk import Input

    inputs = []
    for item in items:
        if item.in_store:
            inputs.append(Input.object(item.dest, item.source))
            continue
        with _as_file(item) as (path, filename), TransferBar(f"upload {item.source}") as bar:
            ref = client.upload(path, filename=filename, on_progress=bar)
        inputs.append(Input.object(item.dest, ref, unpack=item.is_dir))
    return inputs


def download_files(client: Any, job: Any, paths: list[str], dest: Path, quiet: bool = False) -> list[Path]:
    """Save ``paths`` of a completed job under ``dest`` (every object output and inline artifact
    when ``paths`` is empty); returns what was written.

    Raises:
        CliError: a path the job does not have (NOT_FOUND), or a job that has not completed.
    """
    result = job.result
    if result is None:
        raise CliError(f"job {job.job_id} is {job.status}: only a completed job has files to download")
    stored = [out["path"] for out in result.outputs if out.get("kind", "object") == "object"]
    wanted = paths or [*stored, *result.artifacts]
    written = []
    for path in wanted:
        if path in result.artifacts and path not in stored:
            target = _under(dest, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(result.artifacts[path]))
        else:
            with TransferBar(f"download {path}") as bar:
                target = client.download(job.job_id, path, _under(dest, path), on_progress=bar)
        written.append(target)
        if not quiet:
            print(target)
    return written


def _under(dest: Path, path: str) -> Path:
    """``dest/path`` for a path the job reported, refused if it would land outside ``dest``."""
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute() or any(part in ("", ".", "..") for part in parts):
        raise CliError(f"the job names a file {path!r} that is not a plain relative path: not written")
    return dest.joinpath(*parts)


def write_log(client: Any, job: Any, stream: str, out: IO[str] | None = None) -> None:
    """The whole ``stdout`` or ``stderr`` of an ended job, from the store, to ``out``.

    A failed job that kept no logs has only the tail its failure carries: that is written, with a note.
    """
    from facilitator_sdk import NotFoundError

    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="grid-log-") as tmp:
        try:
            with TransferBar(f"download {stream}") as bar:
                path = client.download(job.job_id, stream, Path(tmp) / stream, on_progress=bar)
        except NotFoundError:
            tail = (job.failure or {}).get(f"{stream}_tail", "")
            print(f"(job {job.job_id} kept no {stream}; the last part, from its failure:)", file=sys.stderr)
            out.write(tail)
            out.flush()
            return
        out.flush()
        binary = getattr(out, "buffer", None)
        with path.open("rb") as fh:
            if binary is not None:
                shutil.copyfileobj(fh, binary)
                binary.flush()
            else:
                while chunk := fh.read(1 << 16):
                    out.write(chunk.decode(errors="replace"))


def _zip_dir(directory: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                archive.write(path, path.relative_to(directory).as_posix())


@contextlib.contextmanager
def _as_file(item: InputArg) -> Iterator[tuple[Path, str]]:
    """The file to upload for ``item`` and its name: itself, or a zip of the directory."""
    if not item.is_dir:
        yield Path(item.source), Path(item.source).name
        return
    with tempfile.TemporaryDirectory(prefix="grid-input-") as tmp:
        archive = Path(tmp) / f"{PurePosixPath(item.dest).name}.zip"
        _zip_dir(Path(item.source), archive)
        yield archive, archive.name
