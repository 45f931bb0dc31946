"""The Gridmarket client library: submit signed jobs, follow them live, read their results.

Imports only ``protocol`` (no Django)::

    from facilitator_sdk import Client, JobSpec

    with Client("http://127.0.0.1:8000", ".grid/keys/client.key") as client:
        job = client.run(JobSpec(command=["echo", "hello"]))
        print(job.result.stdout)

Data goes through the grid's object store::

    ref = client.upload("data.csv")
    job = client.run(JobSpec(command=["sh", "-c", "wc -l < $GRID_INPUT_DIR/data.csv > $GRID_OUTPUT_DIR/n"],
                             inputs=[Input.object("data.csv", ref)], outputs=[Output.object("n")]))
    job.result.download("n", "out/")      # out/n, checked against the result's sha256
"""

from facilitator_sdk.async_client import AsyncClient
from facilitator_sdk.client import Client
from facilitator_sdk.errors import (
    ApiError,
    AuthenticationError,
    ChecksumError,
    ConflictError,
    ConnectionError,
    GridError,
    InvalidRequestError,
    JobError,
    JobTimeoutError,
    NotFoundError,
    RateLimitedError,
    ReplySignatureError,
    SessionEnded,
    StreamBrokenError,
    StreamingConnectionError,
    StreamingError,
    StreamingTrustError,
)
from facilitator_sdk.job import AsyncJob, AsyncJobResult, Job, JobResult
from facilitator_sdk.report import AsyncReport, Report, ReportTimeoutError
from facilitator_sdk.spec import Input, ObjectRef, Output
from facilitator_sdk.streaming import (
    AsyncStreamClient,
    AsyncWebSocketSession,
    SealedResponse,
    StreamClient,
    StreamTarget,
    WebSocketSession,
)
from protocol.keys import Keypair
from protocol.messages import JobStatusUpdate
from protocol.spec import (
    InlineInput,
    JobSpec,
    JobTiming,
    ObjectInput,
    ObjectOutput,
    ResourceLimits,
    SpecError,
    UrlInput,
    UrlOutput,
)
from protocol.streaming import Evidence, verify_evidence

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJob",
    "AsyncJobResult",
    "AsyncReport",
    "AsyncStreamClient",
    "AsyncWebSocketSession",
    "AuthenticationError",
    "ChecksumError",
    "Client",
    "ConflictError",
    "ConnectionError",
    "Evidence",
    "GridError",
    "InlineInput",
    "Input",
    "InvalidRequestError",
    "Job",
    "JobError",
    "JobResult",
    "JobSpec",
    "JobStatusUpdate",
    "JobTimeoutError",
    "JobTiming",
    "Keypair",
    "NotFoundError",
    "ObjectInput",
    "ObjectOutput",
    "ObjectRef",
    "Output",
    "RateLimitedError",
    "ReplySignatureError",
    "Report",
    "ReportTimeoutError",
    "ResourceLimits",
    "SealedResponse",
    "SessionEnded",
    "SpecError",
    "StreamBrokenError",
    "StreamClient",
    "StreamTarget",
    "StreamingConnectionError",
    "StreamingError",
    "StreamingTrustError",
    "UrlInput",
    "UrlOutput",
    "WebSocketSession",
    "verify_evidence",
]
