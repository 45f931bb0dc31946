"""The validator: connector to the facilitator, job driver, routing over miners.

| variable | default | meaning |
|---|---|---|
| GRID_FACILITATOR_URL | ws://127.0.0.1:8000/ws/validator/ | the facilitator's validator endpoint |
| GRID_FACILITATOR_HOTKEY | (any) | pin the facilitator's hotkey (needed with the API below: it signs the registry) |
| GRID_FACILITATOR_API | (none) | the facilitator's HTTP root: dial the miners its registry lists |
| GRID_REGISTRY_SYNC_S | 30 | how often to fetch the registry |
| GRID_MINERS | (none) | without a facilitator API: comma-separated ``HOTKEY@ws://host:port/ws/validator/`` |
| GRID_VALIDATOR_STATUS_FILE | $GRID_HOME/validator-status.json | the connector's connections, as JSON |
| GRID_QUEUE_TIMEOUT_S | 300 | how long a job waits for a free executor before ``rejected`` (busy) |
| GRID_TRUSTED_MINERS | (none) | comma-separated hotkeys of miners trusted to cross-validate others |
| GRID_CROSSVAL_SAMPLE | 0.05 | share of completed batch jobs re-run on a trusted miner (and all ``on_trusted_miner``) |
| GRID_BLACKLIST_S | 86400 | how long a miner proven malicious stays blacklisted |
| GRID_SCORES_WINDOW_S | 3600 | the window scores are counted over |
| GRID_SCORES_EVERY_S | 60 | how often the score sheet is signed and published |
| GRID_RECEIPTS_FETCH_S | 60 | how often the miners' receipt pages are read |
| GRID_BLACKLIST_EXPIRE_S | 30 | how often expired blacklist entries are marked lifted |
| GRID_DASHBOARD_POLL_S | 0.5 | how often the dashboard reads new job events to push to browsers |
"""

from grid.settings.base import *  # noqa: F403
from grid.settings.base import channel_layers, database, env, env_list

GRID_ROLE = "validator"
GRID_KEY_FILE = env("GRID_KEY_FILE", str(GRID_HOME / "keys" / "validator.key"))  # noqa: F405
# The dashboard (validator/dashboard/) is a Django site served with these settings by its own
# process (`python -m grid.serve`); the connector ignores its apps.
DASHBOARD_APPS = [
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "validator.dashboard",
]
INSTALLED_APPS = [*INSTALLED_APPS, "validator", *DASHBOARD_APPS]  # noqa: F405
DATABASES = {"default": database("validator")}
CHANNEL_LAYERS = channel_layers()

VALIDATOR_FACILITATOR_URL = env("GRID_FACILITATOR_URL", "ws://127.0.0.1:8000/ws/validator/")
VALIDATOR_FACILITATOR_HOTKEY = env("GRID_FACILITATOR_HOTKEY", "") or None
VALIDATOR_MINERS = env_list("GRID_MINERS")
VALIDATOR_FACILITATOR_API = env("GRID_FACILITATOR_API", "")
VALIDATOR_REGISTRY_SYNC_S = float(env("GRID_REGISTRY_SYNC_S", "30"))
VALIDATOR_STATUS_FILE = env("GRID_VALIDATOR_STATUS_FILE", str(GRID_HOME / "validator-status.json"))  # noqa: F405
VALIDATOR_SCORES_EVERY_S = float(env("GRID_SCORES_EVERY_S", "60"))
VALIDATOR_RECEIPTS_FETCH_S = float(env("GRID_RECEIPTS_FETCH_S", "60"))
GRID_PERIODIC_TASKS = [
    ("validator.tasks.sync_registry", VALIDATOR_REGISTRY_SYNC_S),
    ("validator.tasks.fetch_receipts", VALIDATOR_RECEIPTS_FETCH_S),
    ("validator.tasks.publish_scores", VALIDATOR_SCORES_EVERY_S),
    ("validator.tasks.expire_blacklist", float(env("GRID_BLACKLIST_EXPIRE_S", "30"))),
]
VALIDATOR_QUEUE_TIMEOUT_S = float(env("GRID_QUEUE_TIMEOUT_S", "300"))
VALIDATOR_TRUSTED_MINERS = env_list("GRID_TRUSTED_MINERS")
VALIDATOR_CROSSVAL_SAMPLE = float(env("GRID_CROSSVAL_SAMPLE", "0.05"))
VALIDATOR_BLACKLIST_S = float(env("GRID_BLACKLIST_S", "86400"))
VALIDATOR_SCORES_WINDOW_S = float(env("GRID_SCORES_WINDOW_S", "3600"))

# -- the dashboard's site ------------------------------------------------------------------------
ROOT_URLCONF = "validator.urls"
GRID_WEBSOCKET_ROUTES = "grid.urls_empty.urlpatterns"  # it pushes with Server-Sent Events, no websocket
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",  # every page but the login's
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "validator.dashboard.middleware.ContentSecurityPolicy",
]
TEMPLATES = [
    {
        **TEMPLATES[0],  # noqa: F405
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"  # served by the site itself (validator/urls.py), from the apps' static/ folders
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "dashboard:login"
# Cookies do not tell ports apart: names of our own keep other sites on 127.0.0.1 out of them.
SESSION_COOKIE_NAME = "grid_validator_session"
CSRF_COOKIE_NAME = "grid_validator_csrftoken"
DASHBOARD_POLL_S = float(env("GRID_DASHBOARD_POLL_S", "0.5"))
