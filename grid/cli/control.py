"""``grid control-proxy``: a local gRPC endpoint that signs every call for unmodified ArmoniK applications.

An ArmoniK application opens ``grpc.insecure_channel(endpoint)`` itself; pointed at this proxy, it
reaches the grid's control plane with every call signed by the client's key
(:mod:`facilitator_sdk.control_proxy`, docs/control-plane.md).
"""

from __future__ import annotations

import argparse
import os
import sys

from grid.cli.common import client_key, grid_home
from grid.cli.errors import CliError, ExitCode

__all__ = ["DEFAULT_LISTEN", "add_parser"]

DEFAULT_LISTEN = "127.0.0.1:5001"  # ArmoniK's own control plane listens on 5001


def control_endpoint(args: argparse.Namespace) -> str:
    """``--control``, else ``$GRID_CONTROL``, else the control plane of the grid running in ``$GRID_HOME``."""
    from grid.local import read_state

    endpoint = args.control or os.environ.get("GRID_CONTROL")
    if endpoint:
        return endpoint
    state = read_state(grid_home())
    if state is None or not state.get("control_endpoint"):
        raise CliError(
            f"no grid with a control plane running in {grid_home()}; "
            "start one with `grid up` or pass --control HOST:PORT",
            ExitCode.UNREACHABLE,
        )
    return state["control_endpoint"]


def cmd_control_proxy(args: argparse.Namespace) -> int:
    from facilitator_sdk.control_proxy import run

    upstream, key = control_endpoint(args), client_key(args)

    def ready(port: int) -> None:
        host = args.listen.rpartition(":")[0]
        print(f"control proxy: {host}:{port} -> {upstream}, signing as {key} (Ctrl-C stops it)", flush=True)

    try:
        run(args.listen, upstream, key, ready=ready)
    except OSError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    except KeyboardInterrupt:
        print("", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``grid control-proxy``."""
    p = sub.add_parser(
        "control-proxy", help="a local gRPC endpoint that signs and forwards ArmoniK calls to the control plane"
    )
    p.add_argument("--control", help="the control plane, HOST:PORT (default: $GRID_CONTROL, or the grid in $GRID_HOME)")
    p.add_argument("--key", help="the client key to sign with (default: $GRID_HOME/keys/client.key)")
    p.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"where to listen, HOST:PORT (default {DEFAULT_LISTEN}; port 0: any)"
    )
    p.set_defaults(func=cmd_control_proxy)
