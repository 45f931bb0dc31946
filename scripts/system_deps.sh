#!/usr/bin/env bash
# Install the system packages the test suite needs (a real redis-server); no-op when present.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
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
