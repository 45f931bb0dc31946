"""Malicious-miner reports (DESIGN.md §8): what a client sends and what the validator made of it.

A report carries replies the job sealed (:class:`~protocol.streaming.Evidence`, as a stream
client collects them) and, where the client has one, the differing reply of a trusted miner to
the same request. The client signs it with its hotkey; the facilitator checks it and forwards
it to the job's validator, which blacklists the miner if the evidence holds::

    report = client.report_malicious(job, stream.evidence, "answered HELLO to hello")
    report.wait(timeout=30)
    if report.accepted:
        print("blacklisted until", report.blacklisted_until)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from facilitator_sdk.errors import GridError
from protocol.keys import Keypair
from protocol.reports import MaliciousReport, sign_report
from protocol.streaming import Evidence

if TYPE_CHECKING:
    from facilitator_sdk.async_client import AsyncClient
    from facilitator_sdk.client import Client
    from facilitator_sdk.job import Job

__all__ = ["AsyncReport", "EvidenceLike", "Report", "ReportTimeoutError", "build_report"]

POLL_S = 0.2

EvidenceLike = Any  # an Evidence, something with ``.evidence`` (a sealed reply), or an iterable of those


class ReportTimeoutError(GridError, TimeoutError):
    def __init__(self, report: Report, timeout: float) -> None:
        super().__init__(f"report {report.report_id} still {report.status} after {timeout:g}s")
        self.report = report


def _evidence_list(evidence: EvidenceLike) -> list[Evidence]:
    items = [evidence] if isinstance(evidence, Evidence) or hasattr(evidence, "evidence") else evidence
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes, dict)):
        raise TypeError(f"evidence must be Evidence or a list of Evidence, not {type(evidence).__name__}")
    found = []
    for item in items:
        item = getattr(item, "evidence", item)
        if not isinstance(item, Evidence):
            raise TypeError(f"evidence must be Evidence (a verified reply), not {type(item).__name__}")
        found.append(item)
    if not found:
        raise ValueError("a report needs at least one piece of evidence")
    return found


def build_report(
    keypair: Keypair,
    job: Job | str,
    evidence: EvidenceLike,
    details: str = "",
    trusted_evidence: Evidence | None = None,
) -> MaliciousReport:
    """The report of ``job``'s miner, signed by ``keypair`` (the hotkey that owns the job).

    Raises:
        TypeError, ValueError: no evidence, or something else than verified replies.
    """
    job_id = job if isinstance(job, str) else job.job_id
    if trusted_evidence is not None and not isinstance(trusted_evidence, Evidence):
        trusted_evidence = getattr(trusted_evidence, "evidence", trusted_evidence)
        if not isinstance(trusted_evidence, Evidence):
            raise TypeError("trusted_evidence must be Evidence (the trusted miner's verified reply)")
    report = MaliciousReport(
        job_id=job_id,
        client_hotkey=keypair.hotkey,
        evidence=_evidence_list(evidence),
        trusted_evidence=trusted_evidence,
        details=details,
        at=time.time(),
    )
    return sign_report(keypair, report)


class Report:
    """A report as the facilitator holds it; ``status`` is ``pending`` until the validator decides.

    ``accepted`` is ``None`` while pending; then ``reason`` and ``message`` say why, and an
    accepted report names the ``miner_hotkey`` and when its blacklisting ends (``blacklisted_until``,
    a Unix time).
    """

    def __init__(self, client: Client | AsyncClient, data: dict[str, Any]) -> None:
        self._client = client
        self._update(data)

    def _update(self, data: dict[str, Any]) -> None:
        self.report_id: str = data["report_id"]
        self.job_id: str | None = data.get("job_id")
        self.status: str = data["status"]
        self.reason: str | None = data.get("reason")
        self.message: str | None = data.get("message")
        self.miner_hotkey: str | None = data.get("miner_hotkey")
        self.blacklisted_until: float | None = data.get("blacklisted_until")

    def __repr__(self) -> str:
        return f"<Report {self.report_id} [{self.status}]>"

    @property
    def done(self) -> bool:
        return self.status != "pending"

    @property
    def accepted(self) -> bool | None:
        return None if not self.done else self.status == "accepted"

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    def _expired(self, deadline: float | None, timeout: float | None) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise ReportTimeoutError(self, float(timeout or 0))

    def refresh(self) -> Report:
        self._update(self._client.get_report(self.report_id)._data())  # type: ignore[union-attr]
        return self

    def _data(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The report as the API answers it (``report_id``, ``job_id``, ``status``, ``reason``, …)."""
        return self._data()

    def wait(self, timeout: float | None = None) -> Report:
        """Poll until the validator decided; raise :class:`ReportTimeoutError` after ``timeout`` s."""
        deadline = self._deadline(timeout)
        while not self.done:
            self._expired(deadline, timeout)
            time.sleep(POLL_S)
            self.refresh()
        return self


class AsyncReport(Report):
    async def refresh(self) -> AsyncReport:  # type: ignore[override]
        fresh = await self._client.get_report(self.report_id)  # type: ignore[misc]
        self._update(fresh._data())
        return self

    async def wait(self, timeout: float | None = None) -> AsyncReport:  # type: ignore[override]
        deadline = self._deadline(timeout)
        while not self.done:
            self._expired(deadline, timeout)
            await asyncio.sleep(POLL_S)
            await self.refresh()
        return self


_FIELDS = ("report_id", "job_id", "status", "reason", "message", "miner_hotkey", "blacklisted_until")
