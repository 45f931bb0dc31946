#!/usr/bin/env bash
# Regenerates the Python modules of our ArmoniK API v1 protos (protocol/armonik_api/protos/*.proto):
# *_pb2.py, *_pb2.pyi and *_pb2_grpc.py, written next to their sources. Run from the repository root.
# Commit the result: tests/protocol/test_armonik_wire.py fails when it drifts from the sources.
#   scripts/gen_protos.sh [OUT]   OUT: write the tree there instead (the test regenerates into a temp dir)
#   PYTHON=...                    the interpreter with grpcio-tools (default .venv/bin/python)
set -euo pipefail
OUT=.
if [[ $# -gt 0 ]]; then
    mkdir -p "$1"
    OUT="$(cd "$1" && pwd)"
fi
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"

"$PYTHON" -m grpc_tools.protoc -I . --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
    protocol/armonik_api/protos/*.proto

# Build them in a descriptor pool of their own (protocol/armonik_api/pool.py), not protobuf's default:
# they keep ArmoniK's full names, and the stock armonik package in the same process would clash.
for module in "$OUT"/protocol/armonik_api/protos/*_pb2.py; do
    sed -i \
        -e 's/^from google.protobuf import descriptor_pool as _descriptor_pool$/from protocol.armonik_api.pool import POOL as _armonik_pool/' \
        -e 's/_descriptor_pool\.Default()\.AddSerializedFile/_armonik_pool.AddSerializedFile/' \
        "$module"
    if grep -q "_descriptor_pool" "$module"; then
        echo "gen_protos: $module still uses the default descriptor pool" >&2
        exit 1
    fi
done
