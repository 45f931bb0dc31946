"""Judging a client's malicious-miner report (DESIGN.md §8).

The facilitator checked the client's signature and the evidence already; the validator checks
again (it trusts no hop) and then checks what only it knows: the job is one it drove for that
client, the evidence was sealed by the job key the miner vouched for in the readiness this
validator relayed, and the requests were signed with the job's client streaming key. Only then
is the miner blacklisted; a report that fails any check is refused with a reason and changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import SignatureError
from protocol.messages import StreamingEndpoint
from protocol.reports import MaliciousReport, check_report
from protocol.streaming import Evidence

__all__ = ["Verdict", "judge_report"]


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str
    message: str
    miner_hotkey: str | None = None


def _refused(reason: str, message: str) -> Verdict:
    return Verdict(False, reason, message)


def _same_request(a: Evidence, b: Evidence) -> bool:
    keys = ("method", "path", "query", "body_sha256")
    return all(a.request.get(key) == b.request.get(key) for key in keys)


def judge_report(
    report: MaliciousReport,
    *,
    job_client: str | None,
    job_miner: str,
    streaming_key: str | None,
    readiness: StreamingEndpoint | None,
    trusted_miners: frozenset[str] = frozenset(),
) -> Verdict:
    """Args:
    job_client: the client that owns the job (``None``: this validator never drove it).
    job_miner: the miner that served the job's last attempt.
    streaming_key: the client streaming public key of the job's spec.
    readiness: the endpoint this validator vouched for (the miner's signed readiness).
    trusted_miners: hotkeys whose runs may serve as the comparison.
    """
    if job_client is None:
        return _refused("unknown_job", f"this validator did not drive job {report.job_id}")
    if report.client_hotkey != job_client:
        return _refused("not_job_owner", "the reporting client does not own the job")
    try:
        check_report(report)
    except SignatureError as exc:
        return _refused(exc.code or "bad_evidence", exc.message)
    if readiness is None or streaming_key is None:
        return _refused("not_streaming", "the job has no streaming readiness to hold the evidence against")
    for index, evidence in enumerate(report.evidence):
        if evidence.miner_hotkey != job_miner:
            return _refused("wrong_miner", f"evidence {index} is vouched for by another miner than the job's")
        if evidence.readiness != readiness.readiness or evidence.miner_signature != readiness.miner_signature:
            return _refused("wrong_readiness", f"evidence {index} is not under the readiness the miner signed")
        if evidence.client_streaming_key.lower() != streaming_key.lower():
            return _refused("wrong_client_key", f"evidence {index} was not requested with the job's client key")
    trusted = report.trusted_evidence
    if trusted is not None:
        if trusted.miner_hotkey not in trusted_miners:
            return _refused("untrusted_comparison", "the comparison reply is not from a trusted miner")
        same = [evidence for evidence in report.evidence if _same_request(evidence, trusted)]
        if not same:
            return _refused("no_matching_request", "no reported reply answers the same request as the trusted one")
        if all(evidence.seal.reply_digest == trusted.seal.reply_digest for evidence in same):
            return _refused("replies_match", "the trusted miner's reply is the same as the reported one")
    return Verdict(True, "blacklisted", "the evidence verified", job_miner)
