"""Malicious-miner reports through the whole chain of real processes (DESIGN.md §8).

The sample streaming app runs as the job; the client collects the signed replies as evidence,
reports the miner through the facilitator, and the validator judges the report against the
readiness it relayed. A refused report changes nothing; an accepted one blacklists the miner,
which the validator's routing then skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator_sdk import ApiError, Client, JobSpec, NotFoundError
from grid.local import LocalGrid
from tests.integration.conftest import running_grid
from tests.integration.test_streaming import streaming


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    """Its own grid: the test blacklists its only miner. A job nobody can take is rejected in 5 s."""
    with running_grid(tmp_path_factory.mktemp("reports"), "cpu.small:4:2", GRID_QUEUE_TIMEOUT_S="5") as grid:
        yield grid


def blacklist(grid: LocalGrid) -> list[dict]:
    """The validator's blacklist, read from its own database by its own settings."""
    code = (
        "import json; from validator.models import BlacklistEntry as B; "
        "print(json.dumps(list(B.objects.values('miner_hotkey', 'reason', 'until'))))"
    )
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", code],
        env=grid.env("validator"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_reported_miner_is_blacklisted_only_on_evidence_that_verifies(grid: LocalGrid, tmp_path: Path) -> None:
    miner = grid.keys["miner"].hotkey
    with Client(grid.facilitator_url, tmp_path / "client.key") as client:
        job = client.create_job(streaming())
        job.wait_for_streaming(timeout=60)
        with job.stream_client() as stream:
            for i in range(3):
                assert stream.post("/echo", content=f"request {i}".encode()).content == f"request {i}".encode()
            evidence = list(stream.evidence)
        assert len(evidence) == 3
        # Tampered evidence: refused with its reason, nothing stored, nobody blacklisted.
        tampered = evidence[0].model_copy(
            update={"seal": evidence[0].seal.model_copy(update={"reply_digest": "00" * 32})}
        )
        with pytest.raises(ApiError) as refused:
            client.report_malicious(job, [tampered, *evidence[1:]], "tampered")
        assert (refused.value.status, refused.value.code) == (422, "bad_evidence")

        # Another client cannot report this job, even with its real evidence.
        with Client(grid.facilitator_url, tmp_path / "other.key") as other, pytest.raises(NotFoundError):
            other.report_malicious(job.job_id, evidence, "not my job")
        assert blacklist(grid) == []

        # The owner's report with the job's real signed replies: the validator blacklists the miner.
        report = client.report_malicious(job, evidence, "the replies are wrong")
        assert report.status == "pending"
        report.wait(timeout=60)
        assert (report.accepted, report.reason, report.miner_hotkey) == (True, "blacklisted", miner)
        assert report.blacklisted_until is not None
        [entry] = blacklist(grid)
        assert entry["miner_hotkey"] == miner
        assert entry["until"] == pytest.approx(report.blacklisted_until)
        assert report.report_id in entry["reason"]

        # Reported while it still served; it ends as usual.
        job.terminate()
        client.wait(job, timeout=60)
        assert job.status == "completed", job.failure

        # The only miner is blacklisted: the next job finds no miner to take it.
        after = client.create_job(JobSpec(command=["echo", "hi"]))
        client.wait(after, timeout=60)
        assert after.status == "rejected", after.failure
