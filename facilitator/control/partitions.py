"""ArmoniK's Partitions service: the executor classes the grid's miners offer now.

A partition is an executor class (``cpu.small``, ``gpu.24gb`` …). Each connected validator says
what its connected miners offer (``capacity``, kept on its presence row); a partition exists while
one of them offers it. ``pod_max`` is how many executors of the class there are, summed over the
miners; ``pod_configuration`` is the class's spec (cpu, memory_mb, gpus …) as strings. ArmoniK's
reservation and preemption have no counterpart here: ``pod_reserved`` and
``preemption_percentage`` are 0, ``priority`` 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings

from facilitator.control.calls import Refused, answer
from facilitator.control.filters import BadFilter, listed
from facilitator.models import ValidatorPresence
from protocol.armonik_api.protos import partitions_pb2, partitions_pb2_grpc

__all__ = ["Partition", "PartitionsService", "offered"]


@dataclass(frozen=True)
class Partition:
    id: str
    total: int
    free: int
    spec: dict[str, Any]


def offered() -> dict[str, Partition]:
    """Every class a connected validator's miners offer, summed over validators (sync)."""
    totals: dict[str, list[int]] = {}
    specs: dict[str, dict[str, Any]] = {}
    for classes in ValidatorPresence.objects.values_list("classes", flat=True):
        for name, capacity in (classes or {}).items():
            total, free = totals.setdefault(name, [0, 0])
            totals[name] = [total + int(capacity.get("total", 0)), free + int(capacity.get("free", 0))]
            specs.setdefault(name, capacity.get("spec") or {})
    return {name: Partition(name, t, f, specs[name]) for name, (t, f) in sorted(totals.items()) if t > 0}


def partition_raw(partition: Partition) -> partitions_pb2.PartitionRaw:
    return partitions_pb2.PartitionRaw(
        id=partition.id,
        pod_max=partition.total,
        pod_configuration={k: str(v) for k, v in partition.spec.items() if v is not None},
        priority=1,
    )


_RAW_FIELDS = {  # PartitionRawEnumField number -> the partition's value
    1: lambda p: p.id,
    2: lambda p: [],
    3: lambda p: 0,
    4: lambda p: p.total,
    5: lambda p: 0,
    6: lambda p: 1,
}


def _value_of(partition: Partition, field: Any) -> Any:
    if field.WhichOneof("field") != "partition_raw_field":
        raise BadFilter("a filter or sort names no partition field")
    read = _RAW_FIELDS.get(field.partition_raw_field.field)
    if read is None:
        raise BadFilter(f"partitions cannot be filtered or sorted by field {field.partition_raw_field.field}")
    return read(partition)


class PartitionsService(partitions_pb2_grpc.PartitionsServicer):
    """``armonik.api.grpc.v1.partitions.Partitions``: the same for every client."""

    async def ListPartitions(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            partitions = list((await sync_to_async(offered)()).values())
            page, size, total = listed(partitions, request, _value_of, settings.GRID_CONTROL_PAGE_SIZE_MAX)
            return partitions_pb2.ListPartitionsResponse(
                partitions=[partition_raw(p) for p in page], page=request.page, page_size=size, total=total
            )

    async def GetPartition(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            partition = (await sync_to_async(offered)()).get(request.id)
            if partition is None:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"no miner offers partition {request.id!r}")
            return partitions_pb2.GetPartitionResponse(partition=partition_raw(partition))
