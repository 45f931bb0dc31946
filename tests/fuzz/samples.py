"""Valid, really signed examples of every message and document, the seeds the fuzz tests mutate."""

from __future__ import annotations

from protocol.keys import Keypair
from protocol.messages import (
    AuthChallenge,
    AuthOk,
    AuthResponse,
    Capacity,
    ClassCapacity,
    Error,
    ExecutionDone,
    ExecutorReady,
    Heartbeat,
    JobAccepted,
    JobCancel,
    JobContext,
    JobCreate,
    JobDeclined,
    JobFailed,
    JobFailure,
    JobFinished,
    JobFull,
    JobInfraFailed,
    JobInitial,
    JobNew,
    JobReceived,
    JobReserved,
    JobResult,
    JobsRunning,
    JobStatusAck,
    JobStatusUpdate,
    JobUnwatch,
    JobWatch,
    Manifest,
    Message,
    OutputRecord,
    ReceiptSign,
    ReceiptSigned,
    RelayCall,
    RelayError,
    RelayReply,
    ReportMalicious,
    ReportOutcome,
    Scores,
    StatusKey,
    StoreLink,
    StoreLinks,
    StreamingEndpoint,
    StreamingReady,
    VolumesReady,
)
from protocol.receipts import ReceiptKind, ReceiptPage, ReceiptPayload, countersign, sign_page, sign_receipt
from protocol.registry import Neuron, RegistrySnapshot, Role, sign_registry
from protocol.reports import MaliciousReport, sign_report
from protocol.requests import request_payload, sign_request
from protocol.scores import ScoreSheet, sign_scores
from protocol.spec import JobSpec, sign_job
from protocol.status import JobStatus, Stage
from protocol.streaming import (
    REQUEST_PURPOSE,
    Evidence,
    Readiness,
    request_digest,
    sign_readiness,
    sign_reply,
)

__all__ = [
    "CLIENT",
    "EVIDENCE",
    "FACILITATOR",
    "JOB_ID",
    "JOB_KEY",
    "MESSAGES",
    "MINER",
    "NOW",
    "PAGE",
    "READINESS",
    "RECEIPT",
    "REGISTRY",
    "REPORT",
    "SCORES",
    "SPEC",
    "STREAMING_KEY",
    "VALIDATOR",
]

CLIENT = Keypair.from_seed_hex("01" * 32)
VALIDATOR = Keypair.from_seed_hex("02" * 32)
MINER = Keypair.from_seed_hex("03" * 32)
FACILITATOR = Keypair.from_seed_hex("04" * 32)
JOB_KEY = Keypair.from_seed_hex("05" * 32)
STREAMING_KEY = Keypair.from_seed_hex("06" * 32)

JOB_ID = "5d0c3c2e-9f5b-4c1e-8a55-3f1f0f4b2a11"
NOW = 1_700_000_000.25

SPEC = JobSpec(
    command=["python", "-c", "print('é')"],
    env={"A": "1"},
    inputs=[
        {"kind": "inline", "path": "in/a.txt", "content_b64": "aGk="},
        {"kind": "url", "path": "in/b.zip", "url": "https://example.com/b.zip", "unpack": True},
        {"kind": "object", "path": "in/c", "key": "uploads/k/c", "sha256": "ab" * 32},
    ],
    outputs=[
        {"kind": "object", "path": "out/a"},
        {"kind": "url", "path": "out/b", "url": "https://s3.example.com/b", "method": "POST", "fields": {"k": "v"}},
    ],
    artifacts_dir="art",
    timing={"execution": 5},
    limits={"cpu": 0.5, "memory_mb": 256},
    max_attempts=3,
).to_wire()
SPEC_SIGNATURE = sign_job(CLIENT, JOB_ID, SPEC)

