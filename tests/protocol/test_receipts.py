"""Two-party receipts, their outputs digest and signed receipt pages (protocol/receipts.py)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.receipts import (
    PAGE_PURPOSE,
    RECEIPT_PURPOSE,
    Receipt,
    ReceiptKind,
    ReceiptPage,
    ReceiptPayload,
    countersign,
    outputs_digest,
    sign_page,
    sign_receipt,
    verify_page,
    verify_receipt,
)

VALIDATOR, MINER, OTHER = Keypair.generate(), Keypair.generate(), Keypair.generate()
DIGEST = outputs_digest([("out/a.txt", "aa" * 32), ("out/b.bin", "bb" * 32)])


def payload(kind: ReceiptKind = ReceiptKind.FINISHED, **changes: Any) -> ReceiptPayload:
    fields: dict[str, Any] = {
        "kind": kind,
        "job_id": "job-1",
        "attempt": 1,
        "validator_hotkey": VALIDATOR.hotkey,
        "miner_hotkey": MINER.hotkey,
        "executor_class": "cpu.small",
        "at": 1_700_000_000.25,
    }
    if kind is ReceiptKind.FINISHED:
        fields.update(status="completed", duration_s=12.5, outputs_digest=DIGEST)
    fields.update(changes)
    return ReceiptPayload(**fields)


def complete_receipt(kind: ReceiptKind = ReceiptKind.FINISHED, **changes: Any) -> Receipt:
    return countersign(MINER, sign_receipt(VALIDATOR, payload(kind, **changes)))


def code_of(receipt: Receipt, **expected: str) -> str:
    with pytest.raises(SignatureError) as info:
        verify_receipt(receipt, **expected)
    return info.value.code


# -- the round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ReceiptKind))
def test_sign_countersign_verify_round_trip_for_every_kind(kind: ReceiptKind) -> None:
    half = sign_receipt(VALIDATOR, payload(kind))
    assert not half.complete and half.miner_signature is None
    receipt = countersign(MINER, half)
    assert receipt.complete
    assert receipt.payload == half.payload
    assert receipt.validator_signature == half.validator_signature
    verify_receipt(receipt)
    verify_receipt(receipt, miner_hotkey=MINER.hotkey, validator_hotkey=VALIDATOR.hotkey)


def test_the_payload_key_is_one_receipt_of_each_kind_per_attempt() -> None:
    keys = {payload(kind).key for kind in ReceiptKind}
    assert keys == {("job-1", 1, "started"), ("job-1", 1, "accepted"), ("job-1", 1, "finished")}
    assert payload(attempt=2).key == ("job-1", 2, "finished")


def test_both_halves_sign_the_same_payload_under_the_receipt_purpose() -> None:
    receipt = complete_receipt()
    fields = receipt.payload.model_dump(mode="json")
    assert receipt.validator_signature == VALIDATOR.sign(RECEIPT_PURPOSE, fields)
    assert receipt.miner_signature == MINER.sign(RECEIPT_PURPOSE, fields)


@pytest.mark.parametrize("kind", list(ReceiptKind))
def test_a_receipt_survives_json_and_still_verifies(kind: ReceiptKind) -> None:
    receipt = complete_receipt(kind)
    again = Receipt.model_validate_json(receipt.model_dump_json())
    assert again == receipt
    verify_receipt(again, miner_hotkey=MINER.hotkey, validator_hotkey=VALIDATOR.hotkey)
    # Key order and whitespace on the wire do not matter: signatures cover canonical JSON.
    data = json.loads(receipt.model_dump_json())
    data["payload"] = dict(reversed(list(data["payload"].items())))
    verify_receipt(Receipt.model_validate_json(json.dumps(data, indent=2)))


def test_an_integral_time_survives_json_and_still_verifies() -> None:
    receipt = complete_receipt(at=1_700_000_000, duration_s=3)
    verify_receipt(Receipt.model_validate_json(receipt.model_dump_json()))
    verify_receipt(Receipt.model_validate(json.loads(receipt.model_dump_json())))


# -- signing and countersigning refuse the wrong party ----------------------------------------------


def test_the_validator_signs_only_a_receipt_that_names_it() -> None:
    with pytest.raises(ValueError, match="validator it names"):
        sign_receipt(OTHER, payload())


def test_a_miner_cannot_sign_the_validators_half() -> None:
    """The miner refuses to stand in for the validator named in the payload."""
    with pytest.raises(ValueError, match="validator it names"):
        sign_receipt(MINER, payload())


def test_countersign_refuses_a_receipt_naming_another_miner() -> None:
    half = sign_receipt(VALIDATOR, payload())
    with pytest.raises(SignatureError) as info:
        countersign(OTHER, half)
    assert info.value.code == "wrong_miner"


def test_countersign_refuses_a_forged_validator_signature() -> None:
    half = sign_receipt(VALIDATOR, payload())
    forged = half.model_copy(
        update={"validator_signature": OTHER.sign(RECEIPT_PURPOSE, half.payload.model_dump(mode="json"))}
    )
    with pytest.raises(SignatureError):
        countersign(MINER, forged)
    with pytest.raises(SignatureError):
        countersign(MINER, half.model_copy(update={"validator_signature": "00" * 64}))


def test_countersign_refuses_a_validator_signature_over_another_payload() -> None:
    half = sign_receipt(VALIDATOR, payload())
    altered = half.model_copy(update={"payload": payload(status="failed")})
    with pytest.raises(SignatureError):
        countersign(MINER, altered)


def test_countersign_refuses_a_receipt_the_miner_signed_as_validator() -> None:
    fields = payload().model_dump(mode="json")
    self_made = Receipt(payload=payload(), validator_signature=MINER.sign(RECEIPT_PURPOSE, fields))
    with pytest.raises(SignatureError):
        countersign(MINER, self_made)


def test_countersign_refuses_a_validator_signature_made_for_another_purpose() -> None:
    fields = payload().model_dump(mode="json")
    half = Receipt(payload=payload(), validator_signature=VALIDATOR.sign(PAGE_PURPOSE, fields))
    with pytest.raises(SignatureError):
        countersign(MINER, half)


# -- verify_receipt refuses ------------------------------------------------------------------------


def test_a_receipt_without_the_miner_signature_is_incomplete() -> None:
    assert code_of(sign_receipt(VALIDATOR, payload())) == "incomplete_receipt"


def test_swapped_signatures_are_refused() -> None:
    receipt = complete_receipt()
    swapped = receipt.model_copy(
        update={"validator_signature": receipt.miner_signature, "miner_signature": receipt.validator_signature}
    )
    assert code_of(swapped) == "bad_validator_signature"


def test_a_forged_validator_signature_is_refused() -> None:
    receipt = complete_receipt()
    fields = receipt.payload.model_dump(mode="json")
    for forged in ("00" * 64, OTHER.sign(RECEIPT_PURPOSE, fields), receipt.miner_signature):
        assert code_of(receipt.model_copy(update={"validator_signature": forged})) == "bad_validator_signature"


def test_a_forged_miner_signature_is_refused() -> None:
    receipt = complete_receipt()
    fields = receipt.payload.model_dump(mode="json")
    for forged in ("00" * 64, OTHER.sign(RECEIPT_PURPOSE, fields), receipt.validator_signature):
        assert code_of(receipt.model_copy(update={"miner_signature": forged})) == "bad_miner_signature"


def test_a_miner_signature_from_another_receipt_is_refused() -> None:
    receipt = complete_receipt()
    other = complete_receipt(job_id="job-2")
    assert code_of(receipt.model_copy(update={"miner_signature": other.miner_signature})) == "bad_miner_signature"


def test_a_receipt_signed_twice_by_the_miner_is_refused() -> None:
    """The miner alone cannot make a receipt: its signature in the validator's place does not verify."""
    fields = payload().model_dump(mode="json")
    signature = MINER.sign(RECEIPT_PURPOSE, fields)
    receipt = Receipt(payload=payload(), validator_signature=signature, miner_signature=signature)
    assert code_of(receipt) == "bad_validator_signature"


