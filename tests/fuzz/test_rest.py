"""Fuzzing the facilitator's REST API (facilitator/api/, facilitator/registry/views.py) end to end.

The real Django views through the test client, with correctly signed requests so that the
bodies get past authentication and into the parsers: job creation, malicious-miner reports,
uploads, registry announcements, the query strings of listings, and the signature headers
themselves. Every malformed request is a 4xx in the API's one error shape
``{"code", "message", "errors"}``; none is a 500 (the test client re-raises any exception a
view lets escape).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings
from hypothesis import example, given
from hypothesis import strategies as st

from facilitator import jobs
from facilitator.models import Job
from protocol.keys import Keypair
from protocol.reports import MaliciousReport
from protocol.requests import sign_request
from protocol.spec import sign_job

from .conftest import fuzz
from .samples import CLIENT, JOB_ID, MINER, REPORT, SPEC, VALIDATOR
from .strategies import deeply_nested, encoded_frames, hostile_text, json_values, mutated, nasty_ints

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db]

API = "/api/v1"
REST = fuzz(0.5)  # each example is a whole request through Django


@pytest.fixture(autouse=True)
def _no_rate_limits() -> Iterator[None]:
    """The fuzz sends hundreds of requests from one hotkey: the per-hotkey limits are not under test here."""
    with override_settings(GRID_API_RATE=0, GRID_API_ADDRESS_RATE=0, FACILITATOR_CLIENT_HOTKEYS=["*"]):
        yield


def send(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    query: str = "",
    keypair: Keypair | None = CLIENT,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> HttpResponse:
    """One request through the whole Django stack, signed by ``keypair`` (over the exact bytes sent)."""
    signed = sign_request(keypair, method, path, query, body) if keypair is not None else {}
    target = f"{path}?{query}" if query else path
    client = Client(raise_request_exception=True)
    return client.generic(method, target, body, content_type=content_type, headers={**signed, **(headers or {})})


def assert_answered(response: HttpResponse, *, ok: tuple[int, ...] = (200, 201, 202)) -> dict[str, Any]:
    """A success in ``ok``, or a 4xx in the one error shape; never a 500. Returns the JSON body."""
    assert response.status_code < 500, response.content[:500]
    body = json.loads(response.content)
    if response.status_code not in ok:
        assert 400 <= response.status_code < 500, response.status_code
        assert set(body) == {"code", "message", "errors"}, body
        assert isinstance(body["code"], str) and body["code"]
        assert isinstance(body["message"], str) and isinstance(body["errors"], list)
    return body


def _job_of_client() -> None:
    """The job the sample report is about, owned by ``CLIENT`` and driven by ``VALIDATOR``."""
    if not Job.objects.filter(id=JOB_ID).exists():
        spec = {"command": ["true"]}
        jobs.create_job(CLIENT.hotkey, JOB_ID, spec, sign_job(CLIENT, JOB_ID, spec))
        Job.objects.filter(id=JOB_ID).update(validator_hotkey=VALIDATOR.hotkey)


raw_bodies = st.one_of(
    encoded_frames(json_values).map(lambda f: f if isinstance(f, bytes) else f.encode("utf-8", "surrogatepass")),
    st.binary(max_size=64),
    deeply_nested().map(str.encode),
)


# -- job creation ----------------------------------------------------------------------------------


def _create_body(document: Any, sign_spec: bool) -> bytes:
    """A create-job body; with ``sign_spec`` the client's signature matches whatever spec it holds."""
    if sign_spec and isinstance(document, dict) and isinstance(document.get("job_id"), str):
        try:
            document = {**document, "signature": sign_job(CLIENT, document["job_id"], document.get("spec"))}
        except ValueError:
            pass  # NaN or a lone surrogate in the spec: nothing can sign it, send it as it is
    return json.dumps(document).encode("utf-8", "surrogatepass")


@REST
@given(body=raw_bodies)
@example(body=b"\xff\xfe{}")
@example(body=b'{"job_id": "x", "spec": {"command": ["a"], "timing": {"execution": NaN}}, "signature": "00"}')
def test_any_body_for_a_new_job_is_answered_without_a_500(body: bytes) -> None:
    """Random bytes and JSON (NaN, huge numbers, lone surrogates, deep nesting) as a create-job body."""
    assert_answered(send("POST", f"{API}/jobs", body))


valid_create = {"job_id": JOB_ID.replace("5d0c", "6e1d"), "spec": SPEC, "signature": ""}


@REST
@given(
    document=mutated(valid_create, ["job_id", "spec", "signature", "command", "env", "inputs", "kind"]),
    sign_spec=st.booleans(),
)
@example(document={**valid_create, "spec": {"command": ["\ud800"]}}, sign_spec=False)
@example(document={**valid_create, "spec": {"command": ["a"], "env": {"A": "\udfff"}}}, sign_spec=True)
def test_a_mutated_job_is_created_or_refused_with_a_4xx(document: dict[str, Any], sign_spec: bool) -> None:
    """A valid signed job with fields changed (re-signed or not): created, or refused in the error shape."""
    assert_answered(send("POST", f"{API}/jobs", _create_body(document, sign_spec)))


# -- reports ---------------------------------------------------------------------------------------


REPORT_FIELDS = ["job_id", "client_hotkey", "evidence", "seal", "readiness", "request", "signature", "status", "at"]


