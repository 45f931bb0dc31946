"""Message models, direction unions and the frame parser (protocol/messages/)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

import protocol.messages as messages
from protocol.classes import ClassSpec
from protocol.errors import FrameError
from protocol.messages import (
    AUTH_FROM_CLIENT,
    AUTH_FROM_SERVER,
    CLIENT_TO_FACILITATOR,
    EXECUTOR_TO_MINER,
    FACILITATOR_TO_CLIENT,
    FACILITATOR_TO_VALIDATOR,
    MINER_TO_EXECUTOR,
    MINER_TO_VALIDATOR,
    VALIDATOR_TO_FACILITATOR,
    VALIDATOR_TO_MINER,
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
    parse_frame,
)
from protocol.messages.base import MAX_FRAME_BYTES
from protocol.receipts import Receipt, ReceiptKind, ReceiptPayload
from protocol.reports import MaliciousReport
from protocol.scores import ScoreSheet
from protocol.status import JobStatus, Stage
from protocol.streaming import Evidence, Readiness, ReplySeal

HOTKEY = "ab" * 32
SIGNATURE = "cd" * 64
SPEC = {"command": ["python", "-c", "print('é')"], "env": {"A": "1"}, "timing": {"execution": 5}}
RESULT = JobResult(
    exit_code=0,
    stdout="out\n",
    stderr="err\n",
    stdout_truncated=True,
    duration_s=1.25,
    outputs=[OutputRecord(path="out/a.txt", sha256="00" * 32, size=3, kind="url", ref="store://bucket/a")],
    logs=[OutputRecord(path="stdout", sha256="11" * 32, size=4, ref="jobs/job-1/logs/stdout")],
    artifacts={"report.json": "e30="},
)
LINKS = StoreLinks(
    inputs={"data.zip": StoreLink(key="uploads/k/1/data.zip", url="http://127.0.0.1:8000/objects/a?s=1")},
    outputs={"out/a.txt": StoreLink(key="jobs/job-1/outputs/out/a.txt", url="http://127.0.0.1:8000/objects/b")},
    stdout=StoreLink(key="jobs/job-1/logs/stdout", url="http://127.0.0.1:8000/objects/c"),
    stderr=StoreLink(key="jobs/job-1/logs/stderr", url="http://127.0.0.1:8000/objects/d"),
)
CONTEXT = JobContext(links=LINKS)
FAILURE = JobFailure(
    reason="nonzero_exit",
    message="job exited with code 3",
    stage=Stage.EXECUTION,
    exit_code=3,
    stdout_tail="o",
    stderr_tail="e",
    reported_by="executor",
    logs=[OutputRecord(path="stderr", sha256="22" * 32, size=9)],
)

ENDPOINT = StreamingEndpoint(
    readiness=Readiness(
        job_id="job-1", address="127.0.0.1", port=40001, job_public_key=HOTKEY, cert_fingerprint="cd" * 32
    ),
    cert_pem="-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
    miner_hotkey=HOTKEY,
    miner_signature=SIGNATURE,
)

RECEIPT = Receipt(
    payload=ReceiptPayload(
        kind=ReceiptKind.FINISHED,
        job_id="job-1",
        attempt=2,
        validator_hotkey=HOTKEY,
        miner_hotkey="ef" * 32,
        executor_class="cpu.small",
        at=1_700_000_000.5,
        status="completed",
        duration_s=1.5,
        outputs_digest="33" * 32,
    ),
    validator_signature=SIGNATURE,
    miner_signature=SIGNATURE,
)
EVIDENCE = Evidence(
    job_id="job-1",
    request={"method": "POST", "path": "/echo"},
    client_streaming_key=HOTKEY,
    request_signature=SIGNATURE,
    seal=ReplySeal(request_digest="44" * 32, status=200, reply_digest="55" * 32, signature=SIGNATURE),
    readiness=ENDPOINT.readiness,
    miner_hotkey=HOTKEY,
    miner_signature=SIGNATURE,
    reply_body_sha256="55" * 32,
)

# One instance of every message, with every optional field set away from its default.
SAMPLES: list[Message] = [
    Heartbeat(),
    Error(code="invalid_spec", message="bad spec", ref="job-1", errors=[{"field": "command", "message": "empty"}]),
    AuthChallenge(server_hotkey=HOTKEY, nonce="12" * 32),
    AuthResponse(role="validator", hotkey=HOTKEY, client_nonce="34" * 32, signature=SIGNATURE),
    AuthOk(signature=SIGNATURE),
    JobNew(
        job_id="job-1",
        spec=SPEC,
        client_hotkey=HOTKEY,
        client_signature=SIGNATURE,
        context=CONTEXT,
        miner=HOTKEY,
    ),
    JobReceived(job_id="job-1"),
    JobStatusAck(
        statuses=[
            StatusKey(job_id="job-1", attempt=1, status=JobStatus.ACCEPTED),
            StatusKey(job_id="job-2", attempt=2, status=JobStatus.COMPLETED),
        ]
    ),
    JobStatusUpdate(
        job_id="job-1",
        status=JobStatus.FAILED,
        attempt=2,
        miner=HOTKEY,
        at=1_700_000_000.5,
        result=RESULT,
        failure=FAILURE,
        streaming=ENDPOINT,
        retrying=True,
        detail={"why": ["x", 1, None]},
    ),
    JobWatch(job_ids=["job-1", "job-2"]),
    JobCreate(job_id="job-1", spec={"command": ["true"]}, signature="ab" * 64),
    JobUnwatch(job_ids=["job-2"]),
    JobsRunning(jobs={"job-1": 1, "job-2": 3}),
    Manifest(
        classes={
            "cpu.small": ClassCapacity(total=4, free=1, spec=ClassSpec(cpu=1, memory_mb=2048)),
            "gpu.24gb": ClassCapacity(total=1, free=0),
        }
    ),
    JobInitial(
        job_id="job-1",
        attempt=3,
        executor_class="cpu.large",
        image="python:3.12",
        timing={"execution": 5.0},
        streaming=True,
        crossval=True,
    ),
    JobReserved(
        initial=JobInitial(job_id="job-1", attempt=3, executor_class="cpu.large", streaming=True),
        gateway_port=40001,
    ),
    JobFull(job_id="job-1", spec=SPEC, client_hotkey=HOTKEY, client_signature=SIGNATURE, context=CONTEXT),
    JobCancel(job_id="job-1", reason="validator disconnected", attempt=2),
    JobAccepted(job_id="job-1", gpus=["GPU-5b2c0e4a-0000-0000-0000-000000000001"]),
    JobDeclined(job_id="job-1", reason="busy", message="no free cpu.small executor", receipts=[RECEIPT]),
    ReceiptSign(receipt=RECEIPT, more=[RECEIPT]),
    ReceiptSigned(receipt=RECEIPT, more=[RECEIPT]),
    Scores(
        sheet=ScoreSheet(
            validator_hotkey=HOTKEY,
            at=1_700_000_000.0,
            window_s=3600,
            scores={HOTKEY: {"cpu.small": 2.5}},
            signature=SIGNATURE,
        )
    ),
    Capacity(classes={"cpu.small": ClassCapacity(total=4, free=1), "gpu.24gb": ClassCapacity(total=1, free=1)}),
    ReportMalicious(
        report_id="report-1",
        report=MaliciousReport(
            job_id="job-1",
            client_hotkey=HOTKEY,
            evidence=[EVIDENCE],
            trusted_evidence=EVIDENCE,
            details="the reply is wrong",
            at=1_700_000_000.0,
            signature=SIGNATURE,
        ),
    ),
    ReportOutcome(
        report_id="report-1",
        accepted=True,
        reason="blacklisted",
        message="evidence verified",
        miner_hotkey=HOTKEY,
        blacklisted_until=1_700_003_600.0,
    ),
    ExecutorReady(job_id="job-1"),
    VolumesReady(job_id="job-1"),
    ExecutionDone(job_id="job-1"),
    JobFinished(job_id="job-1", result=RESULT),
    StreamingReady(job_id="job-1", endpoint=ENDPOINT),
    JobFailed(job_id="job-1", failure=FAILURE),
    JobInfraFailed(
        job_id="job-1",
        failure=JobFailure(reason="executor_disconnected", message="lost", stage=Stage.UPLOAD, reported_by="miner"),
    ),
    RelayCall(job_id="job-1", attempt=2, call_id="c-1", kind="ping", body={"n": 1}),
    RelayReply(
        job_id="job-1",
        attempt=2,
        call_id="c-1",
        ok=False,
        body={"n": 1},
        error=RelayError(code="unknown_kind", message="no handler"),
    ),
]
SAMPLE_BY_MODEL = {type(sample): sample for sample in SAMPLES}

_COMMON = {Heartbeat, Error}
_REPORTS = {ExecutorReady, VolumesReady, StreamingReady, ExecutionDone, JobFinished, JobFailed, JobInfraFailed}
DIRECTIONS: dict[str, tuple[TypeAdapter[Any], set[type[Message]]]] = {
    "FACILITATOR_TO_VALIDATOR": (
        FACILITATOR_TO_VALIDATOR,
        _COMMON | {JobNew, JobCancel, JobStatusAck, ReportMalicious, RelayReply},
    ),
    "VALIDATOR_TO_FACILITATOR": (
        VALIDATOR_TO_FACILITATOR,
        _COMMON | {JobReceived, JobStatusUpdate, Scores, Capacity, ReportOutcome, RelayCall},
    ),
    "VALIDATOR_TO_MINER": (VALIDATOR_TO_MINER, _COMMON | {JobInitial, JobFull, JobCancel, ReceiptSign, RelayReply}),
    "MINER_TO_VALIDATOR": (
        MINER_TO_VALIDATOR,
        _COMMON | {Manifest, JobsRunning, JobAccepted, JobDeclined, ReceiptSigned, RelayCall} | _REPORTS,
    ),
    "MINER_TO_EXECUTOR": (MINER_TO_EXECUTOR, _COMMON | {JobReserved, JobFull, JobCancel, RelayReply}),
    "EXECUTOR_TO_MINER": (EXECUTOR_TO_MINER, _COMMON | _REPORTS | {RelayCall}),
    "AUTH_FROM_SERVER": (AUTH_FROM_SERVER, {AuthChallenge, AuthOk, Error}),
    "AUTH_FROM_CLIENT": (AUTH_FROM_CLIENT, {AuthResponse}),
    "CLIENT_TO_FACILITATOR": (CLIENT_TO_FACILITATOR, _COMMON | {JobCreate, JobWatch, JobUnwatch}),
    "FACILITATOR_TO_CLIENT": (FACILITATOR_TO_CLIENT, _COMMON | {JobStatusUpdate}),
}
ACCEPTED = [(name, model) for name, (_, models) in DIRECTIONS.items() for model in sorted(models, key=str)]
REFUSED = [
    (name, model)
    for name, (_, models) in DIRECTIONS.items()
    for model in sorted(SAMPLE_BY_MODEL, key=str)
    if model not in models
]
FRAME_ERROR_CODES = {"frame_too_large", "bad_json", "unknown_type", "invalid_message"}
TAGS = sorted(sample.type for sample in SAMPLES)


def pair_id(value: Any) -> str:
    return value.__name__ if isinstance(value, type) else str(value)


def frame_error(frame: str | bytes, adapter: TypeAdapter[Any]) -> FrameError:
    with pytest.raises(FrameError) as info:
        parse_frame(frame, adapter)
    return info.value


def test_every_exported_message_has_a_sample_and_a_direction() -> None:
    """The tables here cover the whole catalogue, so a new message cannot skip these tests."""
    exported = {
        value
        for name in messages.__all__
        if isinstance(value := getattr(messages, name), type) and issubclass(value, Message) and value is not Message
    }
    assert exported == set(SAMPLE_BY_MODEL)
    assert set().union(*(models for _, models in DIRECTIONS.values())) == exported


def test_every_sample_sets_every_field() -> None:
    """The samples exercise each optional field (nothing is left at a default the round trip would hide)."""
    for sample in SAMPLES:
        assert sample.model_fields_set | {"type"} >= set(type(sample).model_fields), type(sample).__name__


@pytest.mark.parametrize(("direction", "model"), ACCEPTED, ids=pair_id)
def test_message_round_trips_through_its_direction(direction: str, model: type[Message]) -> None:
    """encode() then parse_frame() with the direction's union gives back an equal message of the same class."""
    adapter, _ = DIRECTIONS[direction]
    sample = SAMPLE_BY_MODEL[model]
    for frame in (sample.encode(), sample.encode().encode()):
        parsed = parse_frame(frame, adapter)
        assert type(parsed) is model
        assert parsed == sample


