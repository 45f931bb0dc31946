#!/bin/sh
# The entrypoint of gridmarket/app: secrets from files, wait for the services, then one role.
#
#   grid-entrypoint ROLE            (the container's command)
#
# Roles:
#   facilitator | miner | dashboard  python -m grid.serve -b $GRID_BIND -p $GRID_PORT (uvicorn)
#   connector                        the validator: python -m django run_connector
#   celery                           celery -A grid.celery worker --beat (GRID_PERIODIC=celery)
#   migrate                          python -m django migrate, then ensure_admin for a validator
#   keys NAME...                     create $GRID_HOME/keys/NAME.key (kept) and write NAME.hotkey
#   help | any other command         run as given (`grid ...`, `python ...`, `sh`)
#
# Before the role starts:
# * every VAR_FILE of the list below is read into VAR (Docker/compose secrets, mounted files);
# * every hotkey variable whose value starts with `file:` is read from that file's first line
#   (GRID_FACILITATOR_HOTKEY=file:/keys/facilitator.hotkey);
# * the database of GRID_DATABASE_URL and, with GRID_CHANNEL_LAYER=redis or GRID_PERIODIC=celery,
#   the Redis of GRID_REDIS_URL are waited for (GRID_WAIT_S, default 60 s);
# * GRID_MIGRATE=1 applies the migrations first (the `migrate` role always does).
set -eu

for var in GRID_SECRET_KEY GRID_DATABASE_URL GRID_REDIS_URL GRID_STORAGE_SECRET \
        AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY POSTGRES_PASSWORD; do
    eval "file=\${${var}_FILE:-}"
    if [ -n "$file" ]; then
        [ -r "$file" ] || { echo "grid-entrypoint: ${var}_FILE=$file cannot be read" >&2; exit 1; }
        eval "export $var=\"\$(cat \"\$file\")\""
    fi
done
for var in GRID_FACILITATOR_HOTKEY GRID_VALIDATOR_HOTKEYS GRID_MINER_VALIDATOR_HOTKEYS GRID_TRUSTED_MINERS; do
    eval "value=\${$var:-}"
    case "$value" in file:*)
        file=${value#file:}
        [ -r "$file" ] || { echo "grid-entrypoint: $var=$value: no such file" >&2; exit 1; }
        eval "export $var=\"\$(head -n 1 \"\$file\")\"" ;;
    esac
done

role=${1:-help}
[ $# -eq 0 ] || shift

# The role's settings: the servers' own, the validator's for its connector and dashboard; celery
# and migrate serve every role and must be told (DJANGO_SETTINGS_MODULE=grid.settings.miner ...).
case "$role" in
    facilitator|miner) export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-grid.settings.$role} ;;
    connector|dashboard) export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-grid.settings.validator} ;;
    celery|migrate)
        [ -n "${DJANGO_SETTINGS_MODULE:-}" ] \
            || { echo "grid-entrypoint: $role needs DJANGO_SETTINGS_MODULE (grid.settings.ROLE)" >&2; exit 2; } ;;
esac

wait_for_services() {
    python3 - <<'PY'
import os, socket, sys, time
from urllib.parse import urlparse

targets = []
db = os.environ.get("GRID_DATABASE_URL", "")
if db.startswith(("postgres://", "postgresql://")):
    targets.append(("database", urlparse(db), 5432))
if os.environ.get("GRID_CHANNEL_LAYER") == "redis" or os.environ.get("GRID_PERIODIC") == "celery":
    targets.append(("redis", urlparse(os.environ.get("GRID_REDIS_URL", "redis://127.0.0.1:6379/0")), 6379))
deadline = time.monotonic() + float(os.environ.get("GRID_WAIT_S", "60"))
for name, url, port in targets:
    address = (url.hostname or "127.0.0.1", url.port or port)
    while True:
        try:
            socket.create_connection(address, timeout=2).close()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                sys.exit(f"grid-entrypoint: the {name} at {address[0]}:{address[1]} did not answer: {exc}")
            time.sleep(0.5)
PY
}

migrate() {
    echo "grid-entrypoint: applying migrations ($DJANGO_SETTINGS_MODULE)" >&2
    python3 -m django migrate --no-input
    if [ "$DJANGO_SETTINGS_MODULE" = grid.settings.validator ]; then
        python3 -m django ensure_admin  # the dashboard's admin login, printed (kept in $GRID_HOME)
    fi
}

case "$role" in
    facilitator|miner|dashboard)
        wait_for_services
        [ "${GRID_MIGRATE:-0}" != 1 ] || migrate
        exec python3 -m grid.serve -b "${GRID_BIND:-0.0.0.0}" -p "${GRID_PORT:-8000}" grid.asgi:application ;;
    connector)
        wait_for_services
        [ "${GRID_MIGRATE:-0}" != 1 ] || migrate
        exec python3 -m django run_connector ;;
    celery)
        wait_for_services
        export GRID_PERIODIC=celery
        # One node name per role: host-networked containers share the host's name.
        exec celery -A grid.celery worker --beat --loglevel "${GRID_LOG_LEVEL:-INFO}" \
            --hostname "${DJANGO_SETTINGS_MODULE##*.}@%h" --concurrency "${GRID_CELERY_CONCURRENCY:-2}" \
            --schedule "$GRID_HOME/celerybeat-schedule" ;;
    migrate)
        wait_for_services
        migrate ;;
    keys)
        [ $# -gt 0 ] || { echo "usage: grid-entrypoint keys NAME..." >&2; exit 2; }
        exec python3 - "$@" <<'PY'
import os, sys
from pathlib import Path
from protocol.keys import Keypair

keys = Path(os.environ.get("GRID_KEYS_DIR", Path(os.environ["GRID_HOME"]) / "keys"))
for name in sys.argv[1:]:
    keypair = Keypair.load_or_create(keys / f"{name}.key")
    (keys / f"{name}.hotkey").write_text(keypair.hotkey + "\n")
    print(f"{name}: {keypair.hotkey}")
PY
        ;;
    help)
        sed -n '2,22p' "$0"
        exit 0 ;;
    *)
        exec "$role" "$@" ;;
esac
