"""An HtcMock-style ArmoniK worker: sub-tasks submitted level by level by the workers, then aggregated.

Written with the stock ``armonik.worker`` SDK only: it runs on any ArmoniK, Gridmarket's included.
Its payload is JSON:

- ``{"kind": "spine", "level": L, "levels": N, "width": W}``: below level N, submits W - 2 leaf
  tasks, the spine of level L + 1, and an aggregator depending on all their outputs, to which it
  delegates its own output; at level N it writes ``1``;
- ``{"kind": "leaf"}``: writes ``1``;
- ``{"kind": "sum"}``: writes the sum of its inputs plus 2 (itself and the spine that made it).

The root spine's output is therefore the number of tasks in the graph: N * W + 1.
"""

from __future__ import annotations

import json

from armonik.common import Output, TaskDefinition
from armonik.worker import TaskHandler, armonik_worker


def _spine(task: TaskHandler, level: int, levels: int, width: int) -> None:
    (output,) = task.expected_results
    if level >= levels:
        task.send_results({output: b"1"})
        return
    leaves = max(0, width - 2)
    payloads = task.create_results(
        {
            "leaf": json.dumps({"kind": "leaf"}).encode(),
            "spine": json.dumps({"kind": "spine", "level": level + 1, "levels": levels, "width": width}).encode(),
            "sum": json.dumps({"kind": "sum"}).encode(),
        }
    )
    names = [f"leaf-{level}-{i}" for i in range(leaves)] + [f"spine-{level + 1}"]
    outputs = [result.result_id for result in task.create_results_metadata(names).values()]
    children = [TaskDefinition(payload_id=payloads["leaf"].result_id, expected_output_ids=[o]) for o in outputs[:-1]]
    children.append(TaskDefinition(payload_id=payloads["spine"].result_id, expected_output_ids=[outputs[-1]]))
    children.append(
        TaskDefinition(payload_id=payloads["sum"].result_id, data_dependencies=outputs, expected_output_ids=[output])
    )
    task.submit_tasks(children)


@armonik_worker()
def processor(task: TaskHandler) -> Output:
    payload = json.loads(task.payload)
    kind = payload.get("kind")
    if kind == "spine":
        _spine(task, int(payload["level"]), int(payload["levels"]), int(payload["width"]))
    elif kind == "leaf":
        task.send_results({task.expected_results[0]: b"1"})
    elif kind == "sum":
        total = sum(int(task.data_dependencies[d]) for d in task.data_dependencies) + 2
        task.send_results({task.expected_results[0]: str(total).encode()})
    else:
        return Output(f"unknown payload kind {kind!r}")
    return Output()


if __name__ == "__main__":
    processor.run()
