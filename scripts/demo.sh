#!/usr/bin/env bash
# From a fresh clone: make the virtualenv, then run a sample job through a local grid.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/grid demo "$@"
