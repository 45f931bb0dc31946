#!/usr/bin/env bash
# Install the system packages the test suite needs: a real redis-server, Debian's chromium for
# the dashboard's browser tests (Playwright drives it; it never downloads a browser of its own),
# Debian's docker-compose for tests/compose, and a C compiler for the process runtime's launcher
# (scripts/build_launcher.sh). A no-op, and silent, when all are present.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "system_deps: please install: ${missing[*]} (needs root)" >&2
        exit 1
    fi
    echo "system_deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Built here too: bootstrap.sh runs first, on a machine that may have had no compiler yet.
"$(dirname "$0")/build_launcher.sh"
