"""Malicious-miner reports (DESIGN.md §8): a client's signed claim, with the job's signed replies.

The client signs the whole :class:`MaliciousReport` with its hotkey (the one that owns the job).
``evidence`` are replies the job sealed (:class:`protocol.streaming.Evidence`), each provable
on its own; ``trusted_evidence`` is, where the client has one, the differing reply of a trusted
miner's run of the same job to the same request. :func:`check_report` is what the facilitator
and the validator both run; the validator also checks that the evidence is about the job it
drove, under the readiness it vouched for.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from protocol.errors import SignatureError
from protocol.keys import Keypair, verify_payload
from protocol.streaming import Evidence, verify_evidence

__all__ = ["REPORT_PURPOSE", "MaliciousReport", "check_report", "sign_report"]

REPORT_PURPOSE = "malicious-report"


class MaliciousReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    job_id: str = Field(min_length=1, max_length=64)
    client_hotkey: str = Field(pattern=r"^[0-9a-f]{64}$")
    evidence: list[Evidence] = Field(min_length=1, max_length=100)
    trusted_evidence: Evidence | None = None
    details: str = Field("", max_length=4000)
    at: float
    signature: str = Field("", pattern=r"^([0-9a-f]{128})?$")

    def signed_fields(self) -> dict:
        return self.model_dump(mode="json", exclude={"signature"})


def sign_report(client: Keypair, report: MaliciousReport) -> MaliciousReport:
    if report.client_hotkey != client.hotkey:
        raise ValueError("a report is signed by the client it names")
    return report.model_copy(update={"signature": client.sign(REPORT_PURPOSE, report.signed_fields())})


def check_report(report: MaliciousReport) -> None:
    """The client signed the report; every piece of evidence is about this job and verifies.

    Raises:
        SignatureError: with a code saying which part does not hold.
    """
    if not report.signature:
        raise SignatureError("the report is not signed", code="missing_signature")
    verify_payload(report.client_hotkey, REPORT_PURPOSE, report.signed_fields(), report.signature)
    for index, evidence in enumerate(report.evidence):
        if evidence.job_id != report.job_id:
            raise SignatureError(f"evidence {index} is about job {evidence.job_id}", code="evidence_other_job")
        try:
            verify_evidence(evidence)
        except SignatureError as exc:
            raise SignatureError(f"evidence {index}: {exc.message}", code="bad_evidence") from exc
    if report.trusted_evidence is not None:
        try:
            verify_evidence(report.trusted_evidence)
        except SignatureError as exc:
            raise SignatureError(f"trusted evidence: {exc.message}", code="bad_trusted_evidence") from exc
