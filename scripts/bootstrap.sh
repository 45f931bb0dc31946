#!/usr/bin/env bash
# Create .venv and install Gridmarket with its dev tools; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bootstrap: Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "bootstrap: installing gridmarket[dev] into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    rm -f .venv/.installed-*
    touch "$stamp"
fi
scripts/build_launcher.sh  # optional: the process runtime's fast launcher, where a C compiler is
