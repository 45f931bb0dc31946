"""The facilitator's gRPC server: ArmoniK's services, every call signed (docs/control-plane.md).

:func:`start` runs it on the facilitator's own event loop (the ASGI server's, through the
lifespan hook of ``grid.asgi``), on ``GRID_CONTROL_HOST:GRID_CONTROL_PORT``; port 0 serves
nothing.
"""

from __future__ import annotations

import logging

import grpc
from django.conf import settings

from facilitator.control.applications import ApplicationsService
from facilitator.control.auth import SignedCalls
from facilitator.control.events import EventsService
from facilitator.control.info import HealthChecksService, VersionsService
from facilitator.control.partitions import PartitionsService
from facilitator.control.results import ResultsService
from facilitator.control.sessions import SessionsService
from facilitator.control.tasks import TasksService
from protocol.armonik_api.protos import (
    applications_pb2_grpc,
    events_pb2_grpc,
    health_checks_pb2_grpc,
    partitions_pb2_grpc,
    results_pb2_grpc,
    sessions_pb2_grpc,
    tasks_pb2_grpc,
    versions_pb2_grpc,
)

__all__ = ["build", "start", "stop"]

log = logging.getLogger("grid.control")

_running: list[grpc.aio.Server] = []


def build(address: str) -> tuple[grpc.aio.Server, int]:
    """A server with every service added, bound to ``address``; and the port it got."""
    limit = settings.GRID_CONTROL_MAX_MESSAGE_BYTES
    server = grpc.aio.server(
        interceptors=[SignedCalls()],
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),  # a port already taken is an error, not a port shared with a stranger
        ],
    )
    sessions_pb2_grpc.add_SessionsServicer_to_server(SessionsService(), server)
    results_pb2_grpc.add_ResultsServicer_to_server(ResultsService(), server)
    tasks_pb2_grpc.add_TasksServicer_to_server(TasksService(), server)
    events_pb2_grpc.add_EventsServicer_to_server(EventsService(), server)
    partitions_pb2_grpc.add_PartitionsServicer_to_server(PartitionsService(), server)
    applications_pb2_grpc.add_ApplicationsServicer_to_server(ApplicationsService(), server)
    versions_pb2_grpc.add_VersionsServicer_to_server(VersionsService(), server)
    health_checks_pb2_grpc.add_HealthChecksServiceServicer_to_server(HealthChecksService(), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc's way of saying the address is taken or not ours
        raise OSError(f"the control plane could not listen on {address} (GRID_CONTROL_PORT): {exc}") from None
    return server, port


async def start() -> None:
    """Serve the control plane, if ``GRID_CONTROL_PORT`` names a port."""
    if not settings.GRID_CONTROL_PORT:
        return
    address = f"{settings.GRID_CONTROL_HOST}:{settings.GRID_CONTROL_PORT}"
    server, port = build(address)
    await server.start()
    _running.append(server)
    log.info("control plane (ArmoniK gRPC API v1) on %s:%d", settings.GRID_CONTROL_HOST, port)


async def stop(grace: float = 2.0) -> None:
    while _running:
        await _running.pop().stop(grace)
