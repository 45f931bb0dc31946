"""The ``grid`` command: keys, the local grid, jobs, the registry and operators' status (``grid --help``).

``main(argv)`` builds the parser and runs; subcommands stay thin and call library code. Each
command group is a module here with an ``add_parser(subparsers)``: ``keys``, ``up`` (``up`` and
``demo``), ``registry``, ``jobs`` (``job …``, with ``job_run``),
``monitor`` (a local web page, :mod:`grid.monitor`), ``control`` (``control-proxy``), ``taskgraph``
(``session …``, ``task …``: the control plane), ``completion``; ``grid
miner|validator status`` live in ``grid.operators``. Every command fails the same way
(:mod:`grid.cli.errors`): one line on stderr and a documented exit code.
"""

from __future__ import annotations

import argparse

from grid import operators
from grid.cli import completion, control, jobs, keys, monitor, registry, taskgraph, up
from grid.cli.errors import EXIT_CODES_HELP, run_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grid",
        description="Gridmarket: a decentralized compute marketplace.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    keys.add_parser(sub)
    up.add_parser(sub)
    registry.add_parser(sub)
    jobs.add_parser(sub)
    monitor.add_parser(sub)
    control.add_parser(sub)
    taskgraph.add_parsers(sub)
    operators.add_parsers(sub)
    completion.add_parser(sub, parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(run_command(args.func, args))
