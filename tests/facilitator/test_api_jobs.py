"""``/api/v1/jobs``: create, get, list, cancel (facilitator/api/jobs.py) with real signed requests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from facilitator.models import Job, JobEvent
from protocol.spec import sign_job

from .conftest import API, CLIENT, OTHER_CLIENT, SignedApi, assert_error, sign_raw_job, signed_job

pytestmark = pytest.mark.django_db


def create(api: SignedApi, **spec: object) -> dict:
    response = api.post("/jobs", signed_job(api.keypair, **spec))
    assert response.status_code == 201, response.content
    return response.json()


# -- create ----------------------------------------------------------------------------------------


def test_create_stores_the_job_as_sent_with_its_history(api: SignedApi) -> None:
    body = signed_job(env={"WHO": "me"})
    response = api.post("/jobs", body)
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["job_id"] == body["job_id"]
    assert job["status"] == "sent"
    assert job["attempt"] == 1
    assert job["client_hotkey"] == CLIENT.hotkey
    assert job["spec"] == body["spec"] == {"command": ["echo", "hi"], "env": {"WHO": "me"}}
    assert job["validator"] is None and job["miner"] is None
    assert job["result"] is None and job["failure"] is None
    [sent] = job["history"]
    assert sent["type"] == "job.status"
    assert (sent["job_id"], sent["status"], sent["attempt"]) == (body["job_id"], "sent", 1)
    stored = Job.objects.get(id=body["job_id"])
    assert stored.client_signature == body["signature"] and stored.spec == body["spec"]


@pytest.mark.django_db(transaction=True)
def test_a_replayed_create_request_is_refused_and_stores_nothing_more(api: SignedApi) -> None:
    first = api.sign("POST", "/jobs", body=signed_job())
    assert api.send("POST", *first).status_code == 201
    assert_error(api.send("POST", *first), 401, "replayed", "this nonce was already used")
    replay_of_a_new_job = api.sign("POST", "/jobs", body=signed_job())
    assert api.send("POST", *replay_of_a_new_job).status_code == 201
    assert_error(api.send("POST", *replay_of_a_new_job), 401, "replayed", "this nonce was already used")
    assert Job.objects.count() == 2 and JobEvent.objects.count() == 2


def test_create_keeps_the_spec_exactly_as_the_client_signed_it(api: SignedApi) -> None:
    """No default is filled in: later hops verify the client's signature over this very dict."""
    body = signed_job()
    api.post("/jobs", body)
    assert Job.objects.get(id=body["job_id"]).spec == {"command": ["echo", "hi"]}


