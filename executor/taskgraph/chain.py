"""The polling agent's upstream in a grid: relayed calls up the chain, data through the store.

Each operation is a ``relay.call`` of the batch job's attempt, executor → miner → validator →
facilitator (facilitator/control/agent_calls.py), answered by a ``relay.reply`` the job driver
hands back (:meth:`ChainUpstream.answer`). Data moves between the executor and the store through
the signed URLs the facilitator gives: a GET per input (its sha256 checked; small inputs come
with the batch itself), a write-once PUT per output. The outputs' digests (and small outputs'
data) go up with the task's end, ``control.done``: the facilitator checks them against the
store's and completes the results with the task, in one transaction.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx

from executor.datapolicy import DataPlaneError, DataPolicy
from executor.taskgraph.agent import StoredData, TaskRun, Upstream, UpstreamRefused
from executor.taskgraph.polling_agent import TaskOutcome
from executor.transfer import check_status, new_client, require_store_url, with_retries
from protocol.messages import RelayCall, RelayReply
from protocol.spec import BATCH_DATA_BYTES, INLINE_RESULT_BYTES, InlineResult
from protocol.status import FailureReason

__all__ = ["ChainUpstream", "done_body"]

log = logging.getLogger("grid.executor.taskgraph")

CALL_S = 60.0
ENDS_A_CALL = 200  # task ends in one control.done, at most
ENDS_QUEUED = 1000  # task ends waiting to be sent, at most (then the next task waits)
CHUNK = 256 * 1024
CACHE_BYTES = 32 * 1024 * 1024  # small inputs kept for the batch's next tasks: a result never changes once written
_CODES = {  # a refusal's code upstream -> the status the worker sees
    "unknown_result": grpc.StatusCode.NOT_FOUND,
    "no_data": grpc.StatusCode.FAILED_PRECONDITION,
    "not_yours": grpc.StatusCode.PERMISSION_DENIED,
    "written": grpc.StatusCode.FAILED_PRECONDITION,
    "bad_call": grpc.StatusCode.INVALID_ARGUMENT,
}


class ChainUpstream(Upstream):
    """Relayed calls of one batch job's attempt; ``send`` puts a frame on the executor's link."""

    def __init__(
        self,
        job_id: str,
        attempt: int,
        send: Callable[[RelayCall], Awaitable[None]],
        policy: DataPolicy,
        carried: dict[str, InlineResult] | None = None,
    ) -> None:
        self.job_id, self.attempt, self.send, self.policy = job_id, attempt, send, policy
        self._pending: dict[str, asyncio.Future[RelayReply]] = {}
        self._client: httpx.AsyncClient | None = None
        self._cache: dict[str, bytes] = {}  # small completed inputs, by result id
        self._cached_bytes = 0
        self._held: dict[str, int] = {}  # bytes of small outputs held for each task's end
        self._ends: list[dict[str, Any]] = []  # task ends not sent yet
        self._sender: asyncio.Task[None] | None = None
        self._sent = asyncio.Event()
        for result_id, inline in (carried or {}).items():  # the batch's own small inputs: no call for them
            try:
                data = base64.b64decode(inline.data_b64, validate=True)
            except ValueError:
                continue  # fetched as any other input
            if hashlib.sha256(data).hexdigest() == inline.sha256:
                self._keep(result_id, data)

    def _keep(self, result_id: str, data: bytes) -> None:
        if self._cached_bytes + len(data) <= CACHE_BYTES:
            self._cache[result_id] = data
            self._cached_bytes += len(data)

    def answer(self, reply: RelayReply) -> bool:
        """A ``relay.reply`` from the miner; ``False`` if no call of ours awaits it."""
        waiting = self._pending.pop(reply.call_id, None)
        if waiting is None or waiting.done():
            return False
        waiting.set_result(reply)
        return True

    async def call(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        call_id = uuid.uuid4().hex
        waiting: asyncio.Future[RelayReply] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = waiting
        try:
            await self.send(RelayCall(job_id=self.job_id, attempt=self.attempt, call_id=call_id, kind=kind, body=body))
            reply = await asyncio.wait_for(waiting, CALL_S)
        except TimeoutError:
            raise UpstreamRefused(
                grpc.StatusCode.UNAVAILABLE, f"{kind}: no answer from the grid in {CALL_S:g} s"
            ) from None
        finally:
            self._pending.pop(call_id, None)
        if not reply.ok:
            error = reply.error
            code = _CODES.get(error.code if error else "", grpc.StatusCode.UNAVAILABLE)
            raise UpstreamRefused(
                code, f"{kind}: {error.code if error else 'refused'}: {error.message if error else ''}"
            )
        return reply.body

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.policy)
        return self._client

    async def report_end(self, body: dict[str, Any]) -> None:
        """Queue a task's end for ``control.done`` without waiting for its answer: the batch's next
        task needs nothing of it (its inputs were all complete when the batch was made). One call
        is in flight at a time, carrying every end queued meanwhile."""
        while len(self._ends) >= ENDS_QUEUED:
            self._sent.clear()
            await self._sent.wait()
        self._ends.append(body)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_ends())

    async def _send_ends(self) -> None:
        while self._ends:
            ends, size = [], 0
            while self._ends and len(ends) < ENDS_A_CALL:
                inline = sum(len(o.get("data_b64", "")) * 3 // 4 for o in self._ends[0]["outputs"])
                if ends and size + inline > BATCH_DATA_BYTES:
                    break
                ends.append(self._ends.pop(0))
                size += inline
            try:
                answer = await self.call("control.done", {"ends": ends})
                for task_id, why in (answer.get("refused") or {}).items():  # cancelled or retried meanwhile
                    log.warning("job %s: task %s's end was refused: %s", self.job_id, task_id, why)
            except UpstreamRefused as exc:  # their job's end makes them grid faults: retried
                log.warning("job %s: %d task end(s) not taken: %s", self.job_id, len(ends), exc.message)
            self._sent.set()

    async def ends_reported(self) -> None:
        """Wait until every task end queued is answered (before the batch job may end)."""
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    async def close(self) -> None:
        if self._sender is not None:  # the batch stopped short: its tasks' ends are the job end's to tell
            self._sender.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def _store_url(url: str, result_id: str) -> None:
        try:
            require_store_url(url, FailureReason.DOWNLOAD_FAILED, f"result {result_id}")
        except DataPlaneError as exc:
            raise UpstreamRefused(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    async def fetch(self, run: TaskRun, result_id: str, path: Path) -> None:
        cached = self._cache.get(result_id)
        if cached is not None:
            path.write_bytes(cached)
            return
        found = await self.call("control.fetch", {"task_id": run.task_id, "result_id": result_id})
        wanted = found.get("sha256")
        if "data_b64" in found:
            data = base64.b64decode(str(found["data_b64"]))
            if hashlib.sha256(data).hexdigest() != wanted:
                raise UpstreamRefused(grpc.StatusCode.DATA_LOSS, f"result {result_id} arrived altered (sha256)")
            path.write_bytes(data)
            self._keep(result_id, data)
            return
        url = str(found.get("url", ""))
        self._store_url(url, result_id)

        async def attempt() -> str:
            digest = hashlib.sha256()
            async with self._http().stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
                await check_status(response)
                with open(path, "wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            return digest.hexdigest()

        try:
            got = await with_retries(
                attempt, self.policy, reason=FailureReason.DOWNLOAD_FAILED, what=f"result {result_id}"
            )
        except DataPlaneError as exc:
            raise UpstreamRefused(grpc.StatusCode.UNAVAILABLE, f"result {result_id}: {exc}") from None
        if wanted and got != wanted:
            raise UpstreamRefused(
                grpc.StatusCode.DATA_LOSS, f"result {result_id} arrived with sha256 {got}, not {wanted}"
            )

    async def store(self, run: TaskRun, result_id: str, path: Path) -> StoredData:
        # Nothing completes here: the results go up with the task's end (control.done), as ArmoniK's
        # complete when their task does. Small data travels in that call; the rest is in the store.
        size = path.stat().st_size
        held = self._held.get(run.task_id, 0)
        if size <= INLINE_RESULT_BYTES and held + size <= BATCH_DATA_BYTES:
            data = path.read_bytes()
            self._held[run.task_id] = held + size
            return StoredData(result_id, hashlib.sha256(data).hexdigest(), size, data=data)
        target = await self.call("control.put", {"task_id": run.task_id, "result_id": result_id})
        url, key = str(target.get("url", "")), str(target.get("key", ""))
        self._store_url(url, result_id)
        data = path.read_bytes()  # a task's result, kept whole: small by ArmoniK's design (chunks ≤ 4 MB calls)
        sha256 = hashlib.sha256(data).hexdigest()

        async def attempt() -> None:
            response = await self._http().put(url, content=data, headers={"Content-Length": str(len(data))})
            await check_status(response)

        try:
            await with_retries(attempt, self.policy, reason=FailureReason.UPLOAD_FAILED, what=f"result {result_id}")
        except DataPlaneError as exc:
            raise UpstreamRefused(grpc.StatusCode.UNAVAILABLE, f"result {result_id}: {exc}") from None
        return StoredData(result_id, sha256, len(data), key=key)

    async def create_results(self, run: TaskRun, names: list[str]) -> list[str]:
        made = await self.call("control.create", {"task_id": run.task_id, "names": names})
        ids = made.get("result_ids")
        if not isinstance(ids, list) or len(ids) != len(names):
            raise UpstreamRefused(grpc.StatusCode.INTERNAL, "control.create answered no ids")
        return [str(i) for i in ids]


def done_body(outcome: TaskOutcome) -> dict[str, Any]:
    """The ``control.done`` call of a task attempt's end, its outputs and children when it completed."""
    completed = outcome.status == "completed"
    return {
        "task_id": outcome.run.task_id,
        "status": outcome.status,
        "message": outcome.message[:1000],
        "times": outcome.times,
        "outputs": [_output(stored) for stored in outcome.stored.values()] if completed else [],
        "children": [
            {
                "task_id": child.task_id,
                "payload_id": child.payload_id,
                "data_dependencies": list(child.data_dependencies),
                "expected_output_ids": list(child.expected_output_ids),
                "options": base64.b64encode(child.options).decode(),
            }
            for child in outcome.children
        ],
    }


def _output(stored: StoredData) -> dict[str, Any]:
    where = {"data_b64": base64.b64encode(stored.data).decode()} if stored.data is not None else {"key": stored.key}
    return {"result_id": stored.result_id, "sha256": stored.sha256, "size": stored.size, **where}
