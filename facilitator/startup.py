"""Run once when the facilitator's ASGI app starts: no validator is connected yet."""

from facilitator.models import ValidatorPresence


def on_startup() -> None:
    ValidatorPresence.objects.all().delete()
