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
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # redis-py 8 reads with a 5 s socket timeout by default: exactly channels_redis's
                    # blocking-pop timeout, so idle consumers died with TimeoutError every ~5 s.
                    "hosts": [{"address": env("GRID_REDIS_URL", "redis://127.0.0.1:6379/0"), "socket_timeout": 30}],
                    "prefix": f"grid-{GRID_ROLE}",
                },
            }
        }
    return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


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

# Periodic work (grid/periodic.py): each role lists GRID_PERIODIC_TASKS = [(task path, seconds)].
GRID_PERIODIC = env("GRID_PERIODIC", "embedded")
GRID_PERIODIC_TASKS: list[tuple[str, float]] = []
CELERY_BROKER_URL = env("GRID_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

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
