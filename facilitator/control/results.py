"""ArmoniK's Results service: a session's results, their metadata and their data in the object store.

A result's metadata exists before its data (``CreateResultsMetaData``: status created); data comes
inline (``CreateResults``: stored, status completed, with the store's sha256 and size) and is read
back in chunks of at most ``GetServiceConfiguration``'s ``data_chunk_max_size``. A result is
reached only through a session of the caller's: another client's is ``NOT_FOUND``.

Objects are stored under ``control/<session id>/<result id>``; deleting a result's data (or
purging its session) deletes the object and leaves the metadata, status deleted.
"""

from __future__ import annotations

import tempfile
import uuid
from typing import IO, Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from facilitator.control import engine, events
from facilitator.control.auth import caller
from facilitator.control.calls import Refused, answer
from facilitator.control.filters import BadFilter, listed
from facilitator.control.models import ControlResult, ControlSession
from facilitator.control.sessions import PAUSED, RUNNING, own_session
from facilitator.storage import InvalidKey, ObjectNotFound, ObjectTooLarge, get_store, validate_key
from protocol.armonik_api.protos import result_status_pb2, results_pb2, results_pb2_grpc

__all__ = ["ResultsService", "delete_session_data", "result_raw", "result_value", "upload_key"]

R = result_status_pb2.ResultStatus
CREATED, COMPLETED, ABORTED, DELETED = (
    R.RESULT_STATUS_CREATED,
    R.RESULT_STATUS_COMPLETED,
    R.RESULT_STATUS_ABORTED,
    R.RESULT_STATUS_DELETED,
)
MAX_NAME = 256
MAX_RESULTS_A_CALL = 10_000


def chunk_size() -> int:
    """The largest data chunk a stream carries: well inside the largest gRPC message."""
    return min(settings.GRID_CONTROL_CHUNK_BYTES, settings.GRID_CONTROL_MAX_MESSAGE_BYTES - 64 * 1024)


# -- rows (sync) ---------------------------------------------------------------------------------


def _accepting(client: str, session_id: str) -> ControlSession:
    """The caller's session, if it takes new results from the client now."""
    session = own_session(client, session_id)
    if session.status not in (RUNNING, PAUSED) or not session.client_submission:
        state = "closed to client submissions" if session.status in (RUNNING, PAUSED) else "not running"
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"session {session_id} is {state}: no new results")
    return session


def _check_names(names: list[str]) -> None:
    if not names:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "no results to create")
    if len(names) > MAX_RESULTS_A_CALL:
        raise Refused(
            grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_RESULTS_A_CALL} results a call, not {len(names)}"
        )
    if any(len(name) > MAX_NAME for name in names):
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"a result name is at most {MAX_NAME} characters")


def _new(session: ControlSession, name: str, manual_deletion: bool, status: int) -> ControlResult:
    return ControlResult(
        id=str(uuid.uuid4()),
        session=session,
        name=name,
        status=status,
        manual_deletion=manual_deletion,
        created_at=timezone.now(),
    )


def _create_metadata(client: str, session_id: str, wanted: list[tuple[str, bool]]) -> list[ControlResult]:
    _check_names([name for name, _ in wanted])
    with transaction.atomic():
        session = _accepting(client, session_id)
        results = ControlResult.objects.bulk_create([_new(session, name, manual, CREATED) for name, manual in wanted])
        events.record(session.id, [events.new_result(r) for r in results])
        return results


def _create_with_data(client: str, session_id: str, wanted: list[tuple[str, bool, bytes]]) -> list[ControlResult]:
    _check_names([name for name, _, _ in wanted])
    session = _accepting(client, session_id)
    store = get_store()
    results = []
    for name, manual, data in wanted:  # stored before their rows: a row never names missing data
        result = _new(session, name, manual, COMPLETED)
        result.store_key = f"control/{session.id}/{result.id}"
        info = store.put(result.store_key, data)
        result.sha256, result.size, result.completed_at = info.sha256, info.size, timezone.now()
        results.append(result)
    with transaction.atomic():
        _accepting(client, session_id)  # still: it may have been cancelled meanwhile
        results = ControlResult.objects.bulk_create(results)
        events.record(session.id, [events.new_result(r) for r in results])
        return results


def upload_key(session_id: str, result_id: str) -> str:
    """A fresh store key for one write of a result's data: racing writes never clash, a loser is deleted alone."""
    return f"control/{session_id}/{result_id}/{uuid.uuid4().hex[:12]}"


def _upload(client: str, session_id: str, result_id: str, data: IO[bytes]) -> ControlResult:
    """Fill a created result with ``data`` (delayed upload): stored first, then completed, waking its tasks."""
    _writable(_accepting_result(client, session_id, result_id))
    key = upload_key(session_id, result_id)
    store = get_store()
    try:
        info = store.put(key, data)
    except ObjectTooLarge as exc:
        raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, f"result {result_id}: {exc}") from None
    with transaction.atomic():
        result = ControlResult.objects.select_for_update().get(id=result_id)
        try:
            _accepting(client, session_id)
            _writable(result)
        except Refused:
            store.delete(key)  # it lost the race (another upload, an abort, a cancel): nothing of it stays
            raise
        result.status, result.store_key, result.completed_at = COMPLETED, key, timezone.now()
        result.sha256, result.size = info.sha256, info.size
        result.save(update_fields=["status", "store_key", "completed_at", "sha256", "size"])
        engine.complete_results(session_id, [result_id])
    return result


