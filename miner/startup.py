"""Run once when the miner's ASGI app starts."""

from miner import registry
from node.periodic import start_embedded_beat


def on_startup() -> None:
    registry.check()  # a registry that cannot work stops the start here, with the reason
    start_embedded_beat()