def test_create_the_same_job_again_is_idempotent(api: SignedApi) -> None:
    body = signed_job()
    first = api.post("/jobs", body)
    again = api.post("/jobs", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["job_id"] == body["job_id"]
    assert again.json()["history"] == first.json()["history"]
    assert Job.objects.count() == 1
    assert JobEvent.objects.count() == 1


def test_create_a_job_id_again_with_another_spec_is_a_conflict(api: SignedApi) -> None:
    body = signed_job()
    api.post("/jobs", body)
    other = signed_job(job_id=body["job_id"], command=["false"])
    response = api.post("/jobs", other)
    assert_error(response, 409, "conflict", f"job id {body['job_id']} is already taken")
    assert Job.objects.get(id=body["job_id"]).spec == body["spec"]


def test_create_another_clients_job_id_is_a_conflict(api: SignedApi) -> None:
    body = signed_job()
    api.post("/jobs", body)
    response = SignedApi(OTHER_CLIENT).post("/jobs", signed_job(OTHER_CLIENT, job_id=body["job_id"]))
    assert_error(response, 409, "conflict")
    assert Job.objects.get(id=body["job_id"]).client_hotkey == CLIENT.hotkey


def test_create_with_an_invalid_spec_lists_each_field_error(api: SignedApi) -> None:
    body = sign_raw_job({"command": [], "env": {"GRID_JOB_ID": "x"}, "max_attempts": 0, "bogus": 1})
    response = api.post("/jobs", body)
    error = assert_error(response, 400, "invalid_spec")
    assert error["message"].startswith("invalid spec: command: List should have at least 1 item")
    fields = {item["field"]: item["message"] for item in error["errors"]}
    assert set(fields) == {"command", "env", "max_attempts", "bogus"}
    assert fields["env"] == "Value error, reserved variable names: GRID_JOB_ID"
    assert fields["max_attempts"] == "Input should be greater than or equal to 1"
    assert fields["bogus"] == "Extra inputs are not permitted"
    assert not Job.objects.exists()


def test_create_with_a_nested_invalid_spec_names_the_nested_field(api: SignedApi) -> None:
    body = sign_raw_job({"command": ["true"], "timing": {"execution": -1}})
    error = assert_error(api.post("/jobs", body), 400, "invalid_spec")
    assert error["errors"] == [{"field": "timing.execution", "message": "Input should be greater than 0"}]


def test_create_with_a_signature_not_over_this_spec_is_refused(api: SignedApi) -> None:
    body = signed_job()
    body["signature"] = sign_job(CLIENT, body["job_id"], {"command": ["rm", "-rf", "/"]})
    response = api.post("/jobs", body)
    assert_error(response, 400, "bad_job_signature", "job signature refused: signature does not verify")
    assert not Job.objects.exists()


def test_create_with_a_job_signed_by_another_key_is_refused(api: SignedApi) -> None:
    """The request signer must be the job signer: a client cannot submit a job in another's name."""
    response = api.post("/jobs", signed_job(OTHER_CLIENT))
    assert_error(response, 400, "bad_job_signature")


def test_create_with_a_malformed_json_body_is_a_400_in_the_error_shape(api: SignedApi) -> None:
    response = api.post("/jobs", b'{"job_id": ')
    body = response.json()
    assert response.status_code == 400
    assert sorted(body) == ["code", "errors", "message"]
    assert body["message"] == "Cannot parse request body"
    assert not Job.objects.exists()


def test_create_with_a_malformed_json_body_is_an_invalid_request(api: SignedApi) -> None:
    assert_error(api.post("/jobs", b'{"job_id": '), 400, "invalid_request")


def test_create_with_missing_fields_names_them(api: SignedApi) -> None:
    response = api.post("/jobs", {"spec": {"command": ["true"]}})
    error = assert_error(
        response, 400, "invalid_request", "invalid request: job_id: Field required; signature: Field required"
    )
    assert error["errors"] == [
        {"field": "job_id", "message": "Field required"},
        {"field": "signature", "message": "Field required"},
    ]


def test_create_with_a_job_id_that_is_not_a_uuid_is_refused(api: SignedApi) -> None:
    body = sign_raw_job({"command": ["true"]}, job_id="not-a-uuid")
    error = assert_error(api.post("/jobs", body), 400, "invalid_request")
    assert [item["field"] for item in error["errors"]] == ["job_id"]


# -- get -------------------------------------------------------------------------------------------


def test_get_returns_the_job_with_its_history(api: SignedApi) -> None:
    job_id = create(api)["job_id"]
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    job = response.json()
    assert (job["job_id"], job["status"]) == (job_id, "sent")
    assert [event["status"] for event in job["history"]] == ["sent"]


def test_get_another_clients_job_is_not_found(api: SignedApi) -> None:
    job_id = create(SignedApi(OTHER_CLIENT))["job_id"]
    assert_error(api.get(f"/jobs/{job_id}"), 404, "not_found", f"no job {job_id}")


def test_get_an_unknown_job_is_not_found(api: SignedApi) -> None:
    job_id = str(uuid.uuid4())
    assert_error(api.get(f"/jobs/{job_id}"), 404, "not_found", f"no job {job_id}")


def test_get_a_malformed_job_id_is_not_found(api: SignedApi) -> None:
    assert_error(api.get("/jobs/not-a-job"), 404, "not_found", "no job not-a-job")


# -- list ------------------------------------------------------------------------------------------


def test_list_returns_only_own_jobs_newest_first_without_history(api: SignedApi) -> None:
    ids = [create(api)["job_id"] for _ in range(3)]
    create(SignedApi(OTHER_CLIENT))
    response = api.get("/jobs")
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 3
    assert [job["job_id"] for job in page["jobs"]] == ids[::-1]
    assert all(job["history"] == [] for job in page["jobs"])


def test_list_filters_by_status(api: SignedApi) -> None:
    kept = create(api)["job_id"]
    cancelled = create(api)["job_id"]
    assert api.post(f"/jobs/{cancelled}/cancel").status_code == 200
    sent = api.get("/jobs", query="status=sent").json()
    assert ([job["job_id"] for job in sent["jobs"]], sent["count"]) == ([kept], 1)
    ended = api.get("/jobs", query="status=cancelled").json()
    assert ([job["job_id"] for job in ended["jobs"]], ended["count"]) == ([cancelled], 1)


def test_list_pages_with_limit_and_offset_and_counts_them_all(api: SignedApi) -> None:
    ids = [create(api)["job_id"] for _ in range(3)][::-1]
    page = api.get("/jobs", query="limit=2&offset=1").json()
    assert [job["job_id"] for job in page["jobs"]] == ids[1:3]
    assert page["count"] == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=501", "limit: Input should be less than or equal to 500"),
        ("offset=-1", "offset: Input should be greater than or equal to 0"),
        (f"offset={2**31}", f"offset: Input should be less than or equal to {2**31 - 1}"),
    ],
)
def test_list_refuses_a_limit_or_offset_out_of_bounds(api: SignedApi, query: str, message: str) -> None:
    assert_error(api.get("/jobs", query=query), 400, "invalid_request", f"invalid request: {message}")


@pytest.mark.parametrize("query", ["limit=1", "limit=500", f"offset={2**31 - 1}"])
def test_list_accepts_the_limit_bounds(api: SignedApi, query: str) -> None:
    assert api.get("/jobs", query=query).status_code == 200


