"""The registry: who is in the grid (DESIGN.md §8), the part a chain's member list plays elsewhere.

Each :class:`Neuron` is a hotkey with a role (validator or miner), a stake and, for a miner,
the address validators dial (``ws://host:port`` or ``wss://…``, the miner's server root). The
facilitator serves the whole list as a :class:`RegistrySnapshot` signed with its own key;
validators and miners fetch it periodically and check that signature before using it. A miner
announces its address with a signed request (:data:`ANNOUNCE_PURPOSE` body, see
``facilitator/registry``). A closed deployment can instead give every party the same static
file of neurons.
"""

from __future__ import annotations

import json
import unicodedata
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from protocol.errors import SignatureError
from protocol.keys import Keypair, verify_payload

__all__ = [
    "REGISTRY_PURPOSE",
    "Neuron",
    "RegistrySnapshot",
    "Role",
    "load_static_registry",
    "sign_registry",
    "verify_registry",
]

REGISTRY_PURPOSE = "registry"


class Role(StrEnum):
    VALIDATOR = "validator"
    MINER = "miner"


class Neuron(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    hotkey: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    stake: float = Field(0.0, ge=0)
    address: str = Field("", max_length=512, description="a miner's ws:// or wss:// server root")
    active: bool = True

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if any(ord(char) < 33 or unicodedata.category(char) == "Cc" for char in value):
            raise ValueError("cannot contain spaces or control characters")
        value = value.rstrip("/")
        scheme, sep, host = value.partition("://")
        if value and (scheme not in ("ws", "wss") or not sep or not host):
            raise ValueError("must be a ws:// or wss:// address with a host")
        return value

    @property
    def validator_url(self) -> str:
        """Where a validator dials this miner."""
        return f"{self.address}/ws/validator/"


class RegistrySnapshot(BaseModel):
    """The registry at one moment: ``version`` grows with every change."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: int = Field(ge=0)
    issued_at: float
    facilitator_hotkey: str = Field(pattern=r"^[0-9a-f]{64}$")
    neurons: list[Neuron] = Field(max_length=100_000)
    signature: str = Field("", pattern=r"^([0-9a-f]{128})?$")

    def signed_fields(self) -> dict:
        return self.model_dump(mode="json", exclude={"signature"})

    def of_role(self, role: Role) -> list[Neuron]:
        return [neuron for neuron in self.neurons if neuron.role == role and neuron.active]

    def find(self, hotkey: str, role: Role | None = None) -> Neuron | None:
        for neuron in self.neurons:
            if neuron.hotkey == hotkey and (role is None or neuron.role == role):
                return neuron
        return None


def sign_registry(facilitator: Keypair, snapshot: RegistrySnapshot) -> RegistrySnapshot:
    if snapshot.facilitator_hotkey != facilitator.hotkey:
        raise ValueError("a registry is signed by the facilitator it names")
    return snapshot.model_copy(update={"signature": facilitator.sign(REGISTRY_PURPOSE, snapshot.signed_fields())})


def verify_registry(snapshot: RegistrySnapshot, facilitator_hotkey: str) -> None:
    """Raises :class:`SignatureError` unless ``facilitator_hotkey`` signed exactly this snapshot."""
    if snapshot.facilitator_hotkey != facilitator_hotkey:
        raise SignatureError("the registry is signed by another facilitator", code="wrong_facilitator")
    if not snapshot.signature:
        raise SignatureError("the registry is not signed", code="missing_signature")
    verify_payload(facilitator_hotkey, REGISTRY_PURPOSE, snapshot.signed_fields(), snapshot.signature)


def load_static_registry(path: str | Path) -> list[Neuron]:
    """Neurons from a JSON file: ``[{"hotkey", "role", "stake", "address"}, ...]``.

    Raises:
        ValueError: the file is missing, not JSON, or an entry is invalid (the message says which).
    """
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"registry file {path}: {exc.strerror}") from exc
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, or nested past the decoder's limit
        raise ValueError(f"registry file {path} is not JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise ValueError(f"registry file {path} must hold a JSON list of neurons")
    neurons = []
    for index, entry in enumerate(entries):
        try:
            neurons.append(Neuron.model_validate(entry))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise ValueError(f"registry file {path}, entry {index}: {where}: {problem['msg']}") from None
    return neurons
