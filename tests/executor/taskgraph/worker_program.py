"""A worker written with the stock ``armonik.worker`` SDK, knowing nothing of Gridmarket.

Its payload says what to do: ``upper:TEXT`` writes TEXT upper-cased followed by its inputs to its
expected output; ``fail:WHY`` answers an error output; ``raise:WHY`` raises in the processor;
``crash`` exits the process; ``sleep:S`` sleeps S seconds first; ``nothing`` ends writing nothing;
``delegate`` hands its output to a child task it submits (``upper:child``); ``pid`` writes its pid;
``stray`` notifies a result it does not own; ``wrote-then-fail:WHY`` writes its output, then
answers an error output; ``big:N`` writes N bytes.
"""

import os
import time

from armonik.common import Output, TaskDefinition
from armonik.worker import TaskHandler, armonik_worker


@armonik_worker()
def processor(task: TaskHandler) -> Output:
    mode, _, argument = task.payload.decode().partition(":")
    if mode == "sleep":
        time.sleep(float(argument))
        mode, argument = "upper", "slept"
    if mode == "upper":
        inputs = b"".join(task.data_dependencies[d] for d in task.data_dependencies)
        task.send_results({task.expected_results[0]: argument.upper().encode() + inputs})
    elif mode == "fail":
        return Output(argument)
    elif mode == "wrote-then-fail":
        task.send_results({task.expected_results[0]: b"half done"})
        return Output(argument)
    elif mode == "big":
        task.send_results({task.expected_results[0]: bytes(range(256)) * (int(argument) // 256)})
    elif mode == "raise":
        raise RuntimeError(argument)
    elif mode == "crash":
        os._exit(3)
    elif mode == "pid":
        task.send_results({task.expected_results[0]: str(os.getpid()).encode()})
    elif mode == "delegate":
        payload = task.create_results({"child-payload": b"upper:child"})["child-payload"].result_id
        task.submit_tasks([TaskDefinition(payload_id=payload, expected_output_ids=[task.expected_results[0]])])
    elif mode == "stray":
        task.send_results({"someone-elses": b"x"})
    return Output()


if __name__ == "__main__":
    processor.run()
