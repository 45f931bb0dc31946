"""``/api/v1/uploads`` and ``/api/v1/jobs/{id}/files/{path}`` (facilitator/api/files.py), and object
inputs through ``POST /api/v1/jobs``, with real signed requests and the store's real URLs."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings

from facilitator import links
from facilitator.models import Job
from facilitator.storage import ObjectStore, get_store
from protocol.spec import ObjectInput, ObjectOutput, UrlOutput

from .conftest import CLIENT, OTHER_CLIENT, SignedApi, assert_error, create_job, signed_job

pytestmark = pytest.mark.django_db

OUT = b"col\n1\n2\n"
LOG = b"hello from the job\n"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store() -> Iterator[ObjectStore]:
    options = {"secret": "files-test-secret"}
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "memory", "OPTIONS": options}}):
        yield get_store()


def content(response: HttpResponse) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def put(url: str, data: bytes) -> HttpResponse:
    return Client().put(url, data, content_type="application/octet-stream")


def record(job: Job, path: str, data: bytes, key: str | None = None, kind: str = "object") -> dict[str, Any]:
    return {"path": path, "sha256": sha(data), "size": len(data), "kind": kind, "ref": key}


def completed_job(store: ObjectStore, keypair=CLIENT, **result: Any) -> Job:
    """A job as the grid leaves it: completed, its files in the store and recorded in its result."""
    job = create_job(keypair, outputs=[ObjectOutput(path="out/table.csv"), UrlOutput(path="mine", url="https://x.io/")])
    out_key, log_key = links.output_key(job.id, "out/table.csv"), links.log_key(job.id, "stdout")
    store.put(out_key, OUT)
    store.put(log_key, LOG)
    job.status = "completed"
    job.result = {
        "exit_code": 0,
        "outputs": [record(job, "out/table.csv", OUT, out_key), record(job, "mine", b"x", None, kind="url")],
        "logs": [record(job, "stdout", LOG, log_key)],  # stderr was empty: not uploaded
        **result,
    }
    job.save()
    return job


# -- uploads ---------------------------------------------------------------------------------------


def test_upload_hands_out_a_fresh_key_of_the_client_and_a_put_url_that_stores_it(
    api: SignedApi, store: ObjectStore
) -> None:
    before = time.time()
    response = api.post("/uploads", {"filename": "data.csv"})
    assert response.status_code == 200, response.content
    grant = response.json()
    assert sorted(grant) == ["expires_at", "headers", "key", "url"]
    assert grant["headers"] == {"If-None-Match": "*"}
    prefix, hotkey, nonce, filename = grant["key"].split("/")
    assert (prefix, hotkey, filename) == ("uploads", CLIENT.hotkey, "data.csv") and len(nonce) == 32
    assert grant["url"].startswith(f"/objects/{grant['key']}?")  # relative: on this facilitator
    expires_at = datetime.fromisoformat(grant["expires_at"]).timestamp()
    assert before + 3600 - 1 <= expires_at <= time.time() + 3600
    stored = put(grant["url"], OUT)
    assert stored.status_code == 200, stored.content
    assert stored.json() == {"key": grant["key"], "size": len(OUT), "sha256": sha(OUT)}
    assert store.read(grant["key"]) == OUT


def test_an_upload_url_is_write_once(api: SignedApi, store: ObjectStore) -> None:
    """Whoever holds the URL cannot replace the upload once a job may have been given its digest."""
    grant = api.post("/uploads", {"filename": "data.csv"}).json()
    assert put(grant["url"], OUT).status_code == 200
    assert_error(put(grant["url"], b"swapped"), 409, "object_exists")
    assert store.read(grant["key"]) == OUT


def test_each_upload_gets_its_own_key(api: SignedApi, store: ObjectStore) -> None:
    keys = {api.post("/uploads", {"filename": "same.bin"}).json()["key"] for _ in range(3)}
    assert len(keys) == 3


def test_an_upload_url_writes_nothing_but_its_key(api: SignedApi, store: ObjectStore) -> None:
    grant = api.post("/uploads", {"filename": "a.bin"}).json()
    other = grant["url"].replace("/a.bin?", "/b.bin?")
    assert_error(put(other, OUT), 403, "bad_signature")
    assert_error(Client().get(grant["url"]), 403, "bad_signature")  # PUT only
    assert not store.exists(grant["key"].replace("/a.bin", "/b.bin"))


def test_upload_urls_are_absolute_when_the_storage_url_is() -> None:
    options = {"secret": "s", "base_url": "http://grid.example:8000/objects/"}
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "memory", "OPTIONS": options}}):
        grant = SignedApi().post("/uploads", {"filename": "a.bin"}).json()
    assert grant["url"].startswith(f"http://grid.example:8000/objects/{grant['key']}?")


@pytest.mark.parametrize(
    "filename", ["", "a/b", "../etc", "..", ".", "a\\b", "a\nb", "a\x00b", "x" * 201, "dir/", "/abs"]
)
def test_upload_refuses_a_filename_that_is_not_one_path_segment(
    api: SignedApi, store: ObjectStore, filename: str
) -> None:
    error = assert_error(api.post("/uploads", {"filename": filename}), 400, "invalid_request")
    assert [item["field"] for item in error["errors"]] == ["filename"]
    assert error["message"].startswith("invalid request: filename: Value error, ")


def test_upload_without_a_filename_names_the_missing_field(api: SignedApi, store: ObjectStore) -> None:
    error = assert_error(api.post("/uploads", {}), 400, "invalid_request")
    assert error["errors"] == [{"field": "filename", "message": "Field required"}]


def test_upload_needs_a_signed_request(store: ObjectStore) -> None:
    response = Client().post("/api/v1/uploads", {"filename": "a"}, content_type="application/json")
    assert_error(response, 401, "missing_signature")


# -- object inputs of a new job --------------------------------------------------------------------


def test_a_job_may_read_the_clients_upload(api: SignedApi, store: ObjectStore) -> None:
    grant = api.post("/uploads", {"filename": "in.bin"}).json()
    put(grant["url"], OUT)
    body = signed_job(inputs=[ObjectInput(path="data/in.bin", key=grant["key"], sha256=sha(OUT))])
    response = api.post("/jobs", body)
    assert response.status_code == 201, response.content


def test_a_job_may_read_an_output_of_the_clients_earlier_job(api: SignedApi, store: ObjectStore) -> None:
    earlier = completed_job(store)
    body = signed_job(inputs=[ObjectInput(path="t.csv", key=links.output_key(earlier.id, "out/table.csv"))])
    assert api.post("/jobs", body).status_code == 201


def test_a_job_reading_another_clients_object_is_refused_naming_the_input(api: SignedApi, store: ObjectStore) -> None:
    theirs = SignedApi(OTHER_CLIENT).post("/uploads", {"filename": "secret.bin"}).json()
    put(theirs["url"], OUT)
    body = signed_job(inputs=[ObjectInput(path="data/s.bin", key=theirs["key"])])
    error = assert_error(api.post("/jobs", body), 400, "invalid_input")
    assert error["errors"] == [
        {"field": "inputs.0.key", "message": f"input 'data/s.bin': no object {theirs['key']!r} of yours in the store"}
    ]
    assert not Job.objects.filter(id=body["job_id"]).exists()


def test_a_missing_object_and_another_clients_object_read_alike(api: SignedApi, store: ObjectStore) -> None:
    theirs = SignedApi(OTHER_CLIENT).post("/uploads", {"filename": "x"}).json()
    put(theirs["url"], OUT)
    missing = f"uploads/{CLIENT.hotkey}/{uuid.uuid4().hex}/x"
    answers = []
    for key in (theirs["key"], missing):
        error = assert_error(
            api.post("/jobs", signed_job(inputs=[ObjectInput(path="x", key=key)])), 400, "invalid_input"
        )
        answers.append(error["message"].replace(key, "KEY"))
    assert answers[0] == answers[1] == "invalid input: input 'x': no object 'KEY' of yours in the store"


def test_a_job_reading_another_clients_job_output_is_refused(api: SignedApi, store: ObjectStore) -> None:
    theirs = completed_job(store, OTHER_CLIENT)
    body = signed_job(inputs=[ObjectInput(path="t.csv", key=links.output_key(theirs.id, "out/table.csv"))])
    assert_error(api.post("/jobs", body), 400, "invalid_input")


# -- files of a job --------------------------------------------------------------------------------


def test_files_gives_a_signed_url_to_an_object_output_with_its_digest(api: SignedApi, store: ObjectStore) -> None:
    job = completed_job(store)
    response = api.get(f"/jobs/{job.id}/files/out/table.csv")
    assert response.status_code == 200, response.content
    file = response.json()
    assert (file["path"], file["sha256"], file["size"]) == ("out/table.csv", sha(OUT), len(OUT))
    assert file["url"].startswith(f"/objects/jobs/{job.id}/outputs/out/table.csv?")
    assert datetime.fromisoformat(file["expires_at"]).timestamp() > time.time() + 3000
    assert content(Client().get(file["url"])) == OUT
    assert_error(put(file["url"], b"overwrite"), 403, "bad_signature")  # GET only


def test_files_gives_the_whole_stdout(api: SignedApi, store: ObjectStore) -> None:
    job = completed_job(store)
    file = api.get(f"/jobs/{job.id}/files/stdout").json()
    assert (file["path"], file["sha256"], file["size"]) == ("stdout", sha(LOG), len(LOG))
    assert content(Client().get(file["url"])) == LOG


def test_an_empty_log_has_no_url_and_size_zero(api: SignedApi, store: ObjectStore) -> None:
    job = completed_job(store)
    response = api.get(f"/jobs/{job.id}/files/stderr")
    assert response.status_code == 200
    assert response.json() == {"path": "stderr", "url": None, "sha256": EMPTY_SHA, "size": 0, "expires_at": None}


def test_files_of_an_unknown_path_is_not_found(api: SignedApi, store: ObjectStore) -> None:
    job = completed_job(store)
    assert_error(api.get(f"/jobs/{job.id}/files/nope.txt"), 404, "not_found", f"job {job.id} has no output 'nope.txt'")
    assert_error(api.get(f"/jobs/{job.id}/files/out"), 404, "not_found", f"job {job.id} has no output 'out'")


def test_files_of_an_output_sent_to_the_clients_own_url_is_not_found(api: SignedApi, store: ObjectStore) -> None:
    job = completed_job(store)
    assert_error(
        api.get(f"/jobs/{job.id}/files/mine"),
        404,
        "not_found",
        f"output 'mine' of job {job.id} went to your own URL, not to the store",
    )


def test_files_of_another_clients_job_is_not_found(api: SignedApi, store: ObjectStore) -> None:
    job = completed_job(store, OTHER_CLIENT)
    for path in ("out/table.csv", "stdout"):
        assert_error(api.get(f"/jobs/{job.id}/files/{path}"), 404, "not_found", f"no job {job.id}")


def test_files_of_an_unknown_or_malformed_job_is_not_found(api: SignedApi, store: ObjectStore) -> None:
    job_id = uuid.uuid4()
    assert_error(api.get(f"/jobs/{job_id}/files/stdout"), 404, "not_found", f"no job {job_id}")
    assert_error(api.get("/jobs/nope/files/stdout"), 404, "not_found", "no job nope")


@pytest.mark.parametrize("status", ["sent", "accepted", "failed", "cancelled"])
def test_files_of_a_job_that_did_not_complete_is_refused(api: SignedApi, store: ObjectStore, status: str) -> None:
    job = create_job(outputs=[ObjectOutput(path="o")])
    Job.objects.filter(id=job.id).update(status=status)
    assert_error(
        api.get(f"/jobs/{job.id}/files/stdout"),
        409,
        "not_completed",
        f"job {job.id} has no files: it is {status}, not completed",
    )


def test_files_never_signs_a_key_outside_the_job_whatever_its_result_says(api: SignedApi, store: ObjectStore) -> None:
    """The result came from a miner: a ``ref`` to someone else's object must not become a URL."""
    theirs = links.upload_key(OTHER_CLIENT.hotkey, "secret.bin")
    store.put(theirs, b"secret")
    job = completed_job(store)
    job.result["outputs"][0]["ref"] = theirs
    job.result["logs"][0]["ref"] = theirs
    job.save()
    for path in ("out/table.csv", "stdout"):
        assert_error(
            api.get(f"/jobs/{job.id}/files/{path}"), 404, "not_found", f"job {job.id} has no stored file {path!r}"
        )


