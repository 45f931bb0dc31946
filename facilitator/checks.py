"""System checks: a facilitator without allowed validators can accept jobs but never run them."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def validators_configured(app_configs, **kwargs):
    if not settings.FACILITATOR_VALIDATOR_HOTKEYS:
        return [
            Warning(
                "GRID_VALIDATOR_HOTKEYS is empty: no validator may connect, so jobs will wait forever.",
                hint="Set GRID_VALIDATOR_HOTKEYS to the hotkeys of your validators (`grid keys show validator`).",
                id="facilitator.W001",
            )
        ]
    return []
