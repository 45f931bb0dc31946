"""The Gridmarket client library: submit signed jobs, follow them live, read their results.

Imports only ``protocol`` (no Django)::

    from facilitator_sdk import Client, JobSpec

    with Client("http://127.0.0.1:8000", ".grid/keys/client.key") as client:
        job = client.run(JobSpec(command=["echo", "hello"]))
        print(job.result.stdout)
"""

from facilitator_sdk.async_client import AsyncClient
from facilitator_sdk.client import Client
from facilitator_sdk.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    ConnectionError,
    GridError,
    InvalidRequestError,
    JobError,
    JobTimeoutError,
    NotFoundError,
)
from facilitator_sdk.job import AsyncJob, Job, JobResult
from protocol.keys import Keypair
from protocol.messages import JobStatusUpdate
from protocol.spec import InlineInput, JobSpec, JobTiming, ResourceLimits, SpecError

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJob",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ConnectionError",
    "GridError",
    "InlineInput",
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
    "ResourceLimits",
    "SpecError",
]