def failed_job(store: ObjectStore, keypair=CLIENT) -> Job:
    """A job that failed after running: it kept its stderr, its stdout was empty."""
    job = create_job(keypair, outputs=[ObjectOutput(path="o")])
    key = links.log_key(job.id, "stderr")
    store.put(key, LOG)
    job.status = "failed"
    job.failure = {"reason": "nonzero_exit", "message": "exit 1", "logs": [record(job, "stderr", LOG, key)]}
    job.save()
    return job


def test_a_failed_job_gives_the_logs_it_kept(api: SignedApi, store: ObjectStore) -> None:
    job = failed_job(store)
    file = api.get(f"/jobs/{job.id}/files/stderr").json()
    assert (file["path"], file["sha256"], file["size"]) == ("stderr", sha(LOG), len(LOG))
    assert content(Client().get(file["url"])) == LOG
    assert_error(
        api.get(f"/jobs/{job.id}/files/stdout"), 404, "not_found", f"job {job.id} is failed and kept no stdout"
    )


def test_a_failed_job_has_no_outputs(api: SignedApi, store: ObjectStore) -> None:
    job = failed_job(store)
    assert_error(
        api.get(f"/jobs/{job.id}/files/o"),
        409,
        "not_completed",
        f"job {job.id} has no files: it is failed, not completed",
    )


def test_a_failed_jobs_logs_are_signed_only_at_their_own_key(api: SignedApi, store: ObjectStore) -> None:
    job = failed_job(store)
    job.failure["logs"][0]["ref"] = links.upload_key(OTHER_CLIENT.hotkey, "x")
    job.save()
    assert_error(api.get(f"/jobs/{job.id}/files/stderr"), 404, "not_found", f"job {job.id} has no stored file 'stderr'")


def test_a_body_over_the_servers_limit_is_413_in_the_error_shape(api: SignedApi, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    error = assert_error(api.post("/uploads", {"filename": "x" * 2000}), 413, "request_too_large")
    assert error["message"] == "request bodies here are limited to 1000 bytes"