RECEIPT = countersign(
    MINER,
    sign_receipt(
        VALIDATOR,
        ReceiptPayload(
            kind=ReceiptKind.FINISHED,
            job_id=JOB_ID,
            attempt=2,
            validator_hotkey=VALIDATOR.hotkey,
            miner_hotkey=MINER.hotkey,
            executor_class="cpu.small",
            at=NOW,
            status="completed",
            duration_s=1.5,
            outputs_digest="cd" * 32,
        ),
    ),
)
PAGE = sign_page(
    MINER, ReceiptPage(miner_hotkey=MINER.hotkey, cursor=0, next_cursor=1, receipts=[RECEIPT], issued_at=NOW)
)
SCORES = sign_scores(
    VALIDATOR,
    ScoreSheet(validator_hotkey=VALIDATOR.hotkey, at=NOW, window_s=3600, scores={MINER.hotkey: {"cpu.small": 0.75}}),
)
REGISTRY = sign_registry(
    FACILITATOR,
    RegistrySnapshot(
        version=3,
        issued_at=NOW,
        facilitator_hotkey=FACILITATOR.hotkey,
        neurons=[
            Neuron(hotkey=VALIDATOR.hotkey, role=Role.VALIDATOR, stake=10),
            Neuron(hotkey=MINER.hotkey, role=Role.MINER, address="wss://miner.example.com:8443"),
        ],
    ),
)

READINESS = Readiness(
    job_id=JOB_ID, address="127.0.0.1", port=40001, job_public_key=JOB_KEY.hotkey, cert_fingerprint="ef" * 32
)
_REQUEST_HEADERS = sign_request(STREAMING_KEY, "POST", "/v1/echo", "a=1", b"hello", now=NOW, purpose=REQUEST_PURPOSE)
REQUEST = request_payload(
    "POST",
    "/v1/echo",
    "a=1",
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    _REQUEST_HEADERS["X-Grid-Timestamp"],
    _REQUEST_HEADERS["X-Grid-Nonce"],
)
EVIDENCE = Evidence(
    job_id=JOB_ID,
    request=REQUEST,
    client_streaming_key=STREAMING_KEY.hotkey,
    request_signature=_REQUEST_HEADERS["X-Grid-Signature"],
    seal=sign_reply(JOB_KEY, JOB_ID, request_digest(REQUEST), 200, "12" * 32),
    readiness=READINESS,
    miner_hotkey=MINER.hotkey,
    miner_signature=sign_readiness(MINER, READINESS),
    reply_body_sha256="12" * 32,
)
REPORT = sign_report(
    CLIENT,
    MaliciousReport(job_id=JOB_ID, client_hotkey=CLIENT.hotkey, evidence=[EVIDENCE], details="it lied", at=NOW),
)

_RESULT = JobResult(
    exit_code=0,
    stdout="out\n",
    stderr="é\n",
    duration_s=1.25,
    outputs=[OutputRecord(path="out/a", sha256="00" * 32, size=3, ref=f"jobs/{JOB_ID}/outputs/out/a")],
    logs=[OutputRecord(path="stdout", sha256="11" * 32, size=4, ref=f"jobs/{JOB_ID}/logs/stdout")],
    artifacts={"report.json": "e30="},
)
_FAILURE = JobFailure(
    reason="nonzero_exit", message="exit 3", stage=Stage.EXECUTION, exit_code=3, stderr_tail="e", reported_by="executor"
)
_LINKS = StoreLinks(
    inputs={"in/c": StoreLink(key="uploads/k/c", url="http://127.0.0.1:8000/objects/a?s=1")},
    outputs={"out/a": StoreLink(key=f"jobs/{JOB_ID}/outputs/out/a", url="http://127.0.0.1:8000/objects/b")},
    stdout=StoreLink(key=f"jobs/{JOB_ID}/logs/stdout", url="http://127.0.0.1:8000/objects/c"),
)
_CONTEXT = JobContext(links=_LINKS)
_ENDPOINT = StreamingEndpoint(
    readiness=READINESS,
    cert_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    miner_hotkey=MINER.hotkey,
    miner_signature=sign_readiness(MINER, READINESS),
)

