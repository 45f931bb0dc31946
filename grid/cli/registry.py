"""``grid registry list|add|remove``: the facilitator's registry in ``$GRID_HOME``, edited in its database."""

from __future__ import annotations

import argparse
import os
import sys

from grid.cli.common import grid_home
from grid.cli.errors import CliError, ExitCode
from grid.cli.output import print_json
from grid.operators import table
from protocol.keys import Keypair

__all__ = ["add_parser"]


def _facilitator_registry():
    """The registry of the facilitator whose database is under ``$GRID_HOME`` (Django set up for it)."""
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ["DJANGO_SETTINGS_MODULE"] = "grid.settings.facilitator"
    django.setup()
    from facilitator.registry import get_registry

    return get_registry()


def _hotkey(name: str) -> str:
    """A hotkey as given, or the hotkey of the key file ``$GRID_HOME/keys/NAME.key``."""
    if len(name) == 64 and all(char in "0123456789abcdef" for char in name):
        return name
    path = grid_home() / "keys" / f"{name}.key"
    if not path.exists():
        raise CliError(
            f"{name!r} is neither a hotkey (64 hex characters) nor a key in {path.parent}", ExitCode.NOT_FOUND
        )
    return Keypair.load(path).hotkey


def cmd_registry(args: argparse.Namespace) -> int:
    from django.db import DatabaseError

    from facilitator.registry import RegistryError
    from protocol.registry import Role

    registry = _facilitator_registry()
    try:
        if args.registry_command == "list":
            neurons = registry.neurons()
            if args.json:
                print_json({"version": registry.version(), "neurons": [n.model_dump(mode="json") for n in neurons]})
                return 0
            print(f"registry version {registry.version()}: {len(neurons)} neuron(s)")
            rows = [
                (n.role, n.hotkey, f"{n.stake:g}", "active" if n.active else "inactive", n.address or "-")
                for n in neurons
            ]
            if rows:
                print("\n".join(table(["role", "hotkey", "stake", "state", "address"], rows, indent="")))
        elif args.registry_command == "add":
            neuron = registry.register(_hotkey(args.hotkey), Role(args.role), stake=args.stake, address=args.address)
            print(
                f"registered {neuron.role} {neuron.hotkey} (stake {neuron.stake:g}, {neuron.address or 'no address'})"
            )
        elif args.purge:
            registry.remove(_hotkey(args.hotkey))
            print(f"removed {args.hotkey} (it may register again by announcing, if the registry is open)")
        else:
            neuron = registry.deactivate(_hotkey(args.hotkey))
            print(f"deactivated {neuron.role} {neuron.hotkey}: refused at handshakes, no longer dialled")
    except RegistryError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except DatabaseError as exc:
        print(
            f"error: the facilitator's database in {grid_home()} is not ready ({exc}); start it once", file=sys.stderr
        )
        return 1
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``grid registry``."""
    registry = sub.add_parser("registry", help="the facilitator's registry of validators and miners (in $GRID_HOME)")
    registry_sub = registry.add_subparsers(dest="registry_command", required=True)
    listing = registry_sub.add_parser("list", help="every neuron, with its role, stake, state and address")
    listing.add_argument("--json", action="store_true", help="print the version and the neurons as JSON")
    add = registry_sub.add_parser("add", help="register a neuron, or change one (and activate it)")
    add.add_argument("hotkey", help="a hotkey, or the name of a key under $GRID_HOME/keys")
    add.add_argument("--role", choices=["miner", "validator"], required=True)
    add.add_argument("--stake", type=float, help="its stake (default: unchanged, or 0)")
    add.add_argument("--address", help="a miner's ws:// or wss:// root (default: unchanged)")
    remove = registry_sub.add_parser("remove", help="deactivate a neuron (kept listed, so it cannot announce back)")
    remove.add_argument("hotkey", help="a hotkey, or the name of a key under $GRID_HOME/keys")
    remove.add_argument("--purge", action="store_true", help="forget it entirely instead")
    registry.set_defaults(func=cmd_registry)
