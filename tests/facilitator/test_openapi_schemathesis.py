"""The REST API against its own OpenAPI schema: schemathesis, on a real facilitator, reports nothing.

A facilitator alone (``python -m grid.serve`` on a loopback port, its own database, rate limits
off so that the fuzzer is not throttled) serves ``/api/v1/openapi.json``; schemathesis reads it
and sends each operation schema-valid and schema-invalid requests (its examples, coverage and
fuzzing phases), checking every answer: no server error, every status and body documented, what
the schema allows accepted, what it forbids refused. Twice: unsigned (every signed operation must
answer its documented 401), and signed by :class:`Signer`, a small requests ``auth`` that signs
each request as it goes out with a test key, and signs the job inside a create-job body too.

Some refusals depend on state or on a rule that JSON Schema cannot state, and the schema says so
in words: an object input that is not the client's (``invalid_input``), two inputs or outputs on
one path (``invalid_spec``), a report about another job than its URL names (``job_mismatch``) or
whose signatures do not verify (422). :func:`accepted_unless_documented` accepts those refusals,
and only those, where schemathesis's own ``positive_data_acceptance`` would not.

Derandomized with 10 examples an operation (about 30 s), so that CI repeats one run exactly;
``GRID_SCHEMATHESIS_RANDOM=1 GRID_SCHEMATHESIS_EXAMPLES=100`` explores further by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from grid.local import LocalGrid, free_port
from protocol.keys import Keypair
from protocol.requests import SIGNATURE_HEADERS, sign_request
from protocol.spec import new_job_id, sign_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEY = Keypair.generate()
SIGNED_ANSWERS: dict[str, set[int]] = {}  # statuses of the signed run, by operation
MAX_EXAMPLES = int(os.environ.get("GRID_SCHEMATHESIS_EXAMPLES", "10"))
# Refusals of schema-valid requests that the schema documents in words (see the module docstring).
DOCUMENTED_REFUSALS = {
    ("POST", "/api/v1/jobs"): {
        (400, "invalid_input"),
        (400, "invalid_spec", "two inputs have the same path"),
        (400, "invalid_spec", "is inside input"),
        (400, "invalid_spec", "two outputs have the same path"),
    },
    ("POST", "/api/v1/jobs/{job_id}/reports"): {(400, "job_mismatch"), (422, None)},
}


class Signer(requests.auth.AuthBase):
    """Signs a request as the SDK does (protocol/requests.py), over the exact bytes sent.

    schemathesis fills the four security headers with values of its own; they are replaced by a
    real signature. A request it sends without one of them (to see it refused) goes as it is.
    """

    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if not all(name in request.headers for name in SIGNATURE_HEADERS):
            return request
        url = urlsplit(request.url or "")
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        # The server signs what it reads: the path decoded (as Django's request.path), the raw query.
        request.headers.update(sign_request(self.keypair, request.method or "GET", unquote(url.path), url.query, body))
        return request


def wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the facilitator did not come up:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def facilitator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a facilitator running alone, with its rate limits off."""
    home = tmp_path_factory.mktemp("openapi")
    lone = LocalGrid(home, facilitator_port=free_port(), miner_port=free_port())
    env = {**lone.env("facilitator"), "GRID_API_RATE": "0", "GRID_API_ADDRESS_RATE": "0"}
    subprocess.run([sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"], env=env, check=True)
    log_path = home / "facilitator.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "grid.serve", "-p", str(lone.facilitator_port)], env=env, stdout=log, stderr=log
        )
    try:
        wait_until_up(f"{lone.facilitator_url}/api/v1/health", server, log_path)
        yield lone.facilitator_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# 413 is a refusal too: a body over the server's limit (what a schema's maxLength × maxItems allows
# can be larger) is refused before it is parsed.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
"""


# Unsigned, every signed operation answers 401 whatever the body: the coverage phase's largest
# bodies (tens of MB) would only cost time there.
UNSIGNED_CONFIG = (
    CONFIG
    + """
[phases.coverage]
enabled = false
"""
)


@pytest.fixture(scope="module")
def api_schema(facilitator: str) -> Any:
    config = schemathesis.config.SchemathesisConfig.from_str(CONFIG)
    return schemathesis.openapi.from_url(f"{facilitator}/api/v1/openapi.json", config=config)


@pytest.fixture(scope="module")
def unsigned_api_schema(facilitator: str) -> Any:
    config = schemathesis.config.SchemathesisConfig.from_str(UNSIGNED_CONFIG)
    return schemathesis.openapi.from_url(f"{facilitator}/api/v1/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")
unsigned_schema = schemathesis.pytest.from_fixture("unsigned_api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4's lazy schemas read pytest's private Node._nodeid, gone in pytest 9.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def documented_refusal(case: Any, response: Any) -> bool:
    """Whether ``response`` is a refusal the schema names in words for this operation."""
    allowed = DOCUMENTED_REFUSALS.get((case.method.upper(), case.operation.path), set())
    try:
        body = response.json()
    except ValueError:
        return False
    code, message = body.get("code"), body.get("message", "")
    for status, *rest in allowed:
        wanted_code = rest[0] if rest else None
        phrase = rest[1] if len(rest) > 1 else None
        if response.status_code == status and wanted_code in (None, code) and (phrase is None or phrase in message):
            return True
    return False


@schemathesis.check
def accepted_unless_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except for the refusals the schema documents in words."""
    if documented_refusal(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)


def sign_job_body(case: Any, keypair: Keypair = KEY, fresh_id: bool = False) -> None:
    """A schema-valid create-job body carries the client's signature over its job id and spec: make
    it real (a schema-invalid one goes as generated, to be refused). ``fresh_id``: a new job id too."""
    body = case.body
    if (case.method.upper(), case.operation.path) != ("POST", "/api/v1/jobs") or not isinstance(body, dict):
        return
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if isinstance(body.get("job_id"), str) and isinstance(body.get("spec"), dict) and "signature" in body:
        if fresh_id:
            body["job_id"] = new_job_id()
        body["signature"] = sign_job(keypair, body["job_id"], body["spec"])


FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("GRID_SCHEMATHESIS_RANDOM") is None,
)


