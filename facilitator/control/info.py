"""ArmoniK's Versions and HealthChecks services: what this facilitator runs and whether it can serve."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.db import connection

from protocol.armonik_api.protos import health_checks_pb2, health_checks_pb2_grpc, versions_pb2, versions_pb2_grpc

__all__ = ["API_VERSION", "HealthChecksService", "VersionsService"]

API_VERSION = "3.29.4"  # the ArmoniK API whose wire this serves (armonik on PyPI, tested against)

HEALTHY = health_checks_pb2.HealthStatusEnum.HEALTH_STATUS_ENUM_HEALTHY
UNHEALTHY = health_checks_pb2.HealthStatusEnum.HEALTH_STATUS_ENUM_UNHEALTHY


def core_version() -> str:
    """Gridmarket's own version ("core" in ArmoniK's terms)."""
    try:
        return f"gridmarket {version('gridmarket')}"
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "gridmarket (not installed)"


class VersionsService(versions_pb2_grpc.VersionsServicer):
    async def ListVersions(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return versions_pb2.ListVersionsResponse(core=core_version(), api=API_VERSION)


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class HealthChecksService(health_checks_pb2_grpc.HealthChecksServiceServicer):
    async def CheckHealth(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        Health = health_checks_pb2.CheckHealthResponse.ServiceHealth
        try:
            await sync_to_async(_database_answers)()
            database = Health(name="database", message="answers", healthy=HEALTHY)
        except Exception as exc:
            database = Health(name="database", message=f"{type(exc).__name__}: {exc}", healthy=UNHEALTHY)
        return health_checks_pb2.CheckHealthResponse(services=[database])