@pytest.mark.parametrize(("direction", "model"), REFUSED, ids=pair_id)
def test_message_outside_a_direction_is_refused_as_unknown_type(direction: str, model: type[Message]) -> None:
    """A well-formed message that does not belong to the direction's union is refused with unknown_type."""
    adapter, _ = DIRECTIONS[direction]
    sample = SAMPLE_BY_MODEL[model]
    error = frame_error(sample.encode(), adapter)
    assert error.code == "unknown_type"
    assert error.message == f"unknown message type {sample.type!r}"


def test_encoding_is_json_with_the_type_tag() -> None:
    """Frames are JSON objects carrying the literal type."""
    assert json.loads(JobCancel(job_id="j").encode()) == {
        "type": "job.cancel",
        "job_id": "j",
        "reason": "cancelled by client",
        "attempt": None,
    }


def test_messages_are_immutable() -> None:
    """A parsed message cannot be altered by a handler."""
    message = JobReceived(job_id="j")
    with pytest.raises(ValueError):
        message.job_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "frame",
    ["", "not json", "{", "[]", "null", "42", '"job.cancel"', "{}", '{"type": 1}', '{"type": null}', b"\xff\xfe\x00"],
)
def test_frame_that_is_not_a_json_object_with_a_string_type_is_bad_json(frame: str | bytes) -> None:
    """Anything but a JSON object with a string 'type' is refused with bad_json."""
    assert frame_error(frame, VALIDATOR_TO_MINER).code == "bad_json"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"type": "job.cancel"}, "invalid job.cancel message: job_id: Field required"),
        (
            {"type": "job.cancel", "job_id": ""},
            "invalid job.cancel message: job_id: String should have at least 1 character",
        ),
        (
            {"type": "job.cancel", "job_id": "j", "extra": 1},
            "invalid job.cancel message: extra: Extra inputs are not permitted",
        ),
        ({"type": "heartbeat", "x": 1}, "invalid heartbeat message: x: Extra inputs are not permitted"),
        ({"type": "job.initial", "job_id": "j" * 65, "executor_class": "c"}, None),
        ({"type": "job.initial", "job_id": "j", "executor_class": "c", "attempt": 0}, None),
        ({"type": "job.full", "job_id": "j", "spec": [], "client_hotkey": "h", "client_signature": "s"}, None),
    ],
)
def test_frame_of_a_known_type_with_bad_fields_is_invalid_message(frame: dict[str, Any], message: str | None) -> None:
    """A known type whose fields do not validate is refused with invalid_message naming the fields."""
    error = frame_error(json.dumps(frame), VALIDATOR_TO_MINER)
    assert error.code == "invalid_message"
    if message is not None:
        assert error.message == message


