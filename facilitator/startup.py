"""Run once when the facilitator's ASGI app starts: no validator is connected yet."""

from facilitator.models import ValidatorPresence
from facilitator.registry import seed_validators
from node.periodic import start_embedded_beat


def on_startup() -> None:
    ValidatorPresence.objects.all().delete()
    seed_validators()  # also builds the registry: a static file that cannot be read stops the start here
    start_embedded_beat()