def test_a_receipt_signed_twice_by_the_validator_is_refused() -> None:
    """The validator alone cannot make a receipt either."""
    fields = payload().model_dump(mode="json")
    signature = VALIDATOR.sign(RECEIPT_PURPOSE, fields)
    receipt = Receipt(payload=payload(), validator_signature=signature, miner_signature=signature)
    assert code_of(receipt) == "bad_miner_signature"


def test_signatures_made_for_another_purpose_are_refused() -> None:
    fields = payload().model_dump(mode="json")
    receipt = Receipt(
        payload=payload(),
        validator_signature=VALIDATOR.sign(PAGE_PURPOSE, fields),
        miner_signature=MINER.sign(PAGE_PURPOSE, fields),
    )
    assert code_of(receipt) == "bad_validator_signature"
    fixed = receipt.model_copy(update={"validator_signature": VALIDATOR.sign(RECEIPT_PURPOSE, fields)})
    assert code_of(fixed) == "bad_miner_signature"


ALTERATIONS: dict[str, Any] = {
    "kind": ReceiptKind.ACCEPTED,
    "job_id": "job-2",
    "attempt": 2,
    "validator_hotkey": OTHER.hotkey,
    "miner_hotkey": OTHER.hotkey,
    "executor_class": "gpu.large",
    "at": 1_700_000_000.5,
    "status": "failed",
    "duration_s": 99.0,
    "outputs_digest": "cc" * 32,
    "gpus": ("GPU-other",),
}


