"""System checks: a facilitator without validators can accept jobs but never run them."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def validators_configured(app_configs, **kwargs):
    if not settings.FACILITATOR_VALIDATOR_HOTKEYS:
        return [
            Warning(
                "GRID_VALIDATOR_HOTKEYS is empty: only validators already in the registry may connect; "
                "with none there, jobs wait forever.",
                hint="Set GRID_VALIDATOR_HOTKEYS to your validators' hotkeys (`grid keys show validator`), "
                "or add them with `grid registry add HOTKEY --role validator`.",
                id="facilitator.W001",
            )
        ]
    return []


@register()
def store_urls_absolute(app_configs, **kwargs):
    """Executors on other machines fetch inputs and upload outputs through the store's signed URLs."""
    from facilitator.storage import get_store

    signer = getattr(get_store(), "url_signer", None)
    if signer is not None and not signer.base_url.startswith(("http://", "https://")):
        return [
            Warning(
                f"GRID_STORAGE_URL is {signer.base_url!r}, a path: executors cannot reach object inputs or "
                "upload outputs and logs through it.",
                hint="Set GRID_STORAGE_URL to this facilitator's public address, e.g. https://grid.example/objects/.",
                id="facilitator.W002",
            )
        ]
    return []
