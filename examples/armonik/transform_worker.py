"""A plain data transform as an ArmoniK worker: each task's output is its payload's words reversed and
upper-cased, followed by its inputs. Stock ``armonik.worker`` only."""

from __future__ import annotations

from armonik.common import Output
from armonik.worker import TaskHandler, armonik_worker


@armonik_worker()
def processor(task: TaskHandler) -> Output:
    words = task.payload.decode("utf-8", errors="replace").split()
    inputs = b"".join(task.data_dependencies[d] for d in sorted(task.data_dependencies))
    task.send_results({task.expected_results[0]: " ".join(reversed(words)).upper().encode() + inputs})
    return Output()


if __name__ == "__main__":
    processor.run()
