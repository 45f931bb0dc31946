"""Docker jobs through the whole chain, with every input and output kind and every bad input.

Real processes (facilitator, validator, miner, forked executors), a real Docker engine running
the jobs in locked-down containers, the facilitator's real store (local here, S3 on a moto
server in the last test), and a loopback HTTP server for the client's own URLs.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from facilitator_sdk import Client, Input, JobSpec, Output
from facilitator_sdk.job import Job
from grid.local import LocalGrid
from tests.dataplane.conftest import MAX_INPUT, MAX_LOG
from tests.executor.httpserver import Server
from tests.integration.conftest import holds_a_file, pid_alive

BUSYBOX = "gridtest/busybox:latest"


def sh(script: str, **spec: Any) -> JobSpec:
    return JobSpec(image=BUSYBOX, command=["sh", "-c", script], **spec)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(*entries: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def run(grid: LocalGrid, client_key: Path, spec: JobSpec, timeout: float = 90) -> Job:
    with Client(grid.facilitator_url, client_key) as client:
        return client.wait(client.create_job(spec), timeout=timeout)


def _left_over(job_dir: Path) -> bool:
    """A job directory with anything in it but empty directories, or whose executor is gone."""
    return not pid_alive(int(job_dir.name.split("-")[1])) or holds_a_file(job_dir)


def assert_nothing_left_behind(grid: LocalGrid, docker_client: Any, within: float = 10.0) -> None:
    """No job container and nothing of a job's directories survive a finished job, whatever its end.

    An executor that serves on keeps its job directories, emptied, for its next job; anything
    in them, or a directory of an executor that is gone, is a leftover. The fork server removes a
    dead executor's directory once it has reaped it, which may come a moment after the job's
    final status: allowed ``within`` seconds, not more.
    """
    work = grid.home / "work"
    deadline = time.monotonic() + within
    while True:
        containers = docker_client.containers.list(all=True, filters={"label": "gridmarket.job"})
        leftovers = [path.name for path in work.glob("job-*") if _left_over(path)] if work.exists() else []
        if (not containers and not leftovers) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert containers == [], f"job containers left behind: {[c.name for c in containers]}"
    assert leftovers == [], f"job directories left behind: {leftovers}"


def test_every_input_and_output_kind_in_one_docker_job(
    grid: LocalGrid, client_key: Path, web: Server, tmp_path: Path, docker_client: Any
) -> None:
    archive = make_zip(("tree/a.txt", b"alpha\n"), ("tree/deep/b.txt", b"beta\n"))
    web.route("/remote.txt", b"remote file\n")
    web.route("/bundle.zip", archive)
    web.route("/put-target", status=200)
    web.route("/post-target", status=204)
    script = (
        "set -e; cd /volume; "
        "cat inline.txt remote.txt stored.bin bundle/tree/a.txt bundle/tree/deep/b.txt > /output/all.txt; "
        "echo put-me > /output/put.txt; echo post-me > /output/post.txt; "
        "mkdir -p /output/artifacts/sub; echo small > /output/artifacts/sub/note.txt; "
        "echo to-stdout; echo to-stderr >&2"
    )
    with Client(grid.facilitator_url, client_key) as client:
        ref = client.upload(b"stored object\n", filename="stored.bin")
        spec = sh(
            script,
            inputs=[
                Input.inline("inline.txt", "inline\n"),
                Input.url("remote.txt", web.url("/remote.txt"), sha256=sha(b"remote file\n")),
                Input.url("bundle", web.url("/bundle.zip"), unpack=True),
                Input.object("stored.bin", ref),
            ],
            outputs=[
                Output.object("all.txt"),
                Output.url("put.txt", web.url("/put-target")),
                Output.url("post.txt", web.url("/post-target"), method="POST", fields={"key": "k1", "policy": "p"}),
            ],
            artifacts_dir="artifacts",
        )
        job = client.wait(client.create_job(spec), timeout=90)
        assert job.status == "completed", job.failure
        result = job.result
        assert result is not None

        expected = b"inline\nremote file\nstored object\nalpha\nbeta\n"
        saved = result.download("all.txt", tmp_path / "all.txt")
        assert saved.read_bytes() == expected
        records = {record["path"]: record for record in result.outputs}
        assert records["all.txt"]["sha256"] == sha(expected) and records["all.txt"]["size"] == len(expected)
        assert records["all.txt"]["kind"] == "object"
        assert records["put.txt"] == {
            "path": "put.txt",
            "sha256": sha(b"put-me\n"),
            "size": 7,
            "kind": "url",
            "ref": None,
        }
        assert records["post.txt"]["sha256"] == sha(b"post-me\n")

        assert web.bodies("/put-target") == [b"put-me\n"]
        (posted,) = web.bodies("/post-target")
        assert b'name="key"' in posted and b"k1" in posted and b"post-me\n" in posted
        assert posted.index(b"k1") < posted.index(b"post-me"), "form fields come before the file"

        assert result.artifacts == {"sub/note.txt": "c21hbGwK"}  # base64 of "small\n"
        assert result.stdout == "to-stdout\n"
        assert result.download("stdout", tmp_path / "out.log").read_bytes() == b"to-stdout\n"
        assert result.download("stderr", tmp_path / "err.log").read_bytes() == b"to-stderr\n"
        logs = {record["path"]: record for record in result.logs}
        assert logs["stdout"]["sha256"] == sha(b"to-stdout\n")
    assert_nothing_left_behind(grid, docker_client)
    for role in ("facilitator", "validator", "miner"):
        text = (grid.home / "logs" / f"{role}.log").read_text()
        assert "signature=" not in text, f"the {role} log shows a signed URL's credentials"


def test_the_output_of_one_job_is_the_input_of_the_next(grid: LocalGrid, client_key: Path, tmp_path: Path) -> None:
    with Client(grid.facilitator_url, client_key) as client:
        first = client.run(sh("seq 1 1000 > /output/numbers.txt", outputs=[Output.object("numbers.txt")]), timeout=90)
        (record,) = first.result.outputs
        second = client.run(
            sh("wc -l < /volume/numbers.txt", inputs=[Input.object("numbers.txt", record["ref"])]), timeout=90
        )
        assert second.result.stdout.strip() == "1000"


def test_stdout_is_uploaded_in_full_even_past_the_inline_part(
    grid: LocalGrid, client_key: Path, tmp_path: Path
) -> None:
    # MAX_LOG is the per-stream cap; stay under it but well past a kilobyte of inline output.
    with Client(grid.facilitator_url, client_key) as client:
        job = client.run(sh(f"head -c {MAX_LOG - 1000} /dev/zero | tr '\\0' 'x'"), timeout=90)
        saved = job.result.download("stdout", tmp_path / "stdout")
    assert saved.read_bytes() == b"x" * (MAX_LOG - 1000)
    assert len(job.result.stdout) < MAX_LOG - 1000, "the inline part is capped; the upload is whole"


BAD_INPUTS = {
    "zip_bomb": ("download", "input_too_large"),
    "escaping_zip": ("download", "input_refused"),
    "url_404": ("download", "download_failed"),
    "url_timeout": ("download", "download_failed"),
    "output_refused": ("upload", "upload_failed"),
    "output_missing": ("upload", "output_missing"),
    "missing_image": ("executor_start", "image_not_found"),
    "missing_command": ("execution", "command_not_found"),
    "too_much_output": ("execution", "output_too_large"),
}


def bad_spec(case: str, web: Server) -> JobSpec:
    if case == "zip_bomb":
        bomb = make_zip(("bomb.bin", b"\0" * (MAX_INPUT * 4)))
        assert len(bomb) < MAX_INPUT // 50, "a bomb: small compressed, big expanded"
        return sh("true", inputs=[Input.url("x", web.route("/bomb.zip", bomb), unpack=True)])
    if case == "escaping_zip":
        return sh(
            "true",
            inputs=[Input.url("x", web.route("/evil.zip", make_zip(("../../escape.txt", b"evil"))), unpack=True)],
        )
    if case == "url_404":
        return sh("true", inputs=[Input.url("x", web.url("/nothing-here"))])
    if case == "url_timeout":
        url = web.route("/slow", b"late", delay=5.0)
        return sh("true", inputs=[Input.url("x", url)], timing={"download": 1.5})
    if case == "output_refused":
        url = web.route("/refuse", b"AccessDenied", status=403)
        return sh("echo hi > /output/o.txt", outputs=[Output.url("o.txt", url)])
    if case == "output_missing":
        return sh("true", outputs=[Output.object("never-written.txt")])
    if case == "missing_image":
        return JobSpec(image="gridtest/no-such-image:latest", command=["true"])
    if case == "missing_command":
        return JobSpec(image=BUSYBOX, command=["/no/such/command"])
    if case == "too_much_output":
        return sh(f"head -c {MAX_LOG * 4} /dev/zero")
    raise AssertionError(case)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_with_its_stage_and_reason_and_leaves_nothing(
    case: str, grid: LocalGrid, client_key: Path, web: Server, docker_client: Any
) -> None:
    stage, reason = BAD_INPUTS[case]
    job = run(grid, client_key, bad_spec(case, web))
    assert job.status == "failed", f"{case}: {job.status} {job.failure}"
    assert (job.failure["stage"], job.failure["reason"]) == (stage, reason), job.failure
    assert job.failure["message"]
    assert_nothing_left_behind(grid, docker_client)
    if case == "escaping_zip":
        assert not list(grid.home.rglob("escape.txt"))


def test_the_slots_are_free_after_the_bad_inputs(grid: LocalGrid, client_key: Path) -> None:
    """Both executors of the class still take jobs: nothing above leaked a slot."""
    with Client(grid.facilitator_url, client_key) as client:
        jobs = [client.create_job(sh("sleep 1; echo ok")) for _ in range(2)]
        done = [client.wait(job, timeout=90) for job in jobs]
    assert [job.status for job in done] == ["completed", "completed"]


def test_every_input_and_output_kind_against_the_s3_store(
    s3_grid: LocalGrid, client_key: Path, web: Server, tmp_path: Path, s3_admin: Any
) -> None:
    web.route("/put-target", status=200)
    with Client(s3_grid.facilitator_url, client_key) as client:
        ref = client.upload(b"from s3\n", filename="in.txt")
        spec = sh(
            "cat /volume/in.txt /volume/zipped/z.txt > /output/out.txt; cp /output/out.txt /output/mine.txt; echo done",
            inputs=[
                Input.object("in.txt", ref),
                Input.url("zipped", web.route("/z.zip", make_zip(("z.txt", b"zipped\n"))), unpack=True),
            ],
            outputs=[Output.object("out.txt"), Output.url("mine.txt", web.url("/put-target"))],
        )
        job = client.wait(client.create_job(spec), timeout=90)
        assert job.status == "completed", job.failure
        assert job.result.download("out.txt", tmp_path / "out.txt").read_bytes() == b"from s3\nzipped\n"
        assert job.result.download("stdout", tmp_path / "stdout").read_bytes() == b"done\n"
    assert web.bodies("/put-target") == [b"from s3\nzipped\n"]
    keys = {item["Key"] for item in s3_admin.list_objects_v2(Bucket=s3_grid.bucket)["Contents"]}
    assert f"jobs/{job.job_id}/outputs/out.txt" in keys
    assert f"jobs/{job.job_id}/logs/stdout" in keys