def test_the_alterations_cover_every_payload_field() -> None:
    assert set(ALTERATIONS) == set(ReceiptPayload.model_fields)


@pytest.mark.parametrize("field", sorted(ALTERATIONS))
def test_any_payload_field_altered_after_signing_is_refused(field: str) -> None:
    receipt = complete_receipt()
    assert getattr(receipt.payload, field) != ALTERATIONS[field]
    altered = receipt.model_copy(update={"payload": receipt.payload.model_copy(update={field: ALTERATIONS[field]})})
    assert code_of(altered) == "bad_validator_signature"


@pytest.mark.parametrize("field", sorted(set(ALTERATIONS) - {"validator_hotkey", "miner_hotkey"}))
def test_the_validator_cannot_alter_a_countersigned_receipt(field: str) -> None:
    """Re-signing its own half over an altered payload still leaves the miner's signature wrong."""
    receipt = complete_receipt()
    altered_payload = receipt.payload.model_copy(update={field: ALTERATIONS[field]})
    resigned = receipt.model_copy(
        update={
            "payload": altered_payload,
            "validator_signature": sign_receipt(VALIDATOR, altered_payload).validator_signature,
        }
    )
    assert code_of(resigned) == "bad_miner_signature"


@pytest.mark.parametrize("field", ["status", "duration_s", "outputs_digest"])
def test_a_finished_field_added_to_a_started_receipt_is_refused(field: str) -> None:
    receipt = complete_receipt(ReceiptKind.STARTED)
    assert getattr(receipt.payload, field) is None
    altered = receipt.model_copy(update={"payload": receipt.payload.model_copy(update={field: ALTERATIONS[field]})})
    assert code_of(altered) == "bad_validator_signature"


@pytest.mark.parametrize("field", ["status", "duration_s", "outputs_digest"])
def test_a_finished_field_removed_after_signing_is_refused(field: str) -> None:
    receipt = complete_receipt()
    altered = receipt.model_copy(update={"payload": receipt.payload.model_copy(update={field: None})})
    assert code_of(altered) == "bad_validator_signature"


def test_expected_parties_must_match() -> None:
    receipt = complete_receipt()
    assert code_of(receipt, miner_hotkey=OTHER.hotkey) == "wrong_miner"
    assert code_of(receipt, validator_hotkey=OTHER.hotkey) == "wrong_validator"
    assert code_of(receipt, miner_hotkey=VALIDATOR.hotkey, validator_hotkey=MINER.hotkey) == "wrong_miner"
    verify_receipt(receipt, miner_hotkey=MINER.hotkey)
    verify_receipt(receipt, validator_hotkey=VALIDATOR.hotkey)


def test_the_parties_are_checked_before_the_signatures() -> None:
    half = sign_receipt(VALIDATOR, payload())
    assert code_of(half, miner_hotkey=OTHER.hotkey) == "wrong_miner"
    assert code_of(half, validator_hotkey=OTHER.hotkey) == "wrong_validator"


def test_a_receipt_between_other_parties_verifies_but_not_as_ours() -> None:
    """A receipt OTHER (as validator) and MINER made is valid, but not one VALIDATOR issued."""
    theirs = countersign(MINER, sign_receipt(OTHER, payload(validator_hotkey=OTHER.hotkey)))
    verify_receipt(theirs, miner_hotkey=MINER.hotkey)
    assert code_of(theirs, validator_hotkey=VALIDATOR.hotkey) == "wrong_validator"


NON_FINITE = [
    pytest.param({"at": float("inf")}, id="at=inf"),
    pytest.param({"duration_s": float("inf")}, id="duration_s=inf"),
]


@pytest.mark.parametrize("change", NON_FINITE)
def test_a_receipt_with_a_non_finite_number_is_refused_as_a_model_or_signature(change: dict[str, float]) -> None:
    data = json.loads(complete_receipt().model_dump_json())
    data["payload"].update(change)
    try:
        receipt = Receipt.model_validate_json(json.dumps(data))  # json.dumps writes Infinity
    except ValidationError:
        return
    with pytest.raises(SignatureError):
        verify_receipt(receipt)


# -- outputs digest --------------------------------------------------------------------------------