@REST
@given(document=mutated(json.loads(REPORT.model_dump_json()), REPORT_FIELDS))
@example(document={**json.loads(REPORT.model_dump_json()), "at": 1e400})
@example(document={**json.loads(REPORT.model_dump_json()), "details": "\ud800"})
def test_a_mutated_report_is_refused_with_a_4xx(document: dict[str, Any]) -> None:
    """The client's signed report with fields changed at any depth: never stored, never a 500."""
    _job_of_client()
    response = send("POST", f"{API}/jobs/{JOB_ID}/reports", json.dumps(document).encode("utf-8", "surrogatepass"))
    assert_answered(response, ok=(202,) if _is_the_report(document) else ())


def _is_the_report(document: dict[str, Any]) -> bool:
    """A mutation that changed nothing signed (a default written out, say) is still the report."""
    try:
        return MaliciousReport.model_validate(document) == REPORT
    except ValueError:
        return False


@REST
@given(body=raw_bodies, job_id=st.sampled_from([JOB_ID, "not-a-uuid", "%ff", "00000000-0000-4000-8000-000000000000"]))
def test_any_body_for_a_report_is_answered_without_a_500(body: bytes, job_id: str) -> None:
    """Random bodies for a report, on the client's job and on ids that are no job."""
    _job_of_client()
    assert_answered(send("POST", f"{API}/jobs/{job_id}/reports", body), ok=())


def test_the_sample_report_is_accepted() -> None:
    """The unmutated report passes every check: the fuzz above starts from a valid document."""
    _job_of_client()
    body = assert_answered(send("POST", f"{API}/jobs/{JOB_ID}/reports", REPORT.model_dump_json().encode()), ok=(202,))
    assert body["status"] == "pending"


# -- uploads, listings, job ids --------------------------------------------------------------------


@REST
@given(
    body=raw_bodies
    | st.builds(lambda name: json.dumps({"filename": name}).encode("utf-8", "surrogatepass"), hostile_text)
)
@example(body=b'{"filename": "\\ud800"}')  # a lone surrogate reached urllib's quote(): a 500
def test_any_upload_request_is_answered_without_a_500(body: bytes) -> None:
    """Random bodies and file names (control characters, slashes, lone surrogates) for an upload URL."""
    assert_answered(send("POST", f"{API}/uploads", body))


@REST
@given(
    status=hostile_text,
    limit=nasty_ints.map(str) | hostile_text,
    offset=nasty_ints.map(str) | hostile_text,
)
@example(status="sent", limit="9" * 5000, offset="0")
@example(status="sent", limit="1", offset=str(2**63))
def test_any_listing_query_is_answered_without_a_500(status: str, limit: str, offset: str) -> None:
    """``GET /jobs?status=&limit=&offset=`` with any values, huge numbers included."""
    query = "&".join(
        f"{name}={quote(value, errors='surrogatepass')}"
        for name, value in [("status", status), ("limit", limit), ("offset", offset)]
    )
    assert_answered(send("GET", f"{API}/jobs", query=query))


@REST
@given(job_id=hostile_text, action=st.sampled_from(["", "/cancel", "/files/stdout", "/files/out/a", "/reports"]))
def test_any_job_id_in_a_path_is_answered_without_a_500(job_id: str, action: str) -> None:
    """Job ids that are not UUIDs (or are someone else's) in every job route: a 4xx."""
    path = f"{API}/jobs/{quote(job_id, safe='', errors='surrogatepass')}{action}"
    method = "GET" if action in ("", "/files/stdout", "/files/out/a") else "POST"
    response = send(method, path)
    if response.status_code == 404 and not response.content.startswith(b"{"):
        raise AssertionError(f"a 404 outside the error shape: {response.content[:200]!r}")
    assert_answered(response, ok=())


# -- signature headers -----------------------------------------------------------------------------


@REST
@given(
    headers=st.fixed_dictionaries(
        {},
        optional={
            "X-Grid-Hotkey": st.one_of(st.text("0123456789abcdef", max_size=70), st.just(CLIENT.hotkey)),
            "X-Grid-Timestamp": st.one_of(
                st.floats().map(str), st.sampled_from(["nan", "inf", "1e999", ""]), st.text(max_size=10)
            ),
            "X-Grid-Nonce": st.text(max_size=70),
            "X-Grid-Signature": st.text("0123456789abcdef", max_size=130),
        },
    )
)
def test_any_signature_headers_are_a_401_or_403(headers: dict[str, str]) -> None:
    """Unsigned, half-signed or garbage-signed requests: refused in the error shape, never a 500."""
    latin1 = {name: value.encode("utf-8", "replace").decode("latin-1") for name, value in headers.items()}
    response = send("GET", f"{API}/jobs", keypair=None, headers=latin1)
    body = assert_answered(response, ok=())
    assert response.status_code in (400, 401, 403), body


# -- registry announcements ------------------------------------------------------------------------


@REST
@given(
    body=raw_bodies
    | st.builds(
        lambda role, address: json.dumps({"role": role, "address": address}).encode("utf-8", "surrogatepass"),
        st.sampled_from(["miner", "validator", "", "MINER"]) | hostile_text,
        hostile_text | st.sampled_from(["ws://a", "wss://a:1/", "ws://", "http://a", "ws://a b", "ws://\x7f"]),
    )
)
@example(body=b'{"role": "miner", "address": "ws://host:1", "extra": NaN}')
def test_any_announcement_is_answered_without_a_500(body: bytes) -> None:
    """A miner's signed announcement with any body: its neuron, or refused in the error shape."""
    with override_settings(GRID_REGISTRY="database", FACILITATOR_REGISTRY_OPEN=True):
        assert_answered(send("POST", f"{API}/registry/announce", body, keypair=MINER))
