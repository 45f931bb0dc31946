"""ASGI entry point for the roles that serve (facilitator, miner); the role's settings name its routes."""

import os

from node.http_handler import get_asgi_application

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

from node.lifespan import Lifespan  # noqa: E402

# Async work that lives as long as the server, on its loop (the facilitator's control plane).
hooks = [import_string(path) for path in getattr(settings, "GRID_LIFESPAN", ())]
application = Lifespan(
    ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": URLRouter(import_string(settings.GRID_WEBSOCKET_ROUTES)),
        }
    ),
    *hooks,
)

from node.memory import freeze_startup_heap  # noqa: E402

freeze_startup_heap()
