"""Submit an HtcMock graph and wait for its result: a plain ArmoniK client (stock ``armonik`` only).

    python examples/armonik/htcmock_client.py ENDPOINT [--levels N] [--width W] [--partition P]

ENDPOINT is an ArmoniK control plane (``host:port``), reached with ``grpc.insecure_channel`` as
ArmoniK applications do; on Gridmarket, that of ``grid control-proxy``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import grpc
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

WORKER = Path(__file__).resolve().with_name("htcmock_worker.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--width", type=int, default=5)
    parser.add_argument("--partition", default="cpu.small")
    args = parser.parse_args()
    options = TaskOptions(
        max_duration=dt.timedelta(minutes=5),
        priority=1,
        max_retries=2,
        partition_id=args.partition,
        options={"command": json.dumps([sys.executable, str(WORKER)])},
    )
    started = time.monotonic()
    with grpc.insecure_channel(args.endpoint) as channel:
        session_id = ArmoniKSessions(channel).create_session(options, partition_ids=[args.partition])
        results = ArmoniKResults(channel)
        root = {"kind": "spine", "level": 0, "levels": args.levels, "width": args.width}
        payload = results.create_results({"root": json.dumps(root).encode()}, session_id)["root"].result_id
        output = results.create_results_metadata(["count"], session_id)["count"].result_id
        ArmoniKTasks(channel).submit_tasks(
            session_id, [TaskDefinition(payload_id=payload, expected_output_ids=[output])]
        )
        ArmoniKEvents(channel).wait_for_result_availability([output], session_id)
        count = int(results.download_result_data(output, session_id))
        ArmoniKSessions(channel).close_session(session_id)
    expected = args.levels * args.width + 1
    print(
        json.dumps(
            {
                "session_id": session_id,
                "tasks": count,
                "expected": expected,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )
    sys.exit(0 if count == expected else 1)


if __name__ == "__main__":
    main()
