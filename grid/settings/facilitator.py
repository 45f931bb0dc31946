"""The facilitator: public REST API, client event stream, validator endpoint.

| variable | default | meaning |
|---|---|---|
| GRID_VALIDATOR_HOTKEYS | (none) | comma-separated validator hotkeys, registered (active) at every start |
| GRID_VALIDATOR_STAKE | 1.0 | the stake those validators are registered with |
| GRID_REGISTRY | database | who takes part: ``database`` (miners announce themselves) or ``static:/path/x.json`` |
| GRID_REGISTRY_OPEN | true | an unknown miner that announces itself is registered (stake 0); ``false``: 403 |
| GRID_CLIENT_HOTKEYS | * | hotkeys allowed to submit jobs (``*``: anyone with a key) |
| GRID_REDELIVER_S | 5 | re-send a job not yet acknowledged by its validator after this many seconds |
| GRID_QUEUE_TIMEOUT_S | 300 | the validators' queue wait: the store links of a job outlive it |
| GRID_STORAGE | local | object store backend: ``local`` or ``s3`` |
| GRID_STORAGE_ROOT | $GRID_HOME/objects | where the local store keeps objects |
| GRID_STORAGE_URL | /objects/ | prefix of signed URLs (absolute for executors: ``http://host:8000/objects/``) |
| GRID_STORAGE_SECRET | derived from SECRET_KEY | HMAC key of the local store's signed URLs |
| GRID_STORAGE_MAX_SIZE | (none) | largest object accepted, in bytes |
| GRID_S3_BUCKET | (none) | the S3 store's bucket; credentials from the usual ``AWS_*`` variables |
| GRID_S3_ENDPOINT_URL, GRID_S3_REGION | (AWS) | an S3-compatible server, its region |
| GRID_S3_PREFIX, GRID_S3_ADDRESSING_STYLE | | key prefix in the bucket; ``path`` or ``virtual`` |
| GRID_API_RATE, GRID_API_BURST | 500, 1000 | requests a second per signing hotkey, and its burst (else 429) |
| GRID_API_ADDRESS_RATE, GRID_API_ADDRESS_BURST | 100, 200 | the same for unsigned requests, per peer address |

The store's signed URLs (``/objects/``) are not rate limited; see docs/configuration.md#limits,
which also lists the server limits every role shares (grid/settings/base.py).
"""

from grid.settings.base import *  # noqa: F403
from grid.settings.base import channel_layers, database, env, env_bool, env_list

GRID_ROLE = "facilitator"
GRID_KEY_FILE = env("GRID_KEY_FILE", str(GRID_HOME / "keys" / "facilitator.key"))  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "facilitator"]  # noqa: F405
ROOT_URLCONF = "facilitator.urls"
# Async-capable, all of them: a request crosses no thread before its view (see the middleware).
MIDDLEWARE = [
    "facilitator.api.middleware.ContentLengthMiddleware",
    "facilitator.api.middleware.ApiErrorShapeMiddleware",
]
DATABASES = {"default": database("facilitator")}
CHANNEL_LAYERS = channel_layers()
GRID_WEBSOCKET_ROUTES = "facilitator.routing.websocket_urlpatterns"
GRID_STARTUP = "facilitator.startup.on_startup"

FACILITATOR_VALIDATOR_HOTKEYS = env_list("GRID_VALIDATOR_HOTKEYS")
FACILITATOR_VALIDATOR_STAKE = float(env("GRID_VALIDATOR_STAKE", "1.0"))
GRID_REGISTRY = env("GRID_REGISTRY", "database")  # parsed by facilitator.registry.backends
FACILITATOR_REGISTRY_OPEN = env_bool("GRID_REGISTRY_OPEN", "true")
FACILITATOR_CLIENT_HOTKEYS = env_list("GRID_CLIENT_HOTKEYS", "*")
FACILITATOR_REDELIVER_S = float(env("GRID_REDELIVER_S", "5"))
FACILITATOR_QUEUE_WAIT_S = float(env("GRID_QUEUE_TIMEOUT_S", "300"))


def _storages() -> dict:
    limit = env("GRID_STORAGE_MAX_SIZE", "")
    common = {"max_size": int(limit)} if limit else {}
    if env("GRID_STORAGE", "local") == "s3":
        options = {
            "bucket": env("GRID_S3_BUCKET", ""),
            "prefix": env("GRID_S3_PREFIX", ""),
            "endpoint_url": env("GRID_S3_ENDPOINT_URL", "") or None,
            "region_name": env("GRID_S3_REGION", "") or None,
            "addressing_style": env("GRID_S3_ADDRESSING_STYLE", "") or None,
        }
        return {"default": {"BACKEND": "s3", "OPTIONS": {**options, **common}}}
    options = {
        "root": env("GRID_STORAGE_ROOT", str(GRID_HOME / "objects")),  # noqa: F405
        "base_url": env("GRID_STORAGE_URL", "/objects/"),
        "secret": env("GRID_STORAGE_SECRET", "") or None,
    }
    return {"default": {"BACKEND": "local", "OPTIONS": {**options, **common}}}


GRID_STORAGES = _storages()


# ---- Limits (docs/configuration.md#limits): REST requests per hotkey, 429 past them ------------
# facilitator/api/middleware.py RateLimitMiddleware, first in line. 0: no limit.
GRID_API_RATE = float(env("GRID_API_RATE", "500"))
GRID_API_BURST = float(env("GRID_API_BURST", "1000"))
GRID_API_ADDRESS_RATE = float(env("GRID_API_ADDRESS_RATE", "100"))
GRID_API_ADDRESS_BURST = float(env("GRID_API_ADDRESS_BURST", "200"))
MIDDLEWARE = ["facilitator.api.middleware.RateLimitMiddleware", *MIDDLEWARE]
# ---- end of limits ------------------------------------------------------------------------------

# ---- The control plane (docs/control-plane.md): ArmoniK's gRPC API v1 on its own port --------
GRID_CONTROL_PORT = int(env("GRID_CONTROL_PORT", "0"))  # 0: not served
GRID_CONTROL_HOST = env("GRID_CONTROL_HOST", "127.0.0.1")
GRID_CONTROL_MAX_MESSAGE_BYTES = int(env("GRID_CONTROL_MAX_MESSAGE_BYTES", str(4 * 1024 * 1024)))
GRID_CONTROL_PAGE_SIZE_MAX = int(env("GRID_CONTROL_PAGE_SIZE_MAX", "1000"))
GRID_CONTROL_CHUNK_BYTES = int(env("GRID_CONTROL_CHUNK_BYTES", str(256 * 1024)))  # result data a stream message
GRID_CONTROL_EVENTS_RECHECK_S = float(env("GRID_CONTROL_EVENTS_RECHECK_S", "1.0"))  # an idle event stream looks again
GRID_CONTROL_DISPATCH = env("GRID_CONTROL_DISPATCH", "1") not in ("0", "false", "no")  # off: tasks stay queued
GRID_CONTROL_BATCH_TASKS = int(env("GRID_CONTROL_BATCH_TASKS", "100"))  # the most tasks one batch job runs
GRID_CONTROL_DISPATCH_SWEEP_S = float(env("GRID_CONTROL_DISPATCH_SWEEP_S", "5"))  # queued tasks no dispatch took
GRID_PERIODIC_TASKS = (
    [("facilitator.tasks.dispatch_queued_tasks", GRID_CONTROL_DISPATCH_SWEEP_S)] if GRID_CONTROL_DISPATCH else []
)
GRID_LIFESPAN = ["facilitator.control.server.start", "facilitator.control.server.stop"]
