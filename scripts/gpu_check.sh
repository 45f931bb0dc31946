#!/usr/bin/env bash
# A GPU job end to end on this machine's real GPU (docs/gpu.md), unattended, in a few minutes:
#
#   1. the driver: nvidia-smi lists the GPUs (none: exit 2, nothing else is tried)
#   2. a virtualenv with gridmarket[gpu] (nvidia-ml-py) and a CUDA package from PyPI
#      ($GPU_CHECK_PACKAGE, default cupy-cuda12x[ctk]: CuPy with its CUDA runtime wheels)
#   3. discovery: python -m executor.gpus, as the miner sees the GPUs
#   4. a local grid (facilitator, validator, miner; the process runtime) whose miner offers one
#      executor of a class made from discovery: gpu.check, 1 GPU, that GPU's model and memory
#   5. a job on it that prints GRID_GPUS / CUDA_VISIBLE_DEVICES, runs `nvidia-smi -L` and a CUDA
#      computation with the package, checked against the CPU's answer
#   6. the job's receipts on the miner, which must name the GPU it ran on
#
# Every step prints what it saw; the exit status is 0 when all passed, 1 when one failed, 2 on a
# machine without an NVIDIA GPU. Run from anywhere in a clone: scripts/gpu_check.sh
#
# Environment: GPU_CHECK_PYTHON (python3.11+ to build the venv with; default python3),
# GPU_CHECK_VENV (default .venv-gpu-check in the clone, kept for a second run),
# GPU_CHECK_PACKAGE (pip requirement of the CUDA check; "" skips it), GPU_CHECK_SKIP_INSTALL=1
# (use the venv as it is: no pip), GPU_CHECK_HOME (the grid's home; default a temporary
# directory, removed at the end).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
step() { printf '\n== %s\n' "$*"; }

step "1. the NVIDIA driver"
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "no nvidia-smi on PATH: this machine has no NVIDIA driver (nothing to check)"
    exit 2
fi
if ! listing=$(nvidia-smi -L 2>&1) || [ -z "$listing" ]; then
    echo "nvidia-smi lists no GPU: ${listing:-no output}"
    exit 2
fi
echo "$listing"
nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version --format=csv

step "2. the virtualenv (${GPU_CHECK_VENV:-.venv-gpu-check})"
venv=${GPU_CHECK_VENV:-$repo/.venv-gpu-check}
package=${GPU_CHECK_PACKAGE-cupy-cuda12x[ctk]}
if [ "${GPU_CHECK_SKIP_INSTALL:-}" != 1 ]; then
    if [ ! -x "$venv/bin/python" ]; then
        "${GPU_CHECK_PYTHON:-python3}" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e ".[gpu]" ${package:+"$package"}
fi
"$venv/bin/python" -m pip list 2>/dev/null | grep -i -E '^(gridmarket|nvidia-ml-py|cupy|torch)' || true

step "3. discovery (python -m executor.gpus)"
"$venv/bin/python" -m executor.gpus

step "4-6. a local grid, a GPU job, its receipts"
export GPU_CHECK_PACKAGE="$package"
exec "$venv/bin/python" - <<'PY'
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from facilitator_sdk import Client, JobError, JobSpec
from grid.local import LocalGrid, free_port
from miner.executors.gpus import discover

gpus, notes = discover(sys.executable)
if not gpus:
    print("discovery found no GPU:", *notes, sep="\n  ")
    sys.exit(1)
gpu = gpus[0]
# A class made from what discovery saw: one executor with the first GPU's memory (the miner's
# manifest names its model, from the same discovery).
cls = f"gpu.check:1:1:cpu=2:memory_mb=8192:gpus=1:gpu_memory_mb={gpu.memory_mb}"
print(f"GPU 0: {gpu.name}, {gpu.memory_mb} MB, {gpu.uuid}")
print(f"executor class: {cls}")

