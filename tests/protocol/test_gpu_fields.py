"""Receipts, frames, class specs and job specs that name GPUs (docs/gpu.md): a CPU job's bytes are unchanged."""

from __future__ import annotations

import json

import pytest

from protocol.classes import ClassSpec
from protocol.errors import SignatureError
from protocol.keys import domain_message, verify_raw
from protocol.messages import JobAccepted
from protocol.receipts import RECEIPT_PURPOSE, Receipt, ReceiptKind, verify_receipt
from protocol.spec import JobSpec, ResourceLimits
from tests.protocol.test_receipts import MINER, VALIDATOR, complete_receipt, payload

GPUS = ("GPU-5b2c0e4a-0000-0000-0000-000000000001", "GPU-5b2c0e4a-0000-0000-0000-000000000002")


def test_a_cpu_receipt_is_signed_over_the_fields_it_always_had() -> None:
    cpu = payload(ReceiptKind.ACCEPTED)
    assert "gpus" not in cpu.model_dump(mode="json")
    fields = json.loads(cpu.model_dump_json())
    assert set(fields) == {
        "kind", "job_id", "attempt", "validator_hotkey", "miner_hotkey", "executor_class", "at",
        "status", "duration_s", "outputs_digest",
    }  # fmt: skip
    receipt = complete_receipt(ReceiptKind.ACCEPTED)
    # Both signatures are over exactly those fields: what a peer without GPU support signs and checks.
    verify_raw(VALIDATOR.hotkey, domain_message(RECEIPT_PURPOSE, fields), receipt.validator_signature)
    verify_raw(MINER.hotkey, domain_message(RECEIPT_PURPOSE, fields), str(receipt.miner_signature))


def test_a_gpu_receipt_names_its_gpus_under_both_signatures() -> None:
    receipt = complete_receipt(ReceiptKind.FINISHED, gpus=GPUS)
    verify_receipt(receipt, miner_hotkey=MINER.hotkey, validator_hotkey=VALIDATOR.hotkey)
    again = Receipt.model_validate_json(receipt.model_dump_json())
    assert again == receipt and again.payload.gpus == GPUS
    verify_receipt(again)
    moved = receipt.model_copy(update={"payload": receipt.payload.model_copy(update={"gpus": GPUS[:1]})})
    with pytest.raises(SignatureError):
        verify_receipt(moved)
    dropped = receipt.model_copy(update={"payload": receipt.payload.model_copy(update={"gpus": ()})})
    with pytest.raises(SignatureError):
        verify_receipt(dropped)


def test_job_accepted_names_gpus_only_when_it_has_some() -> None:
    assert JobAccepted(job_id="j").encode() == '{"type":"job.accepted","job_id":"j"}'
    gpu = JobAccepted(job_id="j", gpus=list(GPUS))
    assert JobAccepted.model_validate_json(gpu.encode()) == gpu


def test_a_job_asking_for_a_gpu_model_fits_only_a_class_that_names_it() -> None:
    h100 = ClassSpec(cpu=16, memory_mb=131072, gpus=1, gpu_memory_mb=81920, gpu_model="NVIDIA H100 80GB HBM3")
    unnamed = ClassSpec(cpu=16, memory_mb=131072, gpus=1, gpu_memory_mb=81920)
    assert h100.shortfall(ResourceLimits(gpu_model="h100")) is None
    assert h100.shortfall(ResourceLimits()) is None and unnamed.shortfall(ResourceLimits()) is None
    assert h100.shortfall(ResourceLimits(gpu_model="A100")) == (
        "GPU 'A100' asked, the class has 'NVIDIA H100 80GB HBM3'"
    )
    assert unnamed.shortfall(ResourceLimits(gpu_model="H100")) == "GPU 'H100' asked, the class has 'no named GPU'"


def test_a_spec_without_a_gpu_model_goes_on_the_wire_as_before() -> None:
    assert "gpu_model" not in json.dumps(JobSpec(command=["true"]).to_wire())
    asked = JobSpec(command=["true"], limits={"gpu_model": "H100"})
    assert asked.to_wire()["limits"] == {"gpu_model": "H100"}
