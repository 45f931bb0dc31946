"""Message models and the union each direction of each hop accepts (DESIGN.md §3)."""

from __future__ import annotations

from protocol.messages.auth import AuthChallenge, AuthOk, AuthResponse
from protocol.messages.base import Error, Heartbeat, Message, parse_frame, union_adapter
from protocol.messages.facilitator import (
    JobCreate,
    JobNew,
    JobReceived,
    JobStatusAck,
    JobStatusUpdate,
    JobUnwatch,
    JobWatch,
    StatusKey,
)
from protocol.messages.integrity import ReceiptSign, ReceiptSigned, ReportMalicious, ReportOutcome, Scores
from protocol.messages.jobs import (
    Capacity,
    ClassCapacity,
    ExecutionDone,
    ExecutorReady,
    JobAccepted,
    JobCancel,
    JobContext,
    JobDeclined,
    JobFailed,
    JobFailure,
    JobFinished,
    JobFull,
    JobInfraFailed,
    JobInitial,
    JobReserved,
    JobResult,
    JobsRunning,
    Manifest,
    OutputRecord,
    StoreLink,
    StoreLinks,
    StreamingEndpoint,
    StreamingReady,
    VolumesReady,
)
from protocol.messages.relay import RELAYED_DOWN, RELAYED_UP, RelayCall, RelayError, RelayReply

__all__ = [
    "AUTH_FROM_CLIENT",
    "AUTH_FROM_SERVER",
    "CLIENT_TO_FACILITATOR",
    "EXECUTOR_TO_MINER",
    "FACILITATOR_TO_CLIENT",
    "FACILITATOR_TO_VALIDATOR",
    "MINER_TO_EXECUTOR",
    "MINER_TO_VALIDATOR",
    "RELAYED_DOWN",
    "RELAYED_UP",
    "VALIDATOR_TO_FACILITATOR",
    "VALIDATOR_TO_MINER",
    "AuthChallenge",
    "AuthOk",
    "AuthResponse",
    "Capacity",
    "ClassCapacity",
    "Error",
    "ExecutionDone",
    "ExecutorReady",
    "Heartbeat",
    "JobAccepted",
    "JobCancel",
    "JobContext",
    "JobCreate",
    "JobDeclined",
    "JobFailed",
    "JobFailure",
    "JobFinished",
    "JobFull",
    "JobInfraFailed",
    "JobInitial",
    "JobNew",
    "JobReceived",
    "JobReserved",
    "JobResult",
    "JobStatusAck",
    "JobStatusUpdate",
    "JobUnwatch",
    "JobWatch",
    "JobsRunning",
    "Manifest",
    "Message",
    "OutputRecord",
    "ReceiptSign",
    "ReceiptSigned",
    "RelayCall",
    "RelayError",
    "RelayReply",
    "ReportMalicious",
    "ReportOutcome",
    "Scores",
    "StatusKey",
    "StoreLink",
    "StoreLinks",
    "StreamingEndpoint",
    "StreamingReady",
    "VolumesReady",
    "parse_frame",
]

_COMMON = (Heartbeat, Error)
_EXECUTOR_REPORTS = (
    ExecutorReady,
    VolumesReady,
    StreamingReady,
    ExecutionDone,
    JobFinished,
    JobFailed,
    JobInfraFailed,
)

# The relayed families (protocol/messages/relay.py) ride every hop of the path, up or down.
FACILITATOR_TO_VALIDATOR = union_adapter(*_COMMON, JobNew, JobCancel, JobStatusAck, ReportMalicious, *RELAYED_DOWN)
VALIDATOR_TO_FACILITATOR = union_adapter(
    *_COMMON, JobReceived, JobStatusUpdate, Scores, Capacity, ReportOutcome, *RELAYED_UP
)
VALIDATOR_TO_MINER = union_adapter(*_COMMON, JobInitial, JobFull, JobCancel, ReceiptSign, *RELAYED_DOWN)
MINER_TO_VALIDATOR = union_adapter(
    *_COMMON, Manifest, JobsRunning, JobAccepted, JobDeclined, ReceiptSigned, *_EXECUTOR_REPORTS, *RELAYED_UP
)
MINER_TO_EXECUTOR = union_adapter(*_COMMON, JobReserved, JobFull, JobCancel, *RELAYED_DOWN)
EXECUTOR_TO_MINER = union_adapter(*_COMMON, *_EXECUTOR_REPORTS, *RELAYED_UP)
AUTH_FROM_SERVER = union_adapter(AuthChallenge, AuthOk, Error)
AUTH_FROM_CLIENT = union_adapter(AuthResponse)
CLIENT_TO_FACILITATOR = union_adapter(*_COMMON, JobCreate, JobWatch, JobUnwatch)
FACILITATOR_TO_CLIENT = union_adapter(*_COMMON, JobStatusUpdate)
