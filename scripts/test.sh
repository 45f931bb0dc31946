#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, every test (slow integration tests and the compose
# stack included), then the suites that cross a channel layer again on a real Redis started here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/system_deps.sh

echo "== docker engine and test images" >&2
DOCKER_HOST="$(scripts/docker_engine.sh)"
export DOCKER_HOST
scripts/build_test_images.sh

# The images compose/ runs (tests/compose brings local-grid.yml up on them): about five minutes
# on a new machine (three debootstraps), seconds when only the app's sources changed.
echo "== compose images" >&2
scripts/build_images.sh
export GRID_REQUIRE_COMPOSE=1  # tests/compose fails, rather than skips, without them
export GRID_REQUIRE_LAUNCHER=1  # so do the grid-launch tests without .venv/bin/grid-launch

# The fuzz suite (tests/fuzz) runs derandomized here, so that a CI run can be repeated exactly.
export GRID_FUZZ_PROFILE="${GRID_FUZZ_PROFILE:-fuzz-ci}"

echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { echo "ruff format would change files: run .venv/bin/ruff format ." >&2; exit 1; }

echo "== pytest (in-memory channel layers)" >&2
.venv/bin/pytest -q -p no:cacheprovider "$@"

echo "== pytest (Redis channel layer)" >&2
redis_dir="$(mktemp -d)"
redis_port="$(.venv/bin/python -c 'from grid.local import free_port; print(free_port())')"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" \
    --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
trap 'kill "$(cat "$redis_dir/redis.pid")" 2>/dev/null || true; rm -rf "$redis_dir"' EXIT
GRID_CHANNEL_LAYER=redis GRID_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
    .venv/bin/pytest -q -p no:cacheprovider -m "redis_layer" "$@"
