"""ASGI entry point for the roles that serve (facilitator, miner); the role's settings name its routes."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "grid.settings.facilitator")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

if getattr(settings, "GRID_STARTUP", None):
    import_string(settings.GRID_STARTUP)()

http_app = django_asgi_app
if settings.GRID_ROLE == "facilitator":
    from facilitator.storage.asgi import StreamingUploads

    http_app = StreamingUploads(django_asgi_app)  # signed PUTs stream into the store, past Django

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": URLRouter(import_string(settings.GRID_WEBSOCKET_ROUTES)),
    }
)

from django.core.signals import request_finished  # noqa: E402
from django.db import connections  # noqa: E402


def close_request_connections(**_: object) -> None:
    """Close the database connections of the HTTP request that just finished.

    Django runs each request's sync code on a thread of its own under ASGI (its
    ``ThreadSensitiveContext``), so a request's connection is never reused, whatever
    ``CONN_MAX_AGE`` says: it lingered until the collector found it, an idle SQLite connection
    with its page cache (a facilitator answering GETs kept ~35 open, +10 MiB). The consumers'
    connections live on the one shared sync thread and stay persistent.
    """
    connections.close_all()


request_finished.connect(close_request_connections, dispatch_uid="grid.close_request_connections")

from node.memory import freeze_startup_heap  # noqa: E402

freeze_startup_heap()