CHECK = r'''
import os, subprocess, sys
print("GRID_GPUS            =", os.environ.get("GRID_GPUS"))
print("CUDA_VISIBLE_DEVICES =", os.environ.get("CUDA_VISIBLE_DEVICES"))
print("nvidia-smi -L:")
print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.rstrip())
package = os.environ.get("CHECK_PACKAGE", "")
if not package:
    print("CUDA check: skipped (GPU_CHECK_PACKAGE is empty)")
    sys.exit(0)
import cupy, numpy
count = cupy.cuda.runtime.getDeviceCount()
props = cupy.cuda.runtime.getDeviceProperties(0)
print(f"CUDA: cupy {cupy.__version__}, runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
      f"driver {cupy.cuda.runtime.driverGetVersion()}, {count} device(s) visible")
print("device 0:", props["name"].decode(), f"{props['totalGlobalMem'] // 2**20} MiB")
x = cupy.arange(1 << 20, dtype=cupy.float64)
gpu_sum = float((x * x).sum())
cpu_sum = float((numpy.arange(1 << 20, dtype=numpy.float64) ** 2).sum())
print(f"sum of squares below 2**20: GPU {gpu_sum:.6e}, CPU {cpu_sum:.6e}")
if count != 1 or abs(gpu_sum - cpu_sum) > 1e-6 * cpu_sum:
    print("CUDA check FAILED")
    sys.exit(1)
print("CUDA check passed")
'''

keep = os.environ.get("GPU_CHECK_HOME")
home = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="gpu-check-"))
grid = LocalGrid(
    home,
    facilitator_port=free_port(),
    miner_port=free_port(),
    executor_classes=cls,
)
ok = False
try:
    started = time.monotonic()
    grid.start(timeout=120)
    print(f"grid up in {time.monotonic() - started:.1f}s at {grid.facilitator_url} (home {home})")
    log = (home / "logs" / "miner.log").read_text(errors="replace")
    print(*[line for line in log.splitlines() if "GPU binding" in line] or ["(no GPU binding logged)"], sep="\n")
    spec = JobSpec(
        command=[sys.executable, "-c", CHECK],
        executor_class="gpu.check",
        env={"CHECK_PACKAGE": os.environ.get("GPU_CHECK_PACKAGE", "")},
        limits={"cpu": 2, "memory_mb": 8192},
        timing={"execution": 600},
        max_attempts=1,
    )
    with Client(grid.facilitator_url, home / "client.key") as client:
        try:
            job = client.run(spec, timeout=900)
        except JobError as exc:
            print(f"the job ended {exc.status}: {exc.reason}: {exc}")
            failure = exc.job.failure or {}
            print(failure.get("stdout_tail", ""), failure.get("stderr_tail", ""), sep="\n")
            sys.exit(1)
    print(f"job {job.job_id} {job.status}; its output:")
    print(job.result.stdout.rstrip())
    if job.result.stderr.strip():
        print("stderr:", job.result.stderr.rstrip()[-2000:])
    for _ in range(50):
        with sqlite3.connect(home / "miner.sqlite3") as db:
            rows = db.execute("SELECT receipt FROM miner_minerreceipt WHERE job_id = ?", (job.job_id,)).fetchall()
        if len(rows) == 3:
            break
        time.sleep(0.2)
    receipts = [json.loads(row[0])["payload"] for row in rows]
    for payload in receipts:
        print(f"receipt {payload['kind']:8} gpus={payload.get('gpus')}")
    bound = {tuple(payload.get("gpus") or ()) for payload in receipts}
    ok = len(receipts) == 3 and len(bound) == 1 and () not in bound
    ok = ok and next(iter(bound))[0] in job.result.stdout
    print("\nGPU check", "PASSED" if ok else "FAILED: the receipts do not name the job's GPU")
finally:
    grid.stop()
    if not keep:
        shutil.rmtree(home, ignore_errors=True)
sys.exit(0 if ok else 1)
PY