@pytest.mark.parametrize("field", ["server_hotkey", "nonce"])
def test_auth_challenge_with_a_non_hex_field_is_invalid_message(field: str) -> None:
    """Hotkeys and nonces in the handshake must be 32 bytes of lowercase hex."""
    frame = json.loads(SAMPLE_BY_MODEL[AuthChallenge].encode())
    for bad in ("AB" * 32, "ab" * 31, "zz" * 32):
        assert frame_error(json.dumps({**frame, field: bad}), AUTH_FROM_SERVER).code == "invalid_message"


def test_frame_over_the_size_limit_is_refused_before_parsing() -> None:
    """A frame longer than MAX_FRAME_BYTES is refused with frame_too_large; one at the limit is parsed."""
    assert frame_error("x" * (MAX_FRAME_BYTES + 1), VALIDATOR_TO_MINER).code == "frame_too_large"
    assert frame_error(b" " * (MAX_FRAME_BYTES + 1), VALIDATOR_TO_MINER).code == "frame_too_large"
    assert frame_error("x" * MAX_FRAME_BYTES, VALIDATOR_TO_MINER).code == "bad_json"


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000,
        '{"type":"job.cancel","job_id":"j","reason":' + "[" * 5000 + "]" * 5000 + "}",
        '{"type":"job.full","job_id":"j","client_hotkey":"h","client_signature":"s","spec":'
        + '{"a":' * 2000
        + "1"
        + "}" * 2000
        + "}",
    ],
    ids=["unterminated arrays", "nested reason", "nested spec"],
)
def test_deeply_nested_frame_is_refused_with_a_frame_error(frame: str) -> None:
    """Nesting deep enough to exhaust the recursion limit is still just a bad frame."""
    assert frame_error(frame, VALIDATOR_TO_MINER).code in {"bad_json", "invalid_message"}


