"""The end of the relayed calls' path (protocol/messages/relay.py): one handler per ``kind``.

A ``relay.call`` reaches the facilitator from a validator; :func:`answer` checks that the call's
job is assigned to that validator and is not over, and that its attempt is not an earlier one
than the job's (a later one is fine: the statuses of a new attempt may still be on their way),
then answers with the handler registered for the call's ``kind``. An unknown kind is answered
``ok: false`` with ``unknown_kind``; a handler that raises :class:`RelayRefused` answers with its
code, any other exception with ``internal_error``.

The one built-in kind, ``ping``, answers its body: a test and diagnostic kind that proves the
path works end to end. The control plane's kinds register here with :func:`register`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from facilitator import jobs
from facilitator.models import Job
from protocol.messages import RelayCall, RelayReply

__all__ = ["HANDLERS", "RelayRefused", "answer", "register"]

log = logging.getLogger("grid.facilitator.relay")

# A handler gets the job (its CALL_FIELDS) and the call, runs in a worker thread (it may use the
# ORM), and returns the reply's body.
Handler = Callable[[Job, RelayCall], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}
# The job's fields a handler may read (another is fetched when read: one more query).
CALL_FIELDS = ("id", "client_hotkey", "status", "attempt", "validator_hotkey", "miner_hotkey")


class RelayRefused(Exception):
    """Raised by a handler to answer ``ok: false`` with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def register(kind: str) -> Callable[[Handler], Handler]:
    """Make the decorated function the handler of ``kind``."""

    def decorate(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return decorate


@register("ping")
def _ping(job: Job, call: RelayCall) -> dict[str, Any]:
    return call.body


def answer(validator_hotkey: str, call: RelayCall) -> RelayReply:
    """The reply to ``call``, relayed by ``validator_hotkey`` (blocking: the ORM)."""
    job = (
        # Not the spec, nor the result: a batch job's spec holds all its tasks, and a call needs none of it.
        Job.objects.filter(id=call.job_id, validator_hotkey=validator_hotkey).only(*CALL_FIELDS).first()
        if jobs.is_job_id(call.job_id)
        else None
    )
    if job is None or job.is_terminal or call.attempt < job.attempt:
        return RelayReply.refuse(call, "unknown_job", "no such job attempt is under way with this validator")
    handler = HANDLERS.get(call.kind)
    if handler is None:
        return RelayReply.refuse(call, "unknown_kind", f"no handler for {call.kind!r}")
    try:
        body = handler(job, call)
    except RelayRefused as exc:
        return RelayReply.refuse(call, exc.code, exc.message)
    except Exception:
        log.exception("relay handler %s failed on job %s", call.kind, call.job_id)
        return RelayReply.refuse(call, "internal_error", f"{call.kind} failed")
    return RelayReply(job_id=call.job_id, attempt=call.attempt, call_id=call.call_id, ok=True, body=body)
