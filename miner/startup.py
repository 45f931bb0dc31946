"""Run once when the miner's ASGI app starts."""

from grid.periodic import start_embedded_beat
from miner import registry


def on_startup() -> None:
    registry.check()  # a registry that cannot work stops the start here, with the reason
    start_embedded_beat()