# Fuzzing: whatever arrives, the parser returns a message of the direction or raises FrameError.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=6,
)
field_names = sorted({name for sample in SAMPLES for name in type(sample).model_fields})
json_objects = st.builds(
    lambda data, tag: data if tag is None else {**data, "type": tag},
    st.dictionaries(st.sampled_from(field_names) | st.text(max_size=10), json_values, max_size=5),
    st.none() | st.sampled_from(TAGS) | st.text(max_size=15),
)


def mutated_samples() -> st.SearchStrategy[dict[str, Any]]:
    """A valid message's JSON with one field replaced, removed or added."""

    def mutate(sample: Message, key: str, value: Any, action: str) -> dict[str, Any]:
        data = json.loads(sample.encode())
        if action == "drop":
            data.pop(key, None)
        else:
            data[key] = value
        return data

    return st.builds(
        mutate,
        st.sampled_from(SAMPLES),
        st.sampled_from(field_names),
        json_values,
        st.sampled_from(["set", "drop"]),
    )


def parses_or_frame_error_in_every_direction(frame: str | bytes) -> None:
    """Through every direction's union, ``frame`` gives a message of that union or a FrameError with a known code."""
    for direction, (adapter, models) in DIRECTIONS.items():
        try:
            message = parse_frame(frame, adapter)
        except FrameError as exc:
            assert exc.code in FRAME_ERROR_CODES, (direction, exc.code)
            continue
        assert type(message) in models, (direction, message)


