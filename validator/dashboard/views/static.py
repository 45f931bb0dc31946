"""Static files (the dashboard's and the admin's), served by the site itself from the apps' ``static/``.

Small files, read whole: a ``FileResponse`` would be a synchronous stream, which Django's ASGI
handler can only serve through a thread, warning each time.
"""

from __future__ import annotations

import mimetypes
import posixpath
from pathlib import Path

from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import http_date, parse_http_date_safe

__all__ = ["static"]


@login_not_required
def static(request: HttpRequest, path: str) -> HttpResponse:
    found = finders.find(posixpath.normpath(path).lstrip("/"))  # the finders refuse paths leaving their roots
    if not found:
        raise Http404("no such static file")
    file = Path(found)
    modified = int(file.stat().st_mtime)
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    if since is not None and modified <= since:
        return HttpResponseNotModified()
    content_type, encoding = mimetypes.guess_type(file.name)
    response = HttpResponse(file.read_bytes(), content_type=content_type or "application/octet-stream")
    response["Last-Modified"] = http_date(modified)
    response["Cache-Control"] = "no-cache"  # revalidate: a new release's files show at once
    if encoding:
        response["Content-Encoding"] = encoding
    return response
