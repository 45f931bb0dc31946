"""``GET /live/events``: the Server-Sent Events stream of job events (:mod:`validator.dashboard.live`)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, StreamingHttpResponse

from validator.dashboard.live import sse_stream
from validator.dashboard.queries import latest_event_id

__all__ = ["events"]


def _after(request: HttpRequest) -> int | None:
    # An EventSource reconnecting says where it stopped; that wins over the page's ?after=.
    for value in (request.headers.get("Last-Event-ID"), request.GET.get("after")):
        if value and value.isdigit():
            return int(value)
    return None


async def events(request: HttpRequest) -> StreamingHttpResponse:
    after = _after(request)
    if after is None:
        after = await sync_to_async(latest_event_id)()
    response = StreamingHttpResponse(sse_stream(after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold events back
    return response
