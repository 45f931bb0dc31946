"""Receipts, scores and malicious-miner reports on the wire (DESIGN.md §8)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocol.messages.base import Message
from protocol.receipts import Receipt
from protocol.reports import MaliciousReport
from protocol.scores import ScoreSheet

__all__ = ["MAX_RECEIPTS_PER_FRAME", "ReceiptSign", "ReceiptSigned", "ReportMalicious", "ReportOutcome", "Scores"]


MAX_RECEIPTS_PER_FRAME = 4  # an attempt's started and accepted receipts go together


class ReceiptSign(Message):
    """Validator → miner: receipts with the validator's signature (``receipt``, then ``more``:
    those made at the same moment, like an attempt's ``started`` and ``accepted``); countersign
    and keep each."""

    type: Literal["receipt.sign"] = "receipt.sign"
    receipt: Receipt
    more: list[Receipt] = Field(default_factory=list, max_length=MAX_RECEIPTS_PER_FRAME - 1)

    @property
    def receipts(self) -> list[Receipt]:
        return [self.receipt, *self.more]


class ReceiptSigned(Message):
    """Miner → validator: the same receipts, countersigned (both keep them); those refused are
    not here, an ``error`` frame says why each was."""

    type: Literal["receipt.signed"] = "receipt.signed"
    receipt: Receipt
    more: list[Receipt] = Field(default_factory=list, max_length=MAX_RECEIPTS_PER_FRAME - 1)

    @property
    def receipts(self) -> list[Receipt]:
        return [self.receipt, *self.more]


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