# One valid example of every message type.
MESSAGES: list[Message] = [
    Heartbeat(),
    Error(code="bad_json", message="frame is not JSON", ref=JOB_ID),
    AuthChallenge(server_hotkey=FACILITATOR.hotkey, nonce="aa" * 32),
    AuthResponse(role="validator", hotkey=VALIDATOR.hotkey, client_nonce="bb" * 32, signature="cc" * 64),
    AuthOk(signature="dd" * 64),
    JobNew(
        job_id=JOB_ID,
        spec=SPEC,
        client_hotkey=CLIENT.hotkey,
        client_signature=SPEC_SIGNATURE,
        context=_CONTEXT,
        miner=MINER.hotkey,
    ),
    JobReceived(job_id=JOB_ID),
    JobStatusAck(statuses=[StatusKey(job_id=JOB_ID, attempt=2, status=JobStatus.COMPLETED)]),
    JobStatusUpdate(
        job_id=JOB_ID,
        status=JobStatus.COMPLETED,
        attempt=2,
        miner=MINER.hotkey,
        at=NOW,
        result=_RESULT,
        streaming=_ENDPOINT,
        retrying=False,
        detail={"note": "fine", "n": [1, 2.5, None]},
    ),
    JobStatusUpdate(job_id=JOB_ID, status=JobStatus.FAILED, at=NOW, failure=_FAILURE),
    JobWatch(job_ids=[JOB_ID]),
    JobCreate(job_id=JOB_ID, spec=SPEC, signature=SPEC_SIGNATURE),
    JobUnwatch(job_ids=[JOB_ID, "x"]),
    ReceiptSign(receipt=RECEIPT.model_copy(update={"miner_signature": None})),
    ReceiptSigned(receipt=RECEIPT),
    Scores(sheet=SCORES),
    Capacity(classes={"cpu.small": ClassCapacity(total=2, free=1, spec={"cpu": 1, "memory_mb": 2048})}),
    ReportMalicious(report_id="r-1", report=REPORT),
    ReportOutcome(report_id="r-1", accepted=True, reason="proven", miner_hotkey=MINER.hotkey, blacklisted_until=NOW),
    Manifest(classes={"cpu.small": ClassCapacity(total=2, free=1, spec={"cpu": 1, "memory_mb": 2048})}),
    JobInitial(job_id=JOB_ID, attempt=2, executor_class="cpu.small", timing={"execution": 5.0}, streaming=True),
    JobReserved(initial=JobInitial(job_id=JOB_ID, executor_class="cpu.small", streaming=True), gateway_port=40000),
    JobFull(
        job_id=JOB_ID,
        spec=SPEC,
        client_hotkey=CLIENT.hotkey,
        client_signature=SPEC_SIGNATURE,
        context=_CONTEXT,
    ),
    JobCancel(job_id=JOB_ID, reason="no longer needed", attempt=2),
    JobsRunning(jobs={JOB_ID: 2}),
    JobAccepted(job_id=JOB_ID, gpus=["GPU-5b2c0e4a-0000-0000-0000-000000000001"]),
    JobDeclined(job_id=JOB_ID, reason="busy", message="full", receipts=[RECEIPT]),
    ExecutorReady(job_id=JOB_ID),
    VolumesReady(job_id=JOB_ID),
    ExecutionDone(job_id=JOB_ID),
    StreamingReady(job_id=JOB_ID, endpoint=_ENDPOINT),
    JobFinished(job_id=JOB_ID, result=_RESULT),
    JobFailed(job_id=JOB_ID, failure=_FAILURE),
    JobInfraFailed(job_id=JOB_ID, failure=_FAILURE.model_copy(update={"reason": "executor_disconnected"})),
    RelayCall(job_id=JOB_ID, attempt=2, call_id="c-1", kind="ping", body={"n": [1, 2.5, None]}),
    RelayReply(job_id=JOB_ID, attempt=2, call_id="c-1", ok=False, error=RelayError(code="unknown_kind")),
]
