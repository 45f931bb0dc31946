#!/usr/bin/env bash
# Build .venv/bin/grid-launch (executor/runtimes/launch.c): the process runtime starts each job
# under its limits with one small static exec instead of util-linux's setpriv and prlimit (two
# dynamically linked ones). Optional: without a C compiler the runtime uses setpriv and prlimit.
set -euo pipefail
cd "$(dirname "$0")/.."
source=executor/runtimes/launch.c
target=.venv/bin/grid-launch
[ -d .venv/bin ] || { echo "build_launcher: no .venv yet (run scripts/bootstrap.sh)" >&2; exit 1; }
if [ -x "$target" ] && [ "$target" -nt "$source" ]; then
    exit 0
fi
compiler="$(command -v cc || command -v gcc || true)"
if [ -z "$compiler" ]; then
    echo "build_launcher: no C compiler; the process runtime will use setpriv and prlimit (slower job starts)" >&2
    exit 0
fi
flags=(-O2 -Wall -Wextra -Werror)
# Static when the C library allows it: no dynamic loader at each job's start.
if ! "$compiler" "${flags[@]}" -static -o "$target.new" "$source" 2>/dev/null; then
    "$compiler" "${flags[@]}" -o "$target.new" "$source"
fi
mv "$target.new" "$target"
echo "build_launcher: built $target" >&2
