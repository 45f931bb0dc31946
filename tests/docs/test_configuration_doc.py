"""docs/configuration.md names every environment variable a role reads (issue 15 §6).

A setting is what the code reads from the environment: ``env("GRID_X", …)`` in the settings
modules, ``environ.get("GRID_X")`` / ``os.environ["GRID_X"]`` anywhere in the parties. The
variables the miner sets for its own executors and jobs (the job contract, the executor's
connection) are not settings and are listed here by name.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("grid", "node", "protocol", "facilitator", "validator", "miner", "executor", "facilitator_sdk")
READ = re.compile(r"""(?:\benv|environ\.get|os\.getenv|environ\[|environ\.setdefault)\(?\s*["'](GRID_[A-Z0-9_]+)["']""")
# Set by the miner (or the executor) for the processes it starts, never by an operator.
INTERNAL = {
    "GRID_MINER_URL",  # the executor dials it (the miner passes its own executor endpoint)
    "GRID_MINER_HOTKEY",
    "GRID_FORKSERVER_ID",
    "GRID_EXECUTOR_GPUS",
    "GRID_JOB_ID",  # the job contract (docs/data-plane.md)
    "GRID_INPUT_DIR",
    "GRID_OUTPUT_DIR",
    "GRID_ARTIFACTS_DIR",
}


def settings_read() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in READ.findall(path.read_text()):
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_the_pattern_sees_the_ways_settings_are_read() -> None:
    sample = (
        'a = env("GRID_A", "1")\nb = os.environ.get("GRID_B")\nc = os.environ["GRID_C"]\nd = environ.get(\n "GRID_D")'
    )
    assert READ.findall(sample) == ["GRID_A", "GRID_B", "GRID_C", "GRID_D"]


def test_every_setting_a_role_reads_is_in_docs_configuration() -> None:
    read = settings_read()
    assert len(read) > 50, "the scan found too few settings: has the way they are read changed?"
    documented = set(re.findall(r"GRID_[A-Z0-9_]+", (ROOT / "docs" / "configuration.md").read_text()))
    missing = {name: where for name, where in read.items() if name not in documented and name not in INTERNAL}
    assert not missing, f"settings read but not in docs/configuration.md: {missing}"