FUZZ = settings(max_examples=200, deadline=None)


@FUZZ
@given(frame=st.text() | st.binary())
def test_arbitrary_text_or_bytes_only_ever_raise_frame_error(frame: str | bytes) -> None:
    """Random text and bytes never crash the parser, whichever direction they arrive on."""
    parses_or_frame_error_in_every_direction(frame)


@FUZZ
@given(data=json_objects, as_bytes=st.booleans())
def test_arbitrary_json_objects_only_ever_raise_frame_error(data: dict[str, Any], as_bytes: bool) -> None:
    """Random JSON objects, typed with known tags or not, parse to a message of the direction or raise FrameError."""
    frame = json.dumps(data)
    parses_or_frame_error_in_every_direction(frame.encode() if as_bytes else frame)


@FUZZ
@given(data=mutated_samples())
def test_valid_messages_with_one_field_mutated_only_ever_raise_frame_error(data: dict[str, Any]) -> None:
    """Near-valid frames exercise the field validators; they still only raise FrameError."""
    parses_or_frame_error_in_every_direction(json.dumps(data))


# -- job.status: the typed retry flag and its compatible shape in detail ----------------------------


def _status_frame(**fields: Any) -> str:
    return json.dumps({"type": "job.status", "job_id": "j", "status": "infra_failed", "at": 1, **fields})


def test_a_retrying_status_also_carries_detail_retrying_for_older_clients() -> None:
    update = JobStatusUpdate(job_id="j", status=JobStatus.INFRA_FAILED, at=1.0, retrying=True)
    assert update.detail == {"retrying": True}
    assert json.loads(update.encode())["detail"] == {"retrying": True}
    assert parse_frame(update.encode(), VALIDATOR_TO_FACILITATOR) == update
    assert JobStatusUpdate(job_id="j", status=JobStatus.INFRA_FAILED, at=1.0).detail == {}


def test_an_older_validators_detail_retrying_reads_as_the_typed_flag() -> None:
    update = parse_frame(_status_frame(detail={"retrying": True}), VALIDATOR_TO_FACILITATOR)
    assert update.retrying is True and update.detail == {"retrying": True}
    assert parse_frame(_status_frame(detail={"retrying": False}), VALIDATOR_TO_FACILITATOR).retrying is False


def test_detail_retrying_that_disagrees_with_the_flag_is_refused() -> None:
    with pytest.raises(FrameError, match=r"detail\.retrying disagrees with retrying"):
        parse_frame(_status_frame(retrying=True, detail={"retrying": False}), VALIDATOR_TO_FACILITATOR)


def test_a_detail_retrying_that_is_not_a_boolean_is_free_form() -> None:
    update = parse_frame(_status_frame(detail={"retrying": "soon"}), VALIDATOR_TO_FACILITATOR)
    assert update.retrying is False and update.detail == {"retrying": "soon"}
    assert parse_frame(update.encode(), VALIDATOR_TO_FACILITATOR) == update
