"""The miner's limits on a job's data plane, and the one error it raises (DESIGN.md §6; executor/errors.py).

Inputs, outputs, logs and artifacts cross the executor on behalf of a job the miner does not
trust, so every byte is counted against a limit here. :class:`DataPlaneError` carries the
:class:`~protocol.status.FailureReason` the job driver reports as ``job.failed``: these are the
job's own fault (a bad URL, an oversized or unsafe input, a missing output), never the grid's.
"""

from __future__ import annotations

from dataclasses import dataclass

from executor.errors import DataPlaneError

__all__ = ["DataPlaneError", "DataPolicy"]

GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class DataPolicy:
    """Limits of one job's transfers; sizes in bytes, times in seconds.

    ``max_input_bytes`` bounds each input and the job's inputs together (an unpacked zip
    counts its extracted bytes); ``max_output_bytes`` bounds each upload and all of them together.
    """

    allow_private_urls: bool = False
    max_input_bytes: int = GiB
    max_zip_entries: int = 10_000
    max_output_bytes: int = GiB
    max_artifact_bytes: int = MiB
    retries: int = 3
    retry_delay_s: float = 0.5  # first backoff delay; doubles per retry, capped at 10 s
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
