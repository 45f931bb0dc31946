"""Settings every role shares. Every value comes from an environment variable with a default.

| variable | default | meaning |
|---|---|---|
| GRID_HOME | ./.grid | keys, databases, logs and objects of this grid |
| GRID_KEY_FILE | $GRID_HOME/keys/<role>.key | this party's ed25519 key (created on first use) |
| GRID_DATABASE_URL | sqlite under GRID_HOME | ``sqlite:///path`` or ``postgres://user:pass@host:port/db`` |
| GRID_CHANNEL_LAYER | memory | ``memory`` or ``redis`` |
| GRID_REDIS_URL | redis://127.0.0.1:6379/0 | channel layer / Celery broker |
| GRID_SECRET_KEY | generated into GRID_HOME | Django's SECRET_KEY |
| GRID_PERIODIC | embedded | periodic tasks run by ``embedded`` (a thread in the role) or ``celery`` (beat + workers) |
| GRID_LOG_LEVEL | INFO | |

Limits of the servers (``python -m grid.serve``: facilitator, miner, dashboard) and of their
websocket endpoints, per peer role (docs/configuration.md#limits); 0 turns a limit off:

| variable | default | meaning |
|---|---|---|
| GRID_MAX_FRAME_BYTES | 16777216 | largest websocket message accepted (more: closed with 1009) |
| GRID_HTTP_HEADER_TIMEOUT_S | 20 | a request's line and headers must arrive within this (else 408, closed) |
| GRID_HTTP_BODY_TIMEOUT_S | 60 | longest pause in a request body being received (else closed) |
| GRID_HTTP_KEEPALIVE_S | 30 | an idle kept-alive HTTP connection is closed after this |
| GRID_HTTP_MAX_HEADER_BYTES | 65536 | request line and headers, in bytes (else 431, closed) |
| GRID_WS_COMPRESSION | false | accept permessage-deflate on websockets (each connection holds ~300 KiB of zlib) |
| GRID_HTTP_MAX_CONNECTIONS | 2048 | open connections (HTTP and websocket) past which new HTTP requests get 503 |
| GRID_LIMITS_MAX_KEYS | 10000 | hotkeys / addresses each limit keeps track of at most |
| GRID_WS_CLIENT_CONNECTIONS | 64 | websockets open at once per client hotkey (facilitator's ``/ws/client/``) |
| GRID_WS_CLIENT_FRAME_RATE, _BURST | 200, 1000 | frames a second a client may send, and its burst |
| GRID_WS_VALIDATOR_CONNECTIONS | 4 | websockets open at once per validator hotkey (facilitator, miner) |
| GRID_WS_VALIDATOR_FRAME_RATE, _BURST | 2000, 20000 | frames a second a validator may send, and its burst |
| GRID_WS_EXECUTOR_CONNECTIONS | 4 | websockets open at once per executor key (miner's ``/ws/executor/``) |
| GRID_WS_EXECUTOR_FRAME_RATE, _BURST | 500, 2000 | frames a second an executor may send, and its burst |
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

GRID_ROLE = "base"
GRID_HOME = Path(os.environ.get("GRID_HOME", ".grid")).resolve()


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def env_bool(name: str, default: str) -> bool:
    value = env(name, default).strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"{name} must be true or false (1/0, yes/no, on/off), not {value!r}")
    return value in ("1", "true", "yes", "on")


def _secret_key() -> str:
    if "GRID_SECRET_KEY" in os.environ:
        return os.environ["GRID_SECRET_KEY"]
    path = GRID_HOME / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def database(role: str) -> dict:
    """One database per role: SQLite in WAL mode by default (fast commits), or PostgreSQL."""
    url = os.environ.get("GRID_DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parsed = urlparse(url)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.path.lstrip("/"),
            "USER": parsed.username or "",
            "PASSWORD": parsed.password or "",
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
        }
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else str(GRID_HOME / f"{role}.sqlite3")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            "transaction_mode": "IMMEDIATE",
        },
        "CONN_MAX_AGE": None,  # reopening costs more than the query, and re-runs the PRAGMAs
        "TEST": {"NAME": str(GRID_HOME / f"test_{role}.sqlite3")},
    }


def channel_layers() -> dict:
    if env("GRID_CHANNEL_LAYER", "memory") == "redis":
        return {
            "default": {
                "BACKEND": "node.channel_layer.ResilientRedisChannelLayer",  # survives a Redis restart
                "CONFIG": {
                    # redis-py 8 reads with a 5 s socket timeout by default: exactly channels_redis's
                    # blocking-pop timeout, so idle consumers died with TimeoutError every ~5 s.
                    "hosts": [{"address": env("GRID_REDIS_URL", "redis://127.0.0.1:6379/0"), "socket_timeout": 30}],
                    "prefix": f"grid-{GRID_ROLE}",
                    "capacity": CHANNEL_CAPACITY,
                },
            }
        }
    return {"default": {"BACKEND": "node.channel_layer.InMemoryChannelLayer", "CONFIG": {"capacity": CHANNEL_CAPACITY}}}


# Events a channel holds before the layer drops more (Channels' default, 100, silently dropped a
# client's pushes whenever a batch of more than 100 statuses for its jobs was stored at once).
CHANNEL_CAPACITY = 10_000


SECRET_KEY = _secret_key()
DEBUG = env("GRID_DEBUG", "0") == "1"
ALLOWED_HOSTS = env_list("GRID_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ASGI_APPLICATION = "grid.asgi.application"

INSTALLED_APPS = ["django.contrib.contenttypes", "channels"]
MIDDLEWARE: list[str] = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "grid.urls_empty"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# Periodic work (node/periodic.py): each role lists GRID_PERIODIC_TASKS = [(task path, seconds)].
GRID_PERIODIC = env("GRID_PERIODIC", "embedded")
GRID_PERIODIC_TASKS: list[tuple[str, float]] = []
CELERY_BROKER_URL = env("GRID_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# ---- Limits (docs/configuration.md#limits): the server's, and its websocket endpoints' per role --
# Read by grid/serve.py (uvicorn and node/http_timeouts.py) and node/consumers.py. 0: no limit.
GRID_MAX_FRAME_BYTES = int(env("GRID_MAX_FRAME_BYTES", str(16 * 1024 * 1024)))
GRID_HTTP_HEADER_TIMEOUT_S = float(env("GRID_HTTP_HEADER_TIMEOUT_S", "20"))
GRID_HTTP_BODY_TIMEOUT_S = float(env("GRID_HTTP_BODY_TIMEOUT_S", "60"))
GRID_HTTP_KEEPALIVE_S = float(env("GRID_HTTP_KEEPALIVE_S", "30"))
GRID_HTTP_MAX_HEADER_BYTES = int(env("GRID_HTTP_MAX_HEADER_BYTES", "65536"))
GRID_HTTP_MAX_CONNECTIONS = int(env("GRID_HTTP_MAX_CONNECTIONS", "2048"))
GRID_WS_COMPRESSION = env("GRID_WS_COMPRESSION", "false").lower() in ("1", "true", "yes")
GRID_LIMITS_MAX_KEYS = int(env("GRID_LIMITS_MAX_KEYS", "10000"))
# Per peer role: (connections per hotkey, frames a second, burst). Clients are anyone with a key;
# validators are registered and carry every job's statuses; executors are the miner's own.
_WS_DEFAULTS = {"client": (64, 200, 1000), "validator": (4, 2000, 20000), "executor": (4, 500, 2000)}
GRID_WS_LIMITS = {
    role: {
        "connections": int(env(f"GRID_WS_{role.upper()}_CONNECTIONS", str(connections))),
        "frame_rate": float(env(f"GRID_WS_{role.upper()}_FRAME_RATE", str(rate))),
        "frame_burst": float(env(f"GRID_WS_{role.upper()}_FRAME_BURST", str(burst))),
    }
    for role, (connections, rate, burst) in _WS_DEFAULTS.items()
}
# ---- end of limits ------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("GRID_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "uvicorn.error": {"level": "WARNING"},
    },
}
