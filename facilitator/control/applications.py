"""ArmoniK's Applications service: the applications the caller's tasks name in their options.

An application is the (name, version, namespace, service) of a task's ``TaskOptions``; the list
holds each one that some task of the caller's names (a task naming none is no application's).
"""

from __future__ import annotations

from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings

from facilitator.control.auth import caller
from facilitator.control.calls import answer
from facilitator.control.filters import BadFilter, matches, page_of
from facilitator.control.models import ControlTask
from protocol.armonik_api.protos import applications_pb2, applications_pb2_grpc, objects_pb2

__all__ = ["ApplicationsService"]

App = tuple[str, str, str, str]
_FIELDS = {1: 0, 2: 1, 3: 2, 4: 3}  # ApplicationRawEnumField -> index in (name, version, namespace, service)


def _applications(client: str) -> list[App]:
    found: set[App] = set()
    for options in ControlTask.objects.filter(session__client_hotkey=client).values_list("options", flat=True):
        parsed = objects_pb2.TaskOptions.FromString(bytes(options))
        app = (
            parsed.application_name,
            parsed.application_version,
            parsed.application_namespace,
            parsed.application_service,
        )
        if any(app):
            found.add(app)
    return sorted(found)


def _value_of(app: App, field: Any) -> str:
    if field.WhichOneof("field") != "application_field":
        raise BadFilter("a filter or sort names no application field")
    index = _FIELDS.get(field.application_field.field)
    if index is None:
        raise BadFilter(f"applications cannot be filtered or sorted by field {field.application_field.field}")
    return app[index]


def _listed(client: str, request: Any) -> tuple[list[App], int, int]:
    apps = [a for a in _applications(client) if matches(request.filters, lambda field, a=a: _value_of(a, field))]
    if request.HasField("sort") and request.sort.fields:
        apps.sort(
            key=lambda a: tuple(_value_of(a, f) for f in request.sort.fields),
            reverse=request.sort.direction == 2,  # SORT_DIRECTION_DESC
        )
    most = settings.GRID_CONTROL_PAGE_SIZE_MAX
    return page_of(apps, request.page, request.page_size, most), min(request.page_size, most), len(apps)


class ApplicationsService(applications_pb2_grpc.ApplicationsServicer):
    """``armonik.api.grpc.v1.applications.Applications``, over the caller's own tasks."""

    async def ListApplications(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            page, size, total = await sync_to_async(_listed)(caller(), request)
            return applications_pb2.ListApplicationsResponse(
                applications=[
                    applications_pb2.ApplicationRaw(name=a[0], version=a[1], namespace=a[2], service=a[3]) for a in page
                ],
                page=request.page,
                page_size=size,
                total=total,
            )
