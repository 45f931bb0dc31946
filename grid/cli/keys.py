"""``grid keys new|show``: ed25519 keys under ``$GRID_HOME/keys``."""

from __future__ import annotations

import argparse
import sys

from grid.cli.common import grid_home
from protocol.keys import Keypair

__all__ = ["add_parser"]


def cmd_keys_new(args: argparse.Namespace) -> int:
    path = grid_home() / "keys" / f"{args.name}.key"
    if path.exists() and not args.force:
        print(f"error: {path} already exists (use --force to replace it)", file=sys.stderr)
        return 1
    path.unlink(missing_ok=True)
    keypair = Keypair.generate()
    keypair.save(path)
    print(f"{args.name}: {keypair.hotkey}\n  written to {path} (mode 0600)")
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    path = grid_home() / "keys" / f"{args.name}.key"
    if not path.exists():
        print(
            f"error: no key {args.name!r} in {path.parent} (create it with `grid keys new {args.name}`)",
            file=sys.stderr,
        )
        return 1
    print(Keypair.load(path).hotkey)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``grid keys``."""
    keys = sub.add_parser("keys", help="create and show ed25519 keys under $GRID_HOME/keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="create a key")
    new.add_argument("name")
    new.add_argument("--force", action="store_true", help="replace an existing key")
    new.set_defaults(func=cmd_keys_new)
    show = keys_sub.add_parser("show", help="print a key's hotkey")
    show.add_argument("name")
    show.set_defaults(func=cmd_keys_show)
