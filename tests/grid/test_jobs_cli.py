"""``grid job status|list|logs|download|cancel`` (grid/cli/jobs.py), called as ``main([...])`` against a real grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facilitator_sdk import Client, JobSpec, Output
from grid.cli import main
from grid.local import LocalGrid

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def client(job_grid: LocalGrid, client_home: Path) -> Client:
    with Client(job_grid.facilitator_url, client_home / "keys" / "client.key") as client:
        yield client


def py(code: str, **spec: object) -> JobSpec:
    import sys

    return JobSpec(command=[sys.executable, "-c", code], **spec)


WRITES_OUTPUTS = (
    "import os; d = os.environ['GRID_OUTPUT_DIR']; os.makedirs(d + '/sub'); os.makedirs(d + '/art');"
    "open(d + '/sub/r.txt', 'w').write('result'); open(d + '/art/a.txt', 'w').write('inline');"
    "print('x' * 200000); import sys; print('to stderr', file=sys.stderr)"
)


@pytest.fixture
def completed(client: Client) -> str:
    spec = py(WRITES_OUTPUTS, outputs=[Output.object("sub/r.txt")], artifacts_dir="art")
    return client.run(spec, timeout=60).job_id


def test_status_prints_the_history_and_json_the_whole_job(
    client: Client, completed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "job", "status", completed)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"job {completed}: completed (attempt 1, miner ")
    assert [line.split()[-1] for line in lines[1:-1]][-1] == "completed"
    assert lines[-1].startswith("exit code 0; stdout ") and lines[-1].endswith("outputs: sub/r.txt")
    code, out, _ = run(capsys, "job", "status", completed, "--json")
    job = json.loads(out)
    assert job == json.loads(json.dumps(client.get_job(completed).to_dict(), default=str))
    assert job["status"] == "completed" and job["history"][-1]["status"] == "completed"


def test_list_is_a_table_filtered_by_status_and_since_paged_and_json(
    client: Client, completed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = client.wait(client.create_job(py("raise SystemExit(2)")), timeout=60).job_id
    code, out, err = run(capsys, "job", "list")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["job", "status", "class", "created", "command"]
    assert [row.split()[:3] for row in rows] == [[failed, "failed", "cpu.small"], [completed, "completed", "cpu.small"]]
    assert "\033[" not in out  # no colour when stdout is not a terminal

    assert [row.split()[0] for row in run(capsys, "job", "list", "--status", "completed")[1].splitlines()[1:]] == [
        completed
    ]
    code, out, err = run(capsys, "job", "list", "--limit", "1")
    assert [row.split()[0] for row in out.splitlines()[1:]] == [failed]
    assert err == "(more may follow: --offset 1)\n"
    code, out, err = run(capsys, "job", "list", "--limit", "1", "--offset", "1", "--json")
    assert [job["job_id"] for job in json.loads(out)] == [completed]
    assert [job["job_id"] for job in json.loads(run(capsys, "job", "list", "--since", "1h", "--json")[1])] == [
        failed,
        completed,
    ]
    code, out, err = run(capsys, "job", "list", "--since", "2999-01-01")
    assert (code, out, err) == (0, "", "no jobs\n")


def test_list_refuses_an_unknown_status_or_a_bad_since(client_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["job", "list", "--since", "yesterday"])
    assert exit_.value.code == 2
    assert "argument --since: 'yesterday' is neither a duration ago (30m, 2h, 7d) nor an ISO 8601 time" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["job", "list", "--status", "done"])
    assert "invalid choice: 'done'" in capsys.readouterr().err


def test_logs_print_the_whole_stdout_or_stderr_from_the_store(
    completed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "job", "logs", completed)
    assert (code, out) == (0, "x" * 200000 + "\n"), err
    assert run(capsys, "job", "logs", completed, "--stderr")[:2] == (0, "to stderr\n")


def test_logs_of_a_running_job_wait_with_follow_and_say_so_without(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    job = client.create_job(py("import time; time.sleep(1.5); print('done at last')"))
    client.wait(job, timeout=30, until=lambda j: j.status == "volumes_ready")
    code, _, err = run(capsys, "job", "logs", job.job_id)
    assert code == 1
    assert err == (
        f"error: job {job.job_id} is volumes_ready: its logs are kept when it ends; "
        f"wait for them with `grid job logs {job.job_id} --follow`\n"
    )
    code, out, err = run(capsys, "job", "logs", job.job_id, "--follow")
    assert (code, out) == (0, "done at last\n"), err
    assert err.splitlines()[-1].endswith("] completed")


def test_logs_of_a_failed_job_are_those_it_kept(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    job = client.wait(client.create_job(py("print('before the fall'); raise SystemExit(4)")), timeout=60)
    assert run(capsys, "job", "logs", job.job_id)[:2] == (0, "before the fall\n")


def test_download_writes_every_output_and_artifact_or_the_ones_named(
    completed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "job", "download", completed, "-o", "all")
    assert code == 0, err
    assert out.splitlines() == [str(Path("all/sub/r.txt")), str(Path("all/a.txt"))]
    assert (tmp_path / "all" / "sub" / "r.txt").read_text() == "result"
    assert (tmp_path / "all" / "a.txt").read_text() == "inline"
    code, out, err = run(capsys, "job", "download", completed, "sub/r.txt", "stderr")
    assert (code, out.splitlines()) == (0, ["sub/r.txt", "stderr"]), err
    assert (tmp_path / "stderr").read_text() == "to stderr\n"


def test_download_mistakes_say_what_to_do(client: Client, completed: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "job", "download", completed, "nope.txt")
    assert (code, err) == (4, f"error: job {completed} has no output 'nope.txt': check the id (`grid job list`)\n")
    failed = client.wait(client.create_job(py("raise SystemExit(1)")), timeout=60).job_id
    code, _, err = run(capsys, "job", "download", failed)
    assert code == 1
    assert err == (
        f"error: job {failed} is failed: only a completed job has outputs to download; "
        f"its logs: `grid job download {failed} stdout`\n"
    )
    assert run(capsys, "job", "status", UNKNOWN)[::2] == (
        4,
        f"error: no job {UNKNOWN}: check the id (`grid job list`)\n",
    )


def test_cancel_ends_a_running_job_and_json_shows_it(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    job = client.create_job(py("import time; time.sleep(30)"))
    code, out, err = run(capsys, "job", "cancel", job.job_id, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "cancelled"
    code, _, err = run(capsys, "job", "cancel", job.job_id)
    assert code == 1 and err.startswith("error: job ") and err.count("\n") == 1
