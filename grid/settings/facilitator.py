"""The facilitator: public REST API, client event stream, validator endpoint.

| variable | default | meaning |
|---|---|---|
| GRID_VALIDATOR_HOTKEYS | (none) | comma-separated hotkeys allowed to connect as validators |
| GRID_CLIENT_HOTKEYS | * | hotkeys allowed to submit jobs (``*``: anyone with a key) |
| GRID_REDELIVER_S | 5 | re-send a job not yet acknowledged by its validator after this many seconds |
"""

from grid.settings.base import *  # noqa: F403
from grid.settings.base import channel_layers, database, env, env_list

GRID_ROLE = "facilitator"
GRID_KEY_FILE = env("GRID_KEY_FILE", str(GRID_HOME / "keys" / "facilitator.key"))  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "facilitator"]  # noqa: F405
ROOT_URLCONF = "facilitator.urls"
MIDDLEWARE = [*MIDDLEWARE, "facilitator.api.middleware.ApiErrorShapeMiddleware"]  # noqa: F405
DATABASES = {"default": database("facilitator")}
CHANNEL_LAYERS = channel_layers()
GRID_WEBSOCKET_ROUTES = "facilitator.routing.websocket_urlpatterns"
GRID_STARTUP = "facilitator.startup.on_startup"

FACILITATOR_VALIDATOR_HOTKEYS = env_list("GRID_VALIDATOR_HOTKEYS")
FACILITATOR_CLIENT_HOTKEYS = env_list("GRID_CLIENT_HOTKEYS", "*")
FACILITATOR_REDELIVER_S = float(env("GRID_REDELIVER_S", "5"))
