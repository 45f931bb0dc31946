"""Objects in an S3 bucket (AWS, MinIO, moto, ...), handed out through pre-signed URLs.

The sha256 of every object is its ``x-amz-meta-sha256`` metadata. S3 takes metadata when an
upload starts, before the bytes are hashed, so :meth:`~ObjectStore.put` first streams the data
into a temporary file (in ``spool_dir``; the size limit is enforced there, before anything is
sent), then uploads it, in 8 MiB parts read from the file as they go. Objects written without
the metadata (through a pre-signed PUT, or by another tool) get it on their first ``stat()``,
which hashes them once and copies the object onto itself with the digest, if it did not change
meanwhile.

A write-once put, and a write-once pre-signed PUT, carry S3's own condition ``If-None-Match: *``
(conditional writes), so S3 refuses the second write itself (412, turned into ``ObjectExists``)
and no race between a check and a write is left open.

Options: ``bucket`` (required), ``prefix`` (prepended to every key), ``endpoint_url``,
``region_name``, ``access_key_id`` / ``secret_access_key`` / ``session_token`` (default: boto3's
usual chain: environment, config files, instance role), ``addressing_style`` (``path`` for most
S3-compatible servers), ``spool_dir``, ``max_size``, ``chunk_size``.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from facilitator.storage.base import ObjectInfo, ObjectStore
from facilitator.storage.errors import ObjectExists, ObjectNotFound
from facilitator.storage.streams import FileChunks, Measured

__all__ = ["S3ObjectStore"]

logger = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024
MAX_COPY_SIZE = 5 * 1024**3  # a single CopyObject call, used to add the sha256 metadata afterwards
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# If-None-Match: * lost: 412 once the object is there, 409 while another conditional write runs
_EXISTS = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}


class S3ObjectStore(ObjectStore):
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        addressing_style: str | None = None,
        spool_dir: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.bucket, self.spool_dir = bucket, spool_dir
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = Config(signature_version="s3v4", s3={"addressing_style": addressing_style or "auto"})
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            config=config,
        )
        self._transfer = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE)

    def __repr__(self) -> str:
        return f"<S3ObjectStore {self.alias!r} s3://{self.bucket}/{self.prefix}>"

    def _name(self, key: str) -> str:
        return self.prefix + key

    def _put(self, key: str, chunks: Measured, overwrite: bool) -> ObjectInfo:
        # A named file: boto3 reads the parts of a named file lazily, but those of a file object
        # whole into memory, several at a time.
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="grid-s3-put-") as spool:
            for chunk in chunks:
                spool.write(chunk)
            spool.flush()
            metadata = {"sha256": chunks.sha256}
            if overwrite:
                self.client.upload_file(
                    spool.name, self.bucket, self._name(key), ExtraArgs={"Metadata": metadata}, Config=self._transfer
                )
            else:
                try:
                    self._create(spool, chunks.size, key, metadata)
                except ClientError as exc:
                    raise _translate(exc, key) from exc
        return ObjectInfo(key, chunks.size, chunks.sha256, self._head(key)["LastModified"])

    def _create(self, spool: IO[bytes], size: int, key: str, metadata: dict[str, str]) -> None:
        """Upload only if no object is at ``key`` (boto3's transfer manager cannot ask for that)."""
        target = {"Bucket": self.bucket, "Key": self._name(key)}
        spool.seek(0)
        if size <= PART_SIZE:
            self.client.put_object(**target, Body=spool.read(), Metadata=metadata, IfNoneMatch="*")
            return
        upload_id = self.client.create_multipart_upload(**target, Metadata=metadata)["UploadId"]
        try:
            parts = []
            for number in range(1, -(-size // PART_SIZE) + 1):
                part = self.client.upload_part(
                    **target, UploadId=upload_id, PartNumber=number, Body=spool.read(PART_SIZE)
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
            self.client.complete_multipart_upload(
                **target, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except BaseException:
            self.client.abort_multipart_upload(**target, UploadId=upload_id)
            raise

    def _head(self, key: str) -> dict[str, Any]:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            raise _translate(exc, key) from exc

    def _open(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        if end is not None and end <= start:
            self._head(key)  # an empty range still needs the object to exist
            return iter(())
        request = {"Bucket": self.bucket, "Key": self._name(key)}
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(**request)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # start at or past the end
                return iter(())
            raise _translate(exc, key) from exc
        return FileChunks(body, self.chunk_size)

    def _stat(self, key: str) -> ObjectInfo:
        head = self._head(key)
        sha256 = head.get("Metadata", {}).get("sha256")
        if sha256 is None:
            sha256 = self._add_sha256(key, head)
        return ObjectInfo(key, head["ContentLength"], sha256, head["LastModified"])

    def _add_sha256(self, key: str, head: dict[str, Any]) -> str:
        """Hash an object stored without its digest, and record it if the object is unchanged."""
        digest = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=self._name(key), IfMatch=head["ETag"])["Body"]
        for chunk in FileChunks(body, self.chunk_size):
            digest.update(chunk)
        sha256 = digest.hexdigest()
        if head["ContentLength"] <= MAX_COPY_SIZE:
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=self._name(key),
                    CopySource={"Bucket": self.bucket, "Key": self._name(key)},
                    CopySourceIfMatch=head["ETag"],
                    Metadata={**head.get("Metadata", {}), "sha256": sha256},
                    MetadataDirective="REPLACE",
                    ContentType=head.get("ContentType", "binary/octet-stream"),
                )
            except ClientError:  # changed meanwhile: the next stat hashes the new version
                logger.info("could not record the sha256 of s3://%s/%s", self.bucket, self._name(key))
        return sha256

    def _exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ObjectNotFound:
            return False
        return True

    def _delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def _signed_url(self, key: str, method: str, expires_s: int, overwrite: bool) -> str:
        operation = {"GET": "get_object", "PUT": "put_object"}[method]
        params = {"Bucket": self.bucket, "Key": self._name(key)}
        if method == "PUT" and not overwrite:
            params["IfNoneMatch"] = "*"  # a signed header: the PUT must send WRITE_ONCE_HEADERS
        return self.client.generate_presigned_url(operation, Params=params, ExpiresIn=expires_s)


def _translate(exc: ClientError, key: str) -> Exception:
    code = exc.response.get("Error", {}).get("Code")
    if code in _NOT_FOUND:
        return ObjectNotFound(key)
    if code in _EXISTS:
        return ObjectExists(key)
    return exc
