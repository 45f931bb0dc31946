"""Receipts: what a validator and a miner both sign about one job attempt (DESIGN.md §8).

Three kinds per attempt: ``started`` (the validator offered the job, the miner took it into
reservation), ``accepted`` (the miner accepted it), ``finished`` (how it ended, with the digest
of its outputs). The validator signs first and sends the receipt; the miner countersigns and
returns it; both keep it. A receipt verifies only with both signatures, each over exactly the
same :class:`ReceiptPayload`, so neither side can forge one alone.

Miners serve their receipts in pages signed with their hotkey (:class:`ReceiptPage`); any
validator can fetch and verify them, which is how a miner's claim to be busy is checked and
how scores are counted from work really done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from protocol.errors import SignatureError
from protocol.keys import Keypair, domain_message, verify_payload, verify_raw

__all__ = [
    "PAGE_PURPOSE",
    "RECEIPT_PURPOSE",
    "Receipt",
    "ReceiptKind",
    "ReceiptPage",
    "ReceiptPayload",
    "countersign",
    "outputs_digest",
    "sign_page",
    "sign_receipt",
    "verify_page",
    "verify_receipt",
]

RECEIPT_PURPOSE = "receipt"
PAGE_PURPOSE = "receipt-page"
_HOTKEY = Field(pattern=r"^[0-9a-f]{64}$")


class ReceiptKind(StrEnum):
    STARTED = "started"
    ACCEPTED = "accepted"
    FINISHED = "finished"


class ReceiptPayload(BaseModel):
    """What both parties sign. ``status``, ``duration_s`` and ``outputs_digest`` are for ``finished``.

    ``gpus``: the UUIDs of the GPUs the miner bound the attempt's executor to (its ``job.accepted``
    says them); left out when none, so a CPU job's receipt is signed over the same bytes as before.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: ReceiptKind
    job_id: str = Field(min_length=1, max_length=64)
    attempt: int = Field(ge=1, le=2**31 - 1)  # stored in an integer column
    validator_hotkey: str = _HOTKEY
    miner_hotkey: str = _HOTKEY
    executor_class: str = Field(min_length=1, max_length=64)
    at: float = Field(gt=0)
    status: str | None = Field(None, max_length=32)
    duration_s: float | None = Field(None, ge=0)
    outputs_digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    gpus: tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] = Field((), max_length=64)

    @model_serializer(mode="wrap")
    def _omit_no_gpus(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if not self.gpus:
            data.pop("gpus", None)
        return data

    @property
    def key(self) -> tuple[str, int, str]:
        """What makes a receipt unique: one of each kind per job attempt."""
        return (self.job_id, self.attempt, self.kind.value)


class Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    payload: ReceiptPayload
    validator_signature: str = Field(pattern=r"^[0-9a-f]{128}$")
    miner_signature: str | None = Field(None, pattern=r"^[0-9a-f]{128}$")

    @property
    def complete(self) -> bool:
        return self.miner_signature is not None


def _signed_fields(payload: ReceiptPayload) -> dict:
    return payload.model_dump(mode="json")


def sign_receipt(validator: Keypair, payload: ReceiptPayload) -> Receipt:
    """The validator's half of a receipt."""
    if payload.validator_hotkey != validator.hotkey:
        raise ValueError("a receipt is signed by the validator it names")
    return Receipt(payload=payload, validator_signature=validator.sign(RECEIPT_PURPOSE, _signed_fields(payload)))


def countersign(miner: Keypair, receipt: Receipt) -> Receipt:
    """The miner's half, after checking the validator's.

    Raises:
        SignatureError: the receipt is not for this miner, or the validator's signature is wrong.
    """
    if receipt.payload.miner_hotkey != miner.hotkey:
        raise SignatureError("the receipt names another miner", code="wrong_miner")
    verify_payload(
        receipt.payload.validator_hotkey, RECEIPT_PURPOSE, _signed_fields(receipt.payload), receipt.validator_signature
    )
    signature = miner.sign(RECEIPT_PURPOSE, _signed_fields(receipt.payload))
    return receipt.model_copy(update={"miner_signature": signature})


def verify_receipt(receipt: Receipt, *, miner_hotkey: str | None = None, validator_hotkey: str | None = None) -> None:
    """Both signatures hold (and the parties are the expected ones, when given).

    Raises:
        SignatureError: a signature is missing or wrong, or the receipt names other parties.
    """
    payload = receipt.payload
    if miner_hotkey is not None and payload.miner_hotkey != miner_hotkey:
        raise SignatureError("the receipt names another miner", code="wrong_miner")
    if validator_hotkey is not None and payload.validator_hotkey != validator_hotkey:
        raise SignatureError("the receipt names another validator", code="wrong_validator")
    if receipt.miner_signature is None:
        raise SignatureError("the receipt has no miner signature", code="incomplete_receipt")
    message = domain_message(RECEIPT_PURPOSE, _signed_fields(payload))  # both signed the same bytes
    try:
        verify_raw(payload.validator_hotkey, message, receipt.validator_signature)
    except SignatureError as exc:
        raise SignatureError(f"validator signature: {exc.message}", code="bad_validator_signature") from exc
    try:
        verify_raw(payload.miner_hotkey, message, receipt.miner_signature)
    except SignatureError as exc:
        raise SignatureError(f"miner signature: {exc.message}", code="bad_miner_signature") from exc


def outputs_digest(digests: Iterable[tuple[str, str]]) -> str:
    """One digest for a job's outputs: sha256 over its sorted ``(path, sha256)`` pairs.

    Two runs of the same job that produced the same files have the same outputs digest; it is
    what finished receipts carry and what cross-validation compares.
    """
    lines = sorted(f"{path}\0{sha}" for path, sha in digests)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class ReceiptPage(BaseModel):
    """One page of a miner's receipts, in the order it stored them; signed by the miner.

    ``cursor`` is what was asked for (receipts stored after it); ``next_cursor`` is the cursor of
    the page's last receipt, what to ask for next (``None`` when nothing is stored after
    ``cursor``). A page shorter than the limit asked for means "that is all, for now".
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    miner_hotkey: str = _HOTKEY
    cursor: int = Field(ge=0)
    next_cursor: int | None = Field(None, ge=0)
    receipts: list[Receipt] = Field(max_length=10_000)
    issued_at: float
    signature: str = Field("", pattern=r"^([0-9a-f]{128})?$")

    def signed_fields(self) -> dict:
        return self.model_dump(mode="json", exclude={"signature"})


def sign_page(miner: Keypair, page: ReceiptPage) -> ReceiptPage:
    if page.miner_hotkey != miner.hotkey:
        raise ValueError("a page is signed by the miner it names")
    return page.model_copy(update={"signature": miner.sign(PAGE_PURPOSE, page.signed_fields())})


def verify_page(page: ReceiptPage, miner_hotkey: str) -> None:
    """The page is the miner's; each receipt in it must still be checked with :func:`verify_receipt`.

    Raises:
        SignatureError: the page is another miner's or its signature is wrong.
    """
    if page.miner_hotkey != miner_hotkey:
        raise SignatureError("the page is another miner's", code="wrong_miner")
    if not page.signature:
        raise SignatureError("the page is not signed", code="missing_signature")
    verify_payload(miner_hotkey, PAGE_PURPOSE, page.signed_fields(), page.signature)