@unsigned_schema.parametrize()
@FUZZ
def test_unsigned_requests_get_the_documented_answers(case: Any) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


@schema.parametrize()
@FUZZ
def test_signed_requests_get_the_documented_answers(case: Any) -> None:
    sign_job_body(case)
    session = requests.Session()
    session.auth = Signer(KEY)
    response = case.call_and_validate(
        session=session,
        # Every request is signed here: that made-up credentials are refused is the unsigned run's to show.
        excluded_checks=[positive_data_acceptance, ignored_auth],
        additional_checks=[accepted_unless_documented],
    )
    SIGNED_ANSWERS.setdefault(f"{case.method.upper()} {case.operation.path}", set()).add(response.status_code)


def test_the_signed_run_was_served_not_only_refused() -> None:
    """Signed, schema-valid requests got through: the run above tested the API, not its doorman."""
    if not SIGNED_ANSWERS:
        pytest.skip("the signed run did not run")
    assert 201 in SIGNED_ANSWERS["POST /api/v1/jobs"], SIGNED_ANSWERS
    for operation in ("GET /api/v1/jobs", "POST /api/v1/uploads", "GET /api/v1/health"):
        assert 200 in SIGNED_ANSWERS[operation], SIGNED_ANSWERS


def test_signed_sequences_of_calls_get_the_documented_answers(api_schema: Any) -> None:
    """The stateful phase: chains of signed calls linked by what they answer (a job created, then
    read, listed, cancelled, its files asked for), each answer checked as above.

    Each scenario is a new client with new job ids: what the server answers then depends on that
    scenario alone, as Hypothesis needs when it replays one (no job of an earlier scenario listed,
    no job id taken by one).
    """
    signer = Signer(KEY)
    session = requests.Session()
    session.auth = signer

    class SignedSequences(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            super().setup()
            signer.keypair = Keypair.generate()

        def before_call(self, case: Any) -> None:
            sign_job_body(case, signer.keypair, fresh_id=True)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"session": session}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            recorder = {"recorder": self.recorder} if hasattr(self, "recorder") else {}
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance, ignored_auth],
                additional_checks=[accepted_unless_documented],
                transport_kwargs=kwargs or None,
                **recorder,
            )

    SignedSequences.run(settings=settings(FUZZ, max_examples=MAX_EXAMPLES, stateful_step_count=6))