def test_the_outputs_digest_does_not_depend_on_order() -> None:
    pairs = [("a", "11" * 32), ("b/c", "22" * 32), ("d", "33" * 32)]
    assert outputs_digest(pairs) == outputs_digest(reversed(pairs)) == outputs_digest(iter(pairs[1:] + pairs[:1]))
    assert len(outputs_digest(pairs)) == 64


def test_the_outputs_digest_changes_with_any_path_or_digest() -> None:
    pairs = [("a", "11" * 32), ("b", "22" * 32)]
    base = outputs_digest(pairs)
    assert outputs_digest([("a", "11" * 32), ("B", "22" * 32)]) != base
    assert outputs_digest([("a", "11" * 32), ("b", "23" * 32)]) != base
    assert outputs_digest([("a", "22" * 32), ("b", "11" * 32)]) != base, "digests are bound to their paths"
    assert outputs_digest(pairs[:1]) != base
    assert outputs_digest([*pairs, ("c", "33" * 32)]) != base
    assert outputs_digest([*pairs, pairs[0]]) != base


def test_the_outputs_digest_of_nothing_is_the_digest_of_empty_input() -> None:
    assert outputs_digest([]) == hashlib.sha256(b"").hexdigest()


def test_the_outputs_digest_fits_a_finished_receipt() -> None:
    verify_receipt(complete_receipt(outputs_digest=outputs_digest([("x", "00" * 32)])))


# -- pages -----------------------------------------------------------------------------------------


def page(**changes: Any) -> ReceiptPage:
    fields: dict[str, Any] = {
        "miner_hotkey": MINER.hotkey,
        "cursor": 10,
        "next_cursor": 13,
        "receipts": [complete_receipt(kind) for kind in ReceiptKind],
        "issued_at": 1_700_000_100.0,
    }
    fields.update(changes)
    return ReceiptPage(**fields)


def page_code(page_: ReceiptPage, miner_hotkey: str = MINER.hotkey) -> str:
    with pytest.raises(SignatureError) as info:
        verify_page(page_, miner_hotkey)
    return info.value.code


def test_a_signed_page_verifies_and_so_do_its_receipts() -> None:
    signed = sign_page(MINER, page())
    assert signed.signature and signed.signature == MINER.sign(PAGE_PURPOSE, signed.signed_fields())
    assert "signature" not in signed.signed_fields()
    verify_page(signed, MINER.hotkey)
    for receipt in signed.receipts:
        verify_receipt(receipt, miner_hotkey=MINER.hotkey)


def test_the_last_page_and_an_empty_page_verify() -> None:
    verify_page(sign_page(MINER, page(next_cursor=None)), MINER.hotkey)
    verify_page(sign_page(MINER, page(receipts=[], cursor=0, next_cursor=None)), MINER.hotkey)


def test_a_page_survives_json_and_still_verifies() -> None:
    signed = sign_page(MINER, page())
    again = ReceiptPage.model_validate_json(signed.model_dump_json())
    assert again == signed
    verify_page(again, MINER.hotkey)
    for receipt in again.receipts:
        verify_receipt(receipt)


def test_the_miner_signs_only_a_page_that_names_it() -> None:
    with pytest.raises(ValueError, match="miner it names"):
        sign_page(OTHER, page())


def test_an_unsigned_page_is_refused() -> None:
    assert page_code(page()) == "missing_signature"


def test_a_page_is_checked_against_the_expected_miner() -> None:
    signed = sign_page(MINER, page())
    assert page_code(signed, OTHER.hotkey) == "wrong_miner"


def test_a_page_relabelled_for_another_miner_is_refused() -> None:
    signed = sign_page(MINER, page())
    relabelled = signed.model_copy(update={"miner_hotkey": OTHER.hotkey})
    assert page_code(relabelled, OTHER.hotkey) == "bad_signature"


def test_a_page_signed_by_another_key_is_refused() -> None:
    unsigned = page()
    forged = unsigned.model_copy(update={"signature": OTHER.sign(PAGE_PURPOSE, unsigned.signed_fields())})
    assert page_code(forged) == "bad_signature"
    as_receipt = unsigned.model_copy(update={"signature": MINER.sign(RECEIPT_PURPOSE, unsigned.signed_fields())})
    assert page_code(as_receipt) == "bad_signature"