def test_list_refuses_an_unknown_status_naming_the_known_ones(api: SignedApi) -> None:
    error = assert_error(api.get("/jobs", query="status=bogus"), 400, "invalid_request")
    assert error["errors"][0]["field"] == "status"
    assert error["errors"][0]["message"].startswith("Input should be 'sent', 'received', ")


def test_the_schema_states_the_list_bounds_the_server_enforces(api: SignedApi) -> None:
    schema = api.send("GET", "/api/v1/openapi.json").json()
    params = {item["name"]: item["schema"] for item in schema["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 500)
    assert (params["offset"]["minimum"], params["offset"]["maximum"]) == (0, 2**31 - 1)
    assert schema["components"]["schemas"]["JobStatus"]["enum"][:2] == ["sent", "received"]


def test_list_refuses_a_limit_that_is_not_a_number(api: SignedApi) -> None:
    error = assert_error(api.get("/jobs", query="limit=many"), 400, "invalid_request")
    assert [item["message"] for item in error["errors"]] == [
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_list_names_the_query_parameter_that_is_not_a_number(api: SignedApi) -> None:
    error = assert_error(api.get("/jobs", query="limit=many"), 400, "invalid_request")
    assert [item["field"] for item in error["errors"]] == ["limit"]


def test_list_since_keeps_only_jobs_created_at_or_after_it(api: SignedApi) -> None:
    old, new = create(api)["job_id"], create(api)["job_id"]
    Job.objects.filter(id=old).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    Job.objects.filter(id=new).update(created_at=datetime(2026, 3, 1, tzinfo=UTC))
    for since in ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00", "2026-03-01T00:00:00%2B00:00", "1769904000"):
        page = api.get("/jobs", query=f"since={since}").json()
        assert ([job["job_id"] for job in page["jobs"]], page["count"]) == ([new], 1), since
    assert api.get("/jobs", query="since=2025-12-31T00:00:00Z").json()["count"] == 2


def test_list_since_combines_with_status_and_paging(api: SignedApi) -> None:
    ids = [create(api)["job_id"] for _ in range(3)][::-1]
    api.post(f"/jobs/{ids[0]}/cancel")
    page = api.get("/jobs", query="since=2000-01-01T00:00:00Z&status=sent&limit=1&offset=1").json()
    assert ([job["job_id"] for job in page["jobs"]], page["count"]) == ([ids[2]], 2)


@pytest.mark.parametrize("since", ["-1", "253402300800", "1e20"])
def test_list_refuses_unix_seconds_outside_the_schemas_bounds(api: SignedApi, since: str) -> None:
    error = assert_error(api.get("/jobs", query=f"since={since}"), 400, "invalid_request")
    assert error["errors"] == [
        {"field": "since", "message": "Value error, Unix seconds must be between 0 and 253402300799"}
    ]


def test_list_refuses_a_since_that_is_not_a_time(api: SignedApi) -> None:
    error = assert_error(api.get("/jobs", query="since=yesterday"), 400, "invalid_request")
    assert [item["field"] for item in error["errors"]] == ["since"]


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_ends_the_job_and_records_why(api: SignedApi) -> None:
    job_id = create(api)["job_id"]
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.content
    job = response.json()
    assert job["status"] == "cancelled"
    assert job["failure"] == {
        "reason": "cancelled",
        "message": "cancelled by client",
        "stage": None,
        "exit_code": None,
        "stdout_tail": "",
        "stderr_tail": "",
        "reported_by": "facilitator",
        "logs": [],
    }
    assert [event["status"] for event in job["history"]] == ["sent", "cancelled"]
    assert Job.objects.get(id=job_id).status == "cancelled"


def test_cancel_twice_is_refused_as_already_ended(api: SignedApi) -> None:
    job_id = create(api)["job_id"]
    api.post(f"/jobs/{job_id}/cancel")
    response = api.post(f"/jobs/{job_id}/cancel")
    assert_error(response, 409, "already_ended", "job already ended: cancelled")
    assert JobEvent.objects.filter(job_id=job_id, status="cancelled").count() == 1


def test_cancel_another_clients_job_is_not_found_and_changes_nothing(api: SignedApi) -> None:
    job_id = create(SignedApi(OTHER_CLIENT))["job_id"]
    assert_error(api.post(f"/jobs/{job_id}/cancel"), 404, "not_found", f"no job {job_id}")
    assert Job.objects.get(id=job_id).status == "sent"


def test_cancel_an_unknown_job_is_not_found(api: SignedApi) -> None:
    job_id = str(uuid.uuid4())
    assert_error(api.post(f"/jobs/{job_id}/cancel"), 404, "not_found", f"no job {job_id}")


# -- the error shape beyond the routes' own refusals -------------------------------------------------


def test_a_wrong_method_is_refused_with_the_error_shape(api: SignedApi) -> None:
    response = api.call("DELETE", "/jobs")
    assert_error(response, 405, "method_not_allowed")


def test_the_api_lives_under_api_v1(api: SignedApi) -> None:
    assert api.http.get(f"{API}/health").status_code == 200
    assert api.http.get("/health").status_code == 404
