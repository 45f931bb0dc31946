"""Settings for the in-process tests: all three apps in one Django, a throwaway GRID_HOME.

Real deployments run each role with its own settings module and database; consumer and
model tests only need the apps installed side by side. Integration tests start real
processes with the real role settings (``grid.local.LocalGrid``).
"""

import os
import tempfile

os.environ.setdefault("GRID_HOME", tempfile.mkdtemp(prefix="grid-test-home-"))

from grid.settings import miner as _miner
from grid.settings import validator as _validator
from grid.settings.facilitator import *  # noqa: F403

# The validator dashboard's apps (auth, sessions, admin…): its tests swap in the validator's site settings.
INSTALLED_APPS = [*INSTALLED_APPS, "validator", "miner", *_validator.DASHBOARD_APPS]  # noqa: F405
GRID_ROLE = "test"
GRID_KEY_FILE = str(GRID_HOME / "keys" / "test-server.key")  # noqa: F405
GRID_VALIDATOR_TEST_KEY_FILE = str(GRID_HOME / "keys" / "test-validator.key")  # noqa: F405

MINER_EXECUTOR_CLASSES = _miner.MINER_EXECUTOR_CLASSES
MINER_EXECUTOR_URL = _miner.MINER_EXECUTOR_URL
MINER_EXECUTOR_MAX_OUTPUT = _miner.MINER_EXECUTOR_MAX_OUTPUT
MINER_EXECUTOR_PYTHON = _miner.MINER_EXECUTOR_PYTHON
MINER_EXECUTOR_RUNTIME = _miner.MINER_EXECUTOR_RUNTIME
MINER_EXECUTOR_WORK_ROOT = _miner.MINER_EXECUTOR_WORK_ROOT
MINER_STREAMING_PORTS = _miner.MINER_STREAMING_PORTS
MINER_STREAMING_ADDRESS = _miner.MINER_STREAMING_ADDRESS
MINER_RESUME_GRACE_S = _miner.MINER_RESUME_GRACE_S
MINER_VALIDATOR_HOTKEYS: list[str] = []
VALIDATOR_FACILITATOR_URL = _validator.VALIDATOR_FACILITATOR_URL
VALIDATOR_FACILITATOR_HOTKEY = _validator.VALIDATOR_FACILITATOR_HOTKEY
VALIDATOR_MINERS: list[str] = []
FACILITATOR_VALIDATOR_HOTKEYS: list[str] = []

from grid.settings import facilitator as _facilitator  # noqa: E402

GRID_STORAGES = _facilitator.GRID_STORAGES
