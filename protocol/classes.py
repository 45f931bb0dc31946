"""Executor classes: named capacities with their specs (DESIGN.md §4).

A miner offers executors of some classes (its manifest counts them, with each class's spec); a
job names its class and the validator sends it only to a miner offering that class with room
for the job's resource limits. The standard classes below are what a class name means unless a
miner defines its own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from protocol.spec import ResourceLimits

__all__ = ["STANDARD_CLASSES", "ClassSpec"]


class ClassSpec(BaseModel):
    """What one executor of a class has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float = Field(gt=0, le=1024, description="CPU cores")
    memory_mb: int = Field(ge=16)
    gpus: int = Field(0, ge=0, le=64)
    gpu_memory_mb: int = Field(0, ge=0)
    # The GPU model the class's executors have ("NVIDIA GeForce RTX 4090"): a miner fills it
    # from what it discovered, so validators can route on it (docs/gpu.md).
    gpu_model: str | None = Field(None, min_length=1, max_length=128)

    @model_serializer(mode="wrap")
    def _omit_no_model(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unset: a manifest without GPUs reads as before, to peers that predate it.
        data = handler(self)
        if self.gpu_model is None:
            data.pop("gpu_model", None)
        return data

    def __str__(self) -> str:
        text = f"{self.cpu:g} cpu, {self.memory_mb} MB"
        if self.gpus:
            text += f", {self.gpus} gpu × {self.gpu_memory_mb} MB"
            if self.gpu_model:
                text += f" ({self.gpu_model})"
        return text

    def shortfall(self, limits: ResourceLimits) -> str | None:
        """Why a job with these limits does not fit one executor of this class, or ``None``."""
        problems = []
        if limits.cpu > self.cpu:
            problems.append(f"{limits.cpu:g} cpu > {self.cpu:g}")
        if limits.memory_mb > self.memory_mb:
            problems.append(f"{limits.memory_mb} MB > {self.memory_mb} MB")
        if limits.gpu_model and limits.gpu_model.lower() not in (self.gpu_model or "").lower():
            problems.append(f"GPU {limits.gpu_model!r} asked, the class has {self.gpu_model or 'no named GPU'!r}")
        return "; ".join(problems) or None


STANDARD_CLASSES: dict[str, ClassSpec] = {
    "cpu.small": ClassSpec(cpu=1, memory_mb=2048),
    "cpu.medium": ClassSpec(cpu=2, memory_mb=8192),
    "cpu.large": ClassSpec(cpu=8, memory_mb=32768),
    "gpu.24gb": ClassSpec(cpu=8, memory_mb=65536, gpus=1, gpu_memory_mb=24576),
    "gpu.80gb": ClassSpec(cpu=16, memory_mb=131072, gpus=1, gpu_memory_mb=81920),
}