def _accepting_result(client: str, session_id: str, result_id: str) -> ControlResult:
    _accepting(client, session_id)
    return _own_result(client, result_id, session_id)


def _writable(result: ControlResult) -> None:
    if result.status != CREATED:
        state = R.Name(result.status).removeprefix("RESULT_STATUS_").lower()
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"result {result.id} is {state}: it takes no data")


async def _spooled_upload(requests: Any) -> tuple[str, str, IO[bytes]]:
    """The identifier and the data of an upload stream, the data kept aside until the stream is signed."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("type") != "id":
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "an upload starts with the result's identifier (id)")
    data = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (the caller closes it)
    try:
        async for request in requests:
            if request.WhichOneof("type") != "data_chunk":
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "an upload names its result once, first")
            data.write(request.data_chunk)
    except BaseException:
        data.close()
        raise
    data.seek(0)
    return first.id.session_id, first.id.result_id, data


def _importable(client: str, key: str) -> bool:
    """Whether the object under ``key`` is the caller's: its uploads, its jobs' files, its sessions' results."""
    from facilitator.links import owns_key  # the store's notion of whose a key is

    parts = key.split("/")
    if parts[0] == "control" and len(parts) >= 3:
        return ControlSession.objects.filter(id=parts[1], client_hotkey=client).exists()
    return owns_key(client, key)


def _import(client: str, session_id: str, wanted: list[tuple[str, bytes]]) -> list[ControlResult]:
    """Point created results at objects already in the store (no copy), once each is shown to be the caller's."""
    if not wanted or len(wanted) > MAX_RESULTS_A_CALL:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"1 to {MAX_RESULTS_A_CALL} results a call")
    store = get_store()
    found = {}
    for result_id, opaque in wanted:
        try:
            key = validate_key(opaque.decode())
        except (UnicodeDecodeError, InvalidKey):
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT, f"result {result_id}: the opaque id is not an object key"
            ) from None
        try:
            info = store.stat(key) if _importable(client, key) else None
        except ObjectNotFound:
            info = None
        if info is None:  # someone else's and missing read the same: nothing learnt of others' keys
            raise Refused(grpc.StatusCode.NOT_FOUND, f"result {result_id}: no object {key!r} of yours in the store")
        found[result_id] = (key, info)
    with transaction.atomic():
        _accepting(client, session_id)
        results = _in_session(client, session_id, [r for r, _ in wanted])
        for result in results:
            _writable(result)
        now = timezone.now()
        for result in results:
            key, info = found[result.id]
            result.status, result.store_key, result.completed_at, result.imported = COMPLETED, key, now, True
            result.sha256, result.size = info.sha256, info.size
        ControlResult.objects.bulk_update(
            results, ["status", "store_key", "completed_at", "imported", "sha256", "size"]
        )
        engine.complete_results(session_id, [r.id for r in results])
    return results


def _own_result(client: str, result_id: str, session_id: str | None = None) -> ControlResult:
    found = ControlResult.objects.filter(id=result_id, session__client_hotkey=client)
    if session_id is not None:
        found = found.filter(session_id=session_id)
    result = found.first()
    if result is None:
        raise Refused(
            grpc.StatusCode.NOT_FOUND, f"no result {result_id!r}" + (f" in session {session_id}" if session_id else "")
        )
    return result


def _list(client: str) -> list[ControlResult]:
    return list(ControlResult.objects.filter(session__client_hotkey=client).order_by("created_at", "id"))


def _in_session(client: str, session_id: str, result_ids: list[str]) -> list[ControlResult]:
    """The results named, in the caller's session ``session_id``, in the order named; every one must be there."""
    own_session(client, session_id)
    found = {r.id: r for r in ControlResult.objects.filter(session_id=session_id, id__in=result_ids)}
    missing = [r for r in result_ids if r not in found]
    if missing:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"no result {missing[0]!r} in session {session_id}")
    return [found[r] for r in result_ids]


def _owners(client: str, session_id: str, result_ids: list[str]) -> list[tuple[str, str]]:
    return [(r.id, r.owner_task_id) for r in _in_session(client, session_id, result_ids)]


def _delete_data(client: str, session_id: str, result_ids: list[str]) -> None:
    _forget(_in_session(client, session_id, result_ids))


def _forget(results: list[ControlResult]) -> None:
    """Delete the data of ``results`` from the store; their rows stay, status deleted."""
    store = get_store()
    for result in results:
        if result.store_key and not result.imported:  # an imported object stays the client's
            try:
                store.delete(result.store_key)
            except ObjectNotFound:
                pass  # gone already: the row says so next
    ControlResult.objects.filter(id__in=[r.id for r in results]).update(status=DELETED, store_key="")
    for session_id in {r.session_id for r in results}:
        events.record(session_id, [events.result_status(r.id, DELETED) for r in results if r.session_id == session_id])


