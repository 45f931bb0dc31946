"""Objects as files under one directory, served by the facilitator through signed URLs.

Layout under ``root`` (default ``$GRID_HOME/objects``)::

    data/<key>   the object's bytes, the key used as a relative path
    meta/<key>   a JSON sidecar: {"size", "sha256", "created", "inode"}
    tmp/         writes in progress

A write goes to ``tmp/`` first and is moved into place with ``os.replace`` (atomic on one
filesystem; a write-once put links it into place instead, which fails if a file is there), data
then sidecar, so readers see the old object or the new one, never a partial
one. The sidecar records the inode of the data it describes: if a crash or a concurrent writer
leaves a sidecar that does not match its data, or a file was dropped into ``data/`` by hand
(import without copy), :meth:`stat` hashes the file again and rewrites the sidecar.

Options: ``root``, ``secret`` and ``base_url`` (see
:class:`~facilitator.storage.signing.UrlSigner`), ``max_size``, ``chunk_size``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from facilitator.storage.base import ObjectInfo, ObjectStore
from facilitator.storage.errors import InvalidKey, KeyConflict, ObjectExists, ObjectNotFound
from facilitator.storage.signing import DEFAULT_BASE_URL, UrlSigner
from facilitator.storage.streams import FileChunks, Measured

__all__ = ["LocalObjectStore"]


class LocalObjectStore(ObjectStore):
    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        secret: str | bytes | None = None,
        base_url: str = DEFAULT_BASE_URL,
        **options,
    ) -> None:
        super().__init__(**options)
        if root is None:
            from django.conf import settings

            root = Path(settings.GRID_HOME) / "objects"
        self.root = Path(root).resolve()
        self.url_signer = UrlSigner(secret, base_url)
        for part in ("data", "meta", "tmp"):
            (self.root / part).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<LocalObjectStore {self.alias!r} {str(self.root)!r}>"

    def path(self, key: str) -> Path:
        """Where the object's bytes live (the key is validated)."""
        return self._under("data", key)

    def _under(self, tree: str, key: str) -> Path:
        # Keys are validated already; this is safe_join's second line of defence.
        base = os.path.join(self.root, tree)
        path = os.path.abspath(os.path.join(base, key))
        if os.path.commonpath([base, path]) != base or path == base:
            raise InvalidKey(key, "escapes the store's root")
        return Path(path)

    # -- writing -----------------------------------------------------------------------------------

    def _put(self, key: str, chunks: Measured, overwrite: bool) -> ObjectInfo:
        data_path, meta_path = self._under("data", key), self._under("meta", key)
        with self._temp_file() as (data_tmp, fh):
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
            inode = os.fstat(fh.fileno()).st_ino
            info = ObjectInfo(key, chunks.size, chunks.sha256, datetime.now(UTC))
            with self._temp_file() as (meta_tmp, meta_fh):
                meta_fh.write(_encode_meta(info, inode))
                meta_fh.flush()
                self._move(data_tmp, data_path, key, overwrite)
                self._move(meta_tmp, meta_path, key)
        return info

    @contextlib.contextmanager
    def _temp_file(self) -> Iterator[tuple[str, IO[bytes]]]:
        """A new file under ``tmp/``, removed on the way out unless it was moved into place."""
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
        try:
            with os.fdopen(fd, "wb") as fh:
                yield name, fh
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def _move(self, temp: str, path: Path, key: str, overwrite: bool = True) -> None:
        for attempt in range(3):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if overwrite:
                    os.replace(temp, path)
                else:
                    os.link(temp, path)  # atomic "create if absent"; the temp name is unlinked after
                return
            except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
                if not overwrite and isinstance(exc, FileExistsError) and path.is_file():
                    raise ObjectExists(key) from None
                raise KeyConflict(f"key {key!r} clashes with another key used as a folder here") from exc
            except FileNotFoundError:
                if attempt == 2:  # a concurrent delete pruned the folder between mkdir and replace
                    raise

    def _delete(self, key: str) -> None:
        for tree in ("data", "meta"):
            path = self._under(tree, key)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                os.unlink(path)
            self._prune(path.parent, self.root / tree)

    @staticmethod
    def _prune(folder: Path, top: Path) -> None:
        """Remove the folders left empty, so a deleted ``a/b`` does not block a later ``a``."""
        while folder != top and top in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                return
            folder = folder.parent

    # -- reading -----------------------------------------------------------------------------------

    def _open(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        try:
            fh = open(self._under("data", key), "rb")  # noqa: SIM115  (closed by the generator)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        try:
            fh.seek(start)
        except BaseException:
            fh.close()
            raise
        return FileChunks(fh, self.chunk_size, None if end is None else end - start)

    def _exists(self, key: str) -> bool:
        return self._under("data", key).is_file()

    def _stat(self, key: str) -> ObjectInfo:
        data_path, meta_path = self._under("data", key), self._under("meta", key)
        try:
            st = data_path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        if not data_path.is_file():
            raise ObjectNotFound(key)
        try:
            meta = json.loads(meta_path.read_bytes())
            if meta["inode"] == st.st_ino and meta["size"] == st.st_size:
                return ObjectInfo(key, meta["size"], meta["sha256"], datetime.fromisoformat(meta["created"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or unreadable sidecar: rebuilt below
        return self._rebuild_meta(key, data_path, meta_path)

    def _rebuild_meta(self, key: str, data_path: Path, meta_path: Path) -> ObjectInfo:
        """Hash the file as it is and record it (imported files, and the aftermath of a crash)."""
        digest = hashlib.sha256()
        try:
            with open(data_path, "rb") as fh:
                st = os.fstat(fh.fileno())
                while chunk := fh.read(self.chunk_size):
                    digest.update(chunk)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        info = ObjectInfo(key, st.st_size, digest.hexdigest(), datetime.fromtimestamp(st.st_mtime, UTC))
        with self._temp_file() as (meta_tmp, meta_fh):
            meta_fh.write(_encode_meta(info, st.st_ino))
            meta_fh.flush()
            self._move(meta_tmp, meta_path, key)
        return info

    def _signed_url(self, key: str, method: str, expires_s: int, overwrite: bool) -> str:
        return self.url_signer.url_for(method, key, expires_s, overwrite)


def _encode_meta(info: ObjectInfo, inode: int) -> bytes:
    return json.dumps(
        {"size": info.size, "sha256": info.sha256, "created": info.created.isoformat(), "inode": inode}
    ).encode()