def _page_alterations() -> list[Any]:
    extra = complete_receipt(job_id="job-9")
    receipts = page().receipts
    return [
        pytest.param({"receipts": receipts[1:]}, id="receipt-removed"),
        pytest.param({"receipts": [*receipts, extra]}, id="receipt-added"),
        pytest.param({"receipts": list(reversed(receipts))}, id="receipts-reordered"),
        pytest.param({"receipts": [extra, *receipts[1:]]}, id="receipt-replaced"),
        pytest.param(
            {"receipts": [receipts[0].model_copy(update={"miner_signature": None}), *receipts[1:]]},
            id="receipt-signature-stripped",
        ),
        pytest.param({"cursor": 11}, id="cursor"),
        pytest.param({"next_cursor": 14}, id="next-cursor"),
        pytest.param({"next_cursor": None}, id="next-cursor-dropped"),
        pytest.param({"issued_at": 1_700_000_101.0}, id="issued-at"),
    ]


@pytest.mark.parametrize("change", _page_alterations())
def test_a_page_altered_after_signing_is_refused(change: dict[str, Any]) -> None:
    signed = sign_page(MINER, page())
    assert page_code(signed.model_copy(update=change)) == "bad_signature"


def test_a_signed_page_may_hold_a_receipt_that_does_not_verify() -> None:
    """The page signature vouches for the list only: each receipt is checked on its own."""
    incomplete = sign_receipt(VALIDATOR, payload(job_id="job-3"))
    signed = sign_page(MINER, page(receipts=[*page().receipts, incomplete]))
    verify_page(signed, MINER.hotkey)
    assert code_of(signed.receipts[-1]) == "incomplete_receipt"


# -- model validation ------------------------------------------------------------------------------

BAD_HOTKEYS = ["", "ab" * 31, "ab" * 33, "AB" * 32, "zz" * 32, " " + "ab" * 31 + "a"]
BAD_SIGNATURES = ["", "ab" * 63, "ab" * 65, "AB" * 64, "zz" * 64]


@pytest.mark.parametrize("field", ["validator_hotkey", "miner_hotkey"])
@pytest.mark.parametrize("value", BAD_HOTKEYS)
def test_a_payload_refuses_a_malformed_hotkey(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        payload(**{field: value})


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": ""},
        {"job_id": "j" * 65},
        {"attempt": 0},
        {"attempt": -1},
        {"executor_class": ""},
        {"executor_class": "c" * 65},
        {"at": 0},
        {"at": -1.0},
        {"at": float("nan")},
        {"status": "s" * 33},
        {"duration_s": -0.1},
        {"outputs_digest": "CC" * 32},
        {"outputs_digest": "cc" * 31},
        {"kind": "cancelled"},
        {"surprise": 1},
    ],
)
def test_a_payload_refuses_malformed_fields(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        payload(**change)


def test_the_limits_themselves_are_accepted() -> None:
    verify_receipt(complete_receipt(job_id="j" * 64, executor_class="c" * 64, status="s" * 32, duration_s=0.0))


@pytest.mark.parametrize("value", BAD_SIGNATURES)
def test_a_receipt_refuses_a_malformed_validator_signature(value: str) -> None:
    with pytest.raises(ValidationError):
        Receipt(payload=payload(), validator_signature=value)


@pytest.mark.parametrize("value", BAD_SIGNATURES)
def test_a_receipt_refuses_a_malformed_miner_signature(value: str) -> None:
    with pytest.raises(ValidationError):
        Receipt(payload=payload(), validator_signature="ab" * 64, miner_signature=value)


def test_a_receipt_refuses_extra_fields_and_is_frozen() -> None:
    receipt = complete_receipt()
    data = receipt.model_dump(mode="json")
    with pytest.raises(ValidationError):
        Receipt.model_validate({**data, "note": "hi"})
    with pytest.raises(ValidationError):
        receipt.miner_signature = None  # type: ignore[misc]
    with pytest.raises(ValidationError):
        receipt.payload.attempt = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "change",
    [
        {"miner_hotkey": "AB" * 32},
        {"miner_hotkey": "ab" * 31},
        {"cursor": -1},
        {"next_cursor": -1},
        {"signature": "ab" * 63},
        {"signature": "AB" * 64},
        {"extra": True},
    ],
)
def test_a_page_refuses_malformed_fields(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        page(**change)


def test_a_page_holds_at_most_ten_thousand_receipts() -> None:
    receipt = complete_receipt()
    page(receipts=[receipt] * 10_000)
    with pytest.raises(ValidationError):
        page(receipts=[receipt] * 10_001)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_page_with_a_non_finite_time_is_refused_as_a_model_or_signature(value: float) -> None:
    data = json.loads(sign_page(MINER, page()).model_dump_json())
    data["issued_at"] = value
    try:
        received = ReceiptPage.model_validate_json(json.dumps(data))  # json.dumps writes NaN / Infinity
    except ValidationError:
        return
    with pytest.raises(SignatureError):
        verify_page(received, MINER.hotkey)
