"""The miner: endpoints for validators and executors, the executor pool.

| variable | default | meaning |
|---|---|---|
| GRID_MINER_VALIDATOR_HOTKEYS | (none) | comma-separated validator hotkeys allowed to connect (and the registry's) |
| GRID_FACILITATOR_API | (none) | the facilitator's HTTP root: announce our address there and follow its registry |
| GRID_FACILITATOR_HOTKEY | (none) | the facilitator's hotkey, which must sign the registry (needed with the API) |
| GRID_MINER_ADDRESS | (none) | the ws:// or wss:// root validators dial, e.g. ``wss://miner.example:443`` |
| GRID_REGISTRY_SYNC_S | 30 | how often to announce and fetch the registry |
| GRID_EXECUTOR_CLASSES | cpu.small:4:2 | ``CLASS:TOTAL[:WARM][:KEY=VALUE...]``, comma-separated (spec keys: |
|  |  | cpu, memory_mb, gpus, gpu_memory_mb, gpu_model; standard classes bring theirs; |
|  |  | gpu_share=N: N executors per GPU; docs/gpu.md) |
| GRID_MINER_EXECUTOR_URL | ws://127.0.0.1:8001/ws/executor/ | where spawned executors dial back |
| GRID_EXECUTOR_RUNTIME | process | the runtime executors run jobs with |
| GRID_EXECUTOR_MAX_OUTPUT | 1048576 | bytes of stdout / stderr returned inline per stream (then truncated) |
| GRID_EXECUTOR_MAX_LOG | 268435456 | bytes of stdout / stderr kept and uploaded per stream (more: killed) |
| GRID_EXECUTOR_MAX_INPUT | 1073741824 | bytes a job's inputs may download, and unpack, in all |
| GRID_EXECUTOR_MAX_UPLOAD | 1073741824 | bytes a job's outputs may upload, in all |
| GRID_EXECUTOR_MAX_ARTIFACTS | 1048576 | bytes of artifacts returned inline |
| GRID_EXECUTOR_ALLOW_PRIVATE_URLS | false | let client URLs (inputs, outputs) reach loopback and private addresses |
| GRID_EXECUTOR_PRELOAD_IMAGES | (none) | comma-separated images warm executors check ahead of jobs (docker runtime) |
| GRID_EXECUTOR_WORK_ROOT | $GRID_HOME/work | where executors make each job's directory |
| GRID_EXECUTOR_MAX_JOBS | 100 | jobs one executor serves, one after another, before a fresh one replaces it |
| GRID_EXECUTOR_PYTHON | this interpreter | python used to start executors (and to discover GPUs) |
| GRID_EXECUTOR_GPU_CHECK_S | 5 | how often a GPU executor checks its devices while its job runs |
| GRID_STREAMING_PORTS | 40000-40099 | public ports for streaming jobs' gateways (one per running streaming job) |
| GRID_STREAMING_ADDRESS | 127.0.0.1 | the address clients reach those ports at (signed in each job's readiness) |
| GRID_STREAMING_BIND | the address | where gateways listen (e.g. 0.0.0.0 behind NAT) |
| GRID_MINER_RESUME_GRACE_S | 15 | how long a validator's jobs go on after its connection drops, for it to reconnect |
|  |  | and resume them (0: cancel them at once) |
| GRID_RECEIPTS_PAGE_MAX | 5000 | most receipts served in one page of ``GET /api/v1/receipts`` (at most 10000) |
"""

import sys

from grid.settings.base import *  # noqa: F403
from grid.settings.base import CHANNEL_CAPACITY, database, env, env_list

GRID_ROLE = "miner"
GRID_KEY_FILE = env("GRID_KEY_FILE", str(GRID_HOME / "keys" / "miner.key"))  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "miner"]  # noqa: F405
DATABASES = {"default": database("miner")}
# Always in-process, whatever GRID_CHANNEL_LAYER says: the executor pool lives in this one
# process, and so do both ends of every relay (executor ↔ validator consumers). A relay through
# Redis bought nothing and lost what was in flight whenever Redis restarted (DESIGN.md §10).
CHANNEL_LAYERS = {
    "default": {"BACKEND": "node.channel_layer.InMemoryChannelLayer", "CONFIG": {"capacity": CHANNEL_CAPACITY}}
}
GRID_WEBSOCKET_ROUTES = "miner.routing.websocket_urlpatterns"
GRID_STARTUP = "miner.startup.on_startup"
ROOT_URLCONF = "miner.urls"  # receipt pages and health

MINER_VALIDATOR_HOTKEYS = env_list("GRID_MINER_VALIDATOR_HOTKEYS")
MINER_FACILITATOR_API = env("GRID_FACILITATOR_API", "")
MINER_FACILITATOR_HOTKEY = env("GRID_FACILITATOR_HOTKEY", "")
MINER_ADDRESS = env("GRID_MINER_ADDRESS", "")
MINER_REGISTRY_SYNC_S = float(env("GRID_REGISTRY_SYNC_S", "30"))
GRID_PERIODIC_TASKS = [("miner.tasks.sync_registry", MINER_REGISTRY_SYNC_S)]
MINER_EXECUTOR_CLASSES = env("GRID_EXECUTOR_CLASSES", "cpu.small:4:2")
MINER_EXECUTOR_URL = env("GRID_MINER_EXECUTOR_URL", "ws://127.0.0.1:8001/ws/executor/")
MINER_EXECUTOR_MAX_OUTPUT = int(env("GRID_EXECUTOR_MAX_OUTPUT", str(1024 * 1024)))
MINER_EXECUTOR_MAX_JOBS = int(env("GRID_EXECUTOR_MAX_JOBS", "100"))
if MINER_EXECUTOR_MAX_JOBS < 1:
    raise ValueError(f"GRID_EXECUTOR_MAX_JOBS must be at least 1, got {MINER_EXECUTOR_MAX_JOBS}")
MINER_EXECUTOR_PYTHON = env("GRID_EXECUTOR_PYTHON", sys.executable)
MINER_EXECUTOR_RUNTIME = env("GRID_EXECUTOR_RUNTIME", "process")
MINER_STREAMING_PORTS = env("GRID_STREAMING_PORTS", "40000-40099")
MINER_STREAMING_ADDRESS = env("GRID_STREAMING_ADDRESS", "127.0.0.1")
MINER_EXECUTOR_WORK_ROOT = env("GRID_EXECUTOR_WORK_ROOT", str(GRID_HOME / "work"))  # noqa: F405
MINER_RESUME_GRACE_S = float(env("GRID_MINER_RESUME_GRACE_S", "15"))
MINER_RECEIPTS_PAGE_MAX = int(env("GRID_RECEIPTS_PAGE_MAX", "5000"))
