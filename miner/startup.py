"""Run once when the miner's ASGI app starts."""

from miner import registry
from miner.relay import check_gpus_at_start
from node.periodic import start_embedded_beat


def on_startup() -> None:
    registry.check()  # a registry that cannot work stops the start here, with the reason
    check_gpus_at_start()  # so do GPU classes this machine has not the GPUs for
    start_embedded_beat()
