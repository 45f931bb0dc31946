"""``grid job run`` and ``grid job call`` (grid/cli/job_run.py), called as ``main([...])`` against a real grid.

The streaming test runs ``grid job run --streaming`` as a real process, so that Ctrl-C (SIGINT)
reaches it as it would from a terminal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from facilitator_sdk import Client
from grid.cli import main
from grid.local import LocalGrid

ECHO_APP = Path(__file__).resolve().parents[2] / "examples" / "streaming_echo" / "app.py"
ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def sh(script: str) -> list[str]:
    return ["--", "sh", "-c", script]


def test_run_uploads_files_and_directories_passes_env_and_downloads_outputs(
    client_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "one.txt").write_text("hello\n")
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "t.csv").write_text("a,b\n")
    (tmp_path / "data" / "sub" / "n.txt").write_text("nested\n")
    script = (
        'cat "$GRID_INPUT_DIR/one.txt" "$GRID_INPUT_DIR/d/t.csv" "$GRID_INPUT_DIR/d/sub/n.txt"; echo "$WHO $HOW";'
        'mkdir -p "$GRID_OUTPUT_DIR/out" "$GRID_OUTPUT_DIR/art"; echo result > "$GRID_OUTPUT_DIR/out/r.txt";'
        'echo inline > "$GRID_OUTPUT_DIR/art/a.txt"'
    )
    monkeypatch.setenv("HOW", "passed-on")  # `--env HOW`: this shell's value
    code, out, err = run(
        capsys,
        *("job", "run", "-q", "-i", "one.txt", "-i", "data:d", "-e", "WHO=me", "-e", "HOW"),
        *("--output-file", "out/r.txt", "--artifacts-dir", "art", "-o", "results"),
        *sh(script),
    )
    assert code == 0, err
    assert out == "hello\na,b\nnested\nme passed-on\n"
    assert (tmp_path / "results" / "out" / "r.txt").read_text() == "result\n"
    assert (tmp_path / "results" / "a.txt").read_text() == "inline\n"
    assert err.endswith("files written under results/\n")


def test_run_reads_an_object_already_in_the_store(
    job_grid: LocalGrid, client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(job_grid.facilitator_url, client_home / "keys" / "client.key") as client:
        ref = client.upload(b"stored bytes\n", filename="kept.txt")
    code, out, err = run(
        capsys, "job", "run", "-q", "-i", f"store:{ref.key}:in/k.txt", *sh('cat "$GRID_INPUT_DIR/in/k.txt"')
    )
    assert (code, out) == (0, "stored bytes\n"), err
    code, out, _ = run(capsys, "job", "run", "-q", "-i", f"store:{ref.key}", *sh('cat "$GRID_INPUT_DIR/kept.txt"'))
    assert (code, out) == (0, "stored bytes\n")


def test_run_exits_with_the_jobs_exit_code_and_says_why_on_one_line(
    client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "job", "run", "-q", *sh("echo partial; echo oops >&2; exit 7"))
    assert (code, out) == (7, "partial\n")
    assert err.startswith("oops\n")
    assert err.splitlines()[-1].startswith("error: job ") and "failed during execution: nonzero_exit" in err


def test_run_detach_prints_only_the_job_id(
    job_grid: LocalGrid, client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "job", "run", "--detach", "--", "echo", "later")
    assert code == 0, err
    job_id = out.strip()
    with Client(job_grid.facilitator_url, client_home / "keys" / "client.key") as client:
        assert client.wait(client.get_job(job_id), timeout=30).result.stdout == "later\n"


def test_run_json_prints_one_object_per_status_then_the_job(
    client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "job", "run", "--json", "--", "echo", "hi")
    assert code == 0, err
    *updates, job = [json.loads(line) for line in out.splitlines()]
    assert [u["type"] for u in updates] == ["job.status"] * len(updates)
    assert updates[-1]["status"] == "completed" and "accepted" in [u["status"] for u in updates]
    assert {u["job_id"] for u in updates} == {job["job_id"]}
    assert job["status"] == "completed" and job["result"]["stdout"] == "hi\n"
    assert err == ""


def test_run_json_of_a_failed_job_exits_with_its_code(client_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "job", "run", "--json", *sh("exit 3"))
    job = json.loads(out.splitlines()[-1])
    assert (code, job["status"], job["failure"]["exit_code"]) == (3, "failed", 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "out", "--", "true"], "--output DIR downloads what the job declares: add --output-file PATH"),
        (["--for", "3", "--", "true"], "--for is for --streaming jobs"),
        (["-i", "nowhere.txt", "--", "true"], "--input nowhere.txt: no such file or directory 'nowhere.txt'"),
        (["-i", "store:", "--", "true"], "--input store:: give the object's key, store:KEY[:DEST]"),
        (["-i", "store:k:../up", "--", "true"], "--input store:k:../up: '../up' must be a relative path in the job"),
        (["-e", "UNSET_IN_THIS_SHELL", "--", "true"], "--env UNSET_IN_THIS_SHELL: give K=V, or export"),
        (["-e", "BAD-NAME=1", "--", "true"], "invalid job: env.BAD-NAME.[key]: String should match pattern"),
        (["--timeout", "0", "--", "true"], "invalid job: timing.execution: Input should be greater than 0"),
        (["-i", "store:a/x", "-i", "store:b/x", "--", "true"], "invalid job: inputs: Value error, two inputs have"),
    ],
)
def test_run_mistakes_are_usage_errors_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    monkeypatch.delenv("UNSET_IN_THIS_SHELL", raising=False)
    code, _, err = run(capsys, "job", "run", "--facilitator", "http://127.0.0.1:9", *argv)
    [line] = err.splitlines()
    assert (code, line.startswith(f"error: {message}")) == (2, True), line


def test_call_without_the_jobs_streaming_key_says_where_it_would_be(
    client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "job", "call", "00000000-0000-4000-8000-000000000000", "/health")
    assert code == 4
    assert err.startswith(
        f"error: no streaming key {client_home}/keys/streaming/00000000-0000-4000-8000-000000000000.key"
    )


def test_run_streaming_says_how_to_call_it_serves_calls_and_ends_on_ctrl_c(
    job_grid: LocalGrid, client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "grid.cli", "job", "run", "--streaming", "--", sys.executable, str(ECHO_APP)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = []
        for line in process.stdout:  # type: ignore[union-attr]
            printed.append(line)
            if line.startswith("press Ctrl-C"):
                break
        text = "".join(printed)
        job_id = printed[0].split()[1]
        assert printed[0].startswith(f"job {job_id} serves at https://127.0.0.1:"), text
        assert f"grid job call {job_id} GET /health" in text
        assert f'job.streaming_key = Keypair.load("{client_home}/keys/streaming/{job_id}.key")' in text

        code, out, err = run(capsys, "job", "call", job_id, "POST", "/echo", "-d", "through the gateway")
        assert (code, out) == (0, "through the gateway"), err
        assert err.startswith("200 OK in ") and err.endswith(" ms (reply seal verified)\n")
        assert run(capsys, "job", "call", job_id, "/health")[:2] == (0, "ok")

        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert f"ending job {job_id} …" in err and err.endswith(f"job {job_id}: completed\n")
    assert not (client_home / "keys" / "streaming" / f"{job_id}.key").exists()


def test_run_streaming_for_seconds_ends_the_job_by_itself(
    client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "job", "run", "-q", "--json", "--streaming", "--for", "0.5", "--", sys.executable, str(ECHO_APP)
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    statuses = [line["status"] for line in lines if line.get("type") == "job.status"]
    serving, job = (line for line in lines if line.get("type") != "job.status")
    assert statuses[-1] == "completed" and "streaming_ready" in statuses
    assert serving["url"].startswith("https://127.0.0.1:") and serving["key_file"].endswith(f"{job['job_id']}.key")
    assert job["status"] == "completed"
    assert not Path(serving["key_file"]).exists()


def test_run_prints_the_whole_stdout_even_past_what_the_result_carries_inline(
    client_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "job", "run", "-q", "--", sys.executable, "-c", "print('x' * 300000)")
    assert (code, len(out), out.strip("x")) == (0, 300001, "\n"), err


def test_ctrl_c_while_waiting_leaves_the_job_running_and_says_how_to_reach_it(
    job_grid: LocalGrid, client_home: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "grid.cli", "job", "run", "--", "sleep", "30"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:  # type: ignore[union-attr]
            if line.rstrip().endswith("] volumes_ready"):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    last = err.splitlines()[-1]
    assert last.startswith("error: interrupted; job ") and last.endswith("`grid job cancel " + last.split()[3] + "`")
    job_id = last.split()[3]
    with Client(job_grid.facilitator_url, client_home / "keys" / "client.key") as client:
        assert not client.get_job(job_id).done
        assert client.cancel_job(job_id).status == "cancelled"