def delete_session_data(session: ControlSession) -> None:
    """Purge: every result of ``session`` loses its data (sync; inside the session's transition)."""
    _forget(list(session.results.exclude(store_key="")))


# -- messages ------------------------------------------------------------------------------------


def result_raw(result: ControlResult) -> results_pb2.ResultRaw:
    raw = results_pb2.ResultRaw(
        session_id=result.session_id,
        name=result.name,
        owner_task_id=result.owner_task_id,
        status=result.status,
        result_id=result.id,
        size=result.size,
        created_by=result.created_by,
        opaque_id=result.store_key.encode(),
        manual_deletion=result.manual_deletion,
    )
    raw.created_at.FromDatetime(result.created_at)
    if result.completed_at is not None:
        raw.completed_at.FromDatetime(result.completed_at)
    return raw


_RAW_FIELDS = {  # ResultRawEnumField number -> the row's value
    1: lambda r: r.session_id,
    2: lambda r: r.name,
    3: lambda r: r.owner_task_id,
    4: lambda r: r.status,
    5: lambda r: r.created_at,
    6: lambda r: r.completed_at,
    7: lambda r: r.id,
    8: lambda r: r.size,
    9: lambda r: r.created_by,
    11: lambda r: r.manual_deletion,
}


def result_value(result: ControlResult, field: Any) -> Any:
    if field.WhichOneof("field") != "result_raw_field":
        raise BadFilter("a filter or sort names no result field")
    read = _RAW_FIELDS.get(field.result_raw_field.field)
    if read is None:
        raise BadFilter(f"results cannot be filtered or sorted by field {field.result_raw_field.field}")
    return read(result)


async def _chunks(result: ControlResult) -> Any:
    async with await get_store().aopen(result.store_key) as chunks:
        size, pending = chunk_size(), b""
        async for chunk in chunks:
            pending += chunk
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
        if pending:
            yield pending


# -- the service ---------------------------------------------------------------------------------


class ResultsService(results_pb2_grpc.ResultsServicer):
    """``armonik.api.grpc.v1.results.Results``, through the caller's own sessions."""

    async def CreateResultsMetaData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            wanted = [(r.name, r.manual_deletion) for r in request.results]
            results = await sync_to_async(_create_metadata)(caller(), request.session_id, wanted)
            return results_pb2.CreateResultsMetaDataResponse(results=[result_raw(r) for r in results])

    async def CreateResults(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            wanted = [(r.name, r.manual_deletion, r.data) for r in request.results]
            results = await sync_to_async(_create_with_data)(caller(), request.session_id, wanted)
            return results_pb2.CreateResultsResponse(results=[result_raw(r) for r in results])

    async def GetResult(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            result = await sync_to_async(_own_result)(caller(), request.result_id)
            return results_pb2.GetResultResponse(result=result_raw(result))

    async def ListResults(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            results = await sync_to_async(_list)(caller())
            page, size, total = listed(results, request, result_value, settings.GRID_CONTROL_PAGE_SIZE_MAX)
            return results_pb2.ListResultsResponse(
                results=[result_raw(r) for r in page],
                page=request.page,
                page_size=size,
                total=total,
            )

    async def GetOwnerTaskId(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            owners = await sync_to_async(_owners)(caller(), request.session_id, list(request.result_id))
            Map = results_pb2.GetOwnerTaskIdResponse.MapResultTask
            return results_pb2.GetOwnerTaskIdResponse(
                session_id=request.session_id, result_task=[Map(result_id=r, task_id=t) for r, t in owners]
            )

    async def DownloadResultData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            result = await sync_to_async(_own_result)(caller(), request.result_id, request.session_id)
            if result.status != COMPLETED or not result.store_key:
                state = R.Name(result.status).removeprefix("RESULT_STATUS_").lower()
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"result {result.id} is {state}: it has no data")
        async for chunk in _chunks(result):
            yield results_pb2.DownloadResultDataResponse(data_chunk=chunk)

    async def DeleteResultsData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            ids = list(request.result_id)
            await sync_to_async(_delete_data)(caller(), request.session_id, ids)
            return results_pb2.DeleteResultsDataResponse(session_id=request.session_id, result_id=ids)

    async def UploadResultData(self, requests: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            session_id, result_id, data = await _spooled_upload(requests)  # the stream's signature holds here
            with data:
                result = await sync_to_async(_upload)(caller(), session_id, result_id, data)
            return results_pb2.UploadResultDataResponse(result=result_raw(result))

    async def ImportResultsData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            wanted = [(r.result_id, r.opaque_id) for r in request.results]
            results = await sync_to_async(_import)(caller(), request.session_id, wanted)
            return results_pb2.ImportResultsDataResponse(results=[result_raw(r) for r in results])

    async def GetServiceConfiguration(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return results_pb2.ResultsServiceConfigurationResponse(data_chunk_max_size=chunk_size())
