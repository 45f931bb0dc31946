"""A fake of NVML (the ``pynvml`` module of nvidia-ml-py), for machines without a GPU.

``FakeNvml`` answers the calls :class:`executor.gpus.Nvml` makes, about the devices it is given;
:meth:`FakeNvml.lose` makes one stop answering as a fallen-off-the-bus GPU does
(``NVML_ERROR_GPU_IS_LOST``). ``write_fake_smi`` writes a fake ``nvidia-smi`` executable for
processes (an executor, a job) that cannot be handed a Python object.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FakeGpu", "FakeNvml", "write_fake_smi"]

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_GPU_IS_LOST = 15


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA GeForce RTX 4090"
    memory_mb: int = 24564  # what a "24 GB" card reports
    lost: bool = False


class _Memory:
    def __init__(self, total: int) -> None:
        self.total, self.free, self.used = total, total, 0


class FakeNvml:
    """Looks like ``pynvml`` to :class:`executor.gpus.Nvml`; ``driver_loaded=False`` fails ``nvmlInit``."""

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    def __init__(self, gpus: list[FakeGpu] | None = None, *, driver_loaded: bool = True) -> None:
        self.devices = list(gpus or [])
        self.driver_loaded = driver_loaded
        self.initialised = 0
        self.calls: list[str] = []

    @classmethod
    def with_gpus(cls, count: int, **fields: object) -> FakeNvml:
        return cls([FakeGpu(uuid=f"GPU-fake-{i:04d}", **fields) for i in range(count)])  # type: ignore[arg-type]

    def lose(self, index: int) -> None:
        self.devices[index].lost = True

    def _ready(self) -> None:
        if self.initialised <= 0:
            raise self.NVMLError(NVML_ERROR_UNINITIALIZED)

    def _alive(self, device: FakeGpu) -> FakeGpu:
        if device.lost:
            raise self.NVMLError(NVML_ERROR_GPU_IS_LOST)
        return device

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if not self.driver_loaded:
            raise self.NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")
        self._ready()
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._ready()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._ready()
        if not 0 <= index < len(self.devices):
            raise self.NVMLError(NVML_ERROR_NOT_FOUND)
        return self.devices[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        self._ready()
        for device in self.devices:
            if device.uuid == uuid:
                return self._alive(device)
        raise self.NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        return self._alive(handle).uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> bytes:
        return self._alive(handle).name.encode()  # bytes, as older pynvml returns

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> _Memory:
        self._ready()
        return _Memory(self._alive(handle).memory_mb * 1024 * 1024)


def write_fake_smi(directory: Path, gpus: list[FakeGpu], lost_flag: Path | None = None) -> Path:
    """Write ``directory/nvidia-smi``: it answers ``--query-gpu`` (and ``--id=``) about ``gpus``, and
    ``-L`` as the real one; once ``lost_flag`` exists, it fails as with a GPU fallen off the bus."""
    rows = "\n".join(f"{i}, {gpu.uuid}, {gpu.name}, {gpu.memory_mb}" for i, gpu in enumerate(gpus))
    listing = "\n".join(f"GPU {i}: {gpu.name} (UUID: {gpu.uuid})" for i, gpu in enumerate(gpus))
    lost = f'[ -e "{lost_flag}" ] && {{ echo "Unable to determine the device handle: GPU is lost" >&2; exit 15; }}'
    script = f"""#!/bin/sh
# A fake nvidia-smi (tests/fake_nvml.py): no GPU is here.
{lost if lost_flag else ""}
case " $* " in
  *" -L "*) cat <<'EOF'
{listing}
EOF
  exit 0;;
esac
ids=""
for arg in "$@"; do case "$arg" in --id=*) ids="${{arg#--id=}}";; esac; done
cat <<'EOF' | while IFS= read -r line; do
{rows}
EOF
  uuid=$(echo "$line" | cut -d, -f2 | tr -d ' ')
  if [ -z "$ids" ] || echo ",$ids," | grep -q ",$uuid,"; then echo "$line"; fi
done
"""
    path = directory / "nvidia-smi"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
