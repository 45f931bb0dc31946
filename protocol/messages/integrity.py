"""Receipts, scores and malicious-miner reports on the wire (DESIGN.md §8)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocol.messages.base import Message
from protocol.receipts import Receipt
from protocol.reports import MaliciousReport
from protocol.scores import ScoreSheet

__all__ = ["ReceiptSign", "ReceiptSigned", "ReportMalicious", "ReportOutcome", "Scores"]


class ReceiptSign(Message):
    """Validator → miner: a receipt with the validator's signature; countersign and keep it."""

    type: Literal["receipt.sign"] = "receipt.sign"
    receipt: Receipt


class ReceiptSigned(Message):
    """Miner → validator: the same receipt, countersigned (both keep it)."""

    type: Literal["receipt.signed"] = "receipt.signed"
    receipt: Receipt


class Scores(Message):
    """Validator → facilitator: its latest signed score sheet."""

    type: Literal["scores"] = "scores"
    sheet: ScoreSheet


class ReportMalicious(Message):
    """Facilitator → validator: a client's report (already checked by the facilitator)."""

    type: Literal["report.malicious"] = "report.malicious"
    report_id: str = Field(min_length=1, max_length=64)
    report: MaliciousReport


class ReportOutcome(Message):
    """Validator → facilitator: what the validator made of a report."""

    type: Literal["report.outcome"] = "report.outcome"
    report_id: str = Field(min_length=1, max_length=64)
    accepted: bool
    reason: str = Field(max_length=64)
    message: str = Field("", max_length=1000)
    miner_hotkey: str | None = None
    blacklisted_until: float | None = None
