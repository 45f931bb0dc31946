"""The operator's forms: blacklist a miner (with a reason and a duration)."""

from __future__ import annotations

from django import forms

__all__ = ["DURATIONS", "PERMANENT_S", "BlacklistForm", "HotkeyBlacklistForm"]

PERMANENT_S = 100 * 365 * 86400.0  # "until lifted": an entry no one will outlive
DURATIONS = [
    (3600, "1 hour"),
    (6 * 3600, "6 hours"),
    (86400, "1 day"),
    (7 * 86400, "7 days"),
    (30 * 86400, "30 days"),
    (int(PERMANENT_S), "until lifted"),
]


class BlacklistForm(forms.Form):
    reason = forms.CharField(max_length=200, help_text="shown to every operator and kept with the entry")
    duration = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial=86400)


class HotkeyBlacklistForm(BlacklistForm):
    """Blacklist any miner by hotkey, known to this validator or not yet."""

    hotkey = forms.RegexField(
        regex=r"^[0-9a-f]{64}$",
        max_length=64,
        error_messages={"invalid": "A hotkey is 64 lowercase hex characters (an ed25519 public key)."},
    )
    field_order = ["hotkey", "reason", "duration"]
