"""The ``grid`` command: keys, the local grid, jobs, the registry and operators' status (``grid --help``).

``main(argv)`` builds the parser and runs; subcommands stay thin and call library code. Each
command group is a module here with an ``add_parser(subparsers)``: ``keys``, ``up`` (``up`` and
``demo``), ``registry``, ``jobs`` (``job …``); ``grid miner|validator status`` live in
``grid.operators``.
"""

from __future__ import annotations

import argparse

from grid import operators
from grid.cli import jobs, keys, registry, up

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grid", description="Gridmarket: a decentralized compute marketplace.")
    sub = parser.add_subparsers(dest="command", required=True)
    keys.add_parser(sub)
    up.add_parser(sub)
    registry.add_parser(sub)
    jobs.add_parser(sub)
    operators.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
