"""A job's inputs and outputs, built with ``Input.…`` and ``Output.…``::

    ref = client.upload("data.zip")
    spec = JobSpec(
        command=["python", "main.py"],
        inputs=[
            Input.inline("main.py", source),                          # a small file, inside the spec
            Input.object("data", ref, unpack=True),                   # uploaded to the grid's store
            Input.url("model.bin", "https://example.org/m.bin", sha256=digest),
        ],
        outputs=[
            Output.object("result.csv"),                              # into the grid's store
            Output.url("report.pdf", presigned_put_url),              # to a URL of your own
        ],
    )

Paths are relative: inputs under the job's ``GRID_INPUT_DIR``, outputs under ``GRID_OUTPUT_DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.spec import InlineInput, ObjectInput, ObjectOutput, UrlInput, UrlOutput

__all__ = ["Input", "ObjectRef", "Output"]


@dataclass(frozen=True)
class ObjectRef:
    """An object of the grid's store, as :meth:`Client.upload` returns it."""

    key: str
    sha256: str
    size: int


class Input:
    """Constructors of a job's inputs (a namespace: ``Input.inline``, ``Input.url``, ``Input.object``)."""

    def __init__(self) -> None:
        raise TypeError("Input is a namespace: use Input.inline(), Input.url() or Input.object()")

    @staticmethod
    def inline(path: str, data: bytes | str) -> InlineInput:
        """A small file carried inside the spec (text is written as UTF-8)."""
        return InlineInput.from_bytes(path, data.encode() if isinstance(data, str) else bytes(data))

    @staticmethod
    def url(path: str, url: str, sha256: str | None = None, unpack: bool = False) -> UrlInput:
        """A file the executor fetches over HTTP(S); ``unpack`` extracts a zip into the directory ``path``."""
        return UrlInput(path=path, url=url, sha256=sha256, unpack=unpack)

    @staticmethod
    def object(path: str, ref: ObjectRef | str, unpack: bool = False, sha256: str | None = None) -> ObjectInput:
        """An object of the grid's store: an :class:`ObjectRef` (its sha256 is then checked) or a key."""
        if isinstance(ref, ObjectRef):
            if sha256 is not None and sha256 != ref.sha256:
                raise ValueError(f"sha256 {sha256} contradicts the reference's {ref.sha256}")
            return ObjectInput(path=path, key=ref.key, sha256=ref.sha256, unpack=unpack)
        return ObjectInput(path=path, key=ref, sha256=sha256, unpack=unpack)


class Output:
    """Constructors of a job's outputs (a namespace: ``Output.object``, ``Output.url``)."""

    def __init__(self) -> None:
        raise TypeError("Output is a namespace: use Output.object() or Output.url()")

    @staticmethod
    def object(path: str) -> ObjectOutput:
        """The file ``path`` becomes an object of the grid's store: ``job.result.download(path, dest)``."""
        return ObjectOutput(path=path)

    @staticmethod
    def url(
        path: str, url: str, method: str = "PUT", fields: dict[str, str] | None = None, file_field: str = "file"
    ) -> UrlOutput:
        """The file ``path`` is sent to your pre-signed URL: ``PUT`` as the body, or ``POST`` as a form
        (``fields`` first, the file last under ``file_field``: S3's pre-signed POST)."""
        return UrlOutput(path=path, url=url, method=method, fields=fields or {}, file_field=file_field)  # type: ignore[arg-type]
