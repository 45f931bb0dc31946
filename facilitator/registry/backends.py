"""Registry backends: who may take part in this grid (DESIGN.md §1, §3, §8).

``settings.GRID_REGISTRY`` (env ``GRID_REGISTRY``) picks one (:mod:`facilitator.registry.handler`):

* ``"database"`` (default): :class:`DatabaseRegistry`, the facilitator's own table. Miners
  announce their address; in an open registry (``GRID_REGISTRY_OPEN``, default true) an unknown
  miner that announces is registered with stake 0.
* ``"static:/path/to/neurons.json"``: :class:`StaticFileRegistry`, a closed deployment's fixed
  list (:func:`protocol.registry.load_static_registry`), re-read when the file changes; nothing
  can be written to it, announcing included.

The base class :class:`Registry` owns the contract (validation, read-only refusal, the signed
snapshot cached until the version changes); a backend fills the underscore hooks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from facilitator.registry.errors import (
    Deactivated,
    InvalidNeuron,
    NotRegistered,
    ReadOnlyRegistry,
    RoleConflict,
)
from protocol.keys import Keypair
from protocol.registry import Neuron as NeuronInfo
from protocol.registry import RegistrySnapshot, Role, load_static_registry, sign_registry

__all__ = ["DatabaseRegistry", "Registry", "StaticFileRegistry"]

log = logging.getLogger("grid.facilitator.registry")


# -- the contract ----------------------------------------------------------------------------------


class Registry:
    """Subclasses implement ``_version``, ``_neurons`` and, unless ``read_only``, ``_save`` and ``_delete``."""

    read_only: ClassVar[bool] = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signed: tuple[tuple, RegistrySnapshot, bytes] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}{' read-only' if self.read_only else ''}>"

    # reading

    def version(self) -> int:
        return self._version()

    def neurons(self) -> list[NeuronInfo]:
        return self._neurons()

    def get(self, hotkey: str) -> NeuronInfo | None:
        return self._get(hotkey)

    def is_active(self, hotkey: str, role: Role) -> bool:
        """Whether ``hotkey`` is an active neuron of ``role``: the handshake's question."""
        neuron = self.get(hotkey)
        return neuron is not None and neuron.role is role and neuron.active

    def signed_snapshot(self, keypair: Keypair) -> tuple[RegistrySnapshot, bytes]:
        """The whole registry signed by ``keypair``, and its JSON; built again only after a change."""
        stamp = self._stamp()  # before the neurons: a snapshot is never older than its number
        version, key = stamp[-1], (*stamp, keypair.hotkey)
        with self._lock:
            if self._signed is not None and self._signed[0] == key:
                return self._signed[1], self._signed[2]
        snapshot = sign_registry(
            keypair,
            RegistrySnapshot(
                version=version, issued_at=time.time(), facilitator_hotkey=keypair.hotkey, neurons=self.neurons()
            ),
        )
        body = snapshot.model_dump_json().encode()
        with self._lock:
            self._signed = (key, snapshot, body)
        return snapshot, body

    # writing

    def announce(self, hotkey: str, address: str, *, role: Role = Role.MINER, open_registry: bool = True) -> NeuronInfo:
        """A miner says where validators reach it.

        Raises:
            InvalidNeuron: a bad address, or a role that has no address to announce.
            ReadOnlyRegistry, RoleConflict, Deactivated: refused by the registry.
            NotRegistered: an unknown hotkey while the registry is closed.
        """
        if role is not Role.MINER:
            raise InvalidNeuron(f"only miners announce an address, not {role}s", code="invalid_role")
        if not address:
            raise InvalidNeuron(
                "address: a miner announces the ws:// or wss:// root validators dial", code="invalid_address"
            )
        self._refuse_if_read_only()
        known = self.get(hotkey)
        if known is None:
            if not open_registry:
                raise NotRegistered(f"{hotkey} is not registered here, and this registry is closed")
            return self.register(hotkey, Role.MINER, address=address)
        if known.role is not role:
            raise RoleConflict(f"{hotkey} is registered as a {known.role}; it cannot announce as a {role}")
        if not known.active:
            raise Deactivated(f"{hotkey} was deactivated in this registry")
        updated = _neuron(hotkey=hotkey, role=role, stake=known.stake, address=address, active=True)
        if updated != known:  # the same address again changes nothing, the version included
            self._save(updated)
        return updated

    def register(
        self, hotkey: str, role: Role, *, stake: float | None = None, address: str | None = None, active: bool = True
    ) -> NeuronInfo:
        """Add a neuron, or replace what is known of it (stake and address kept unless given).

        Raises:
            InvalidNeuron: a bad hotkey, stake or address. ReadOnlyRegistry: nothing can be written.
        """
        self._refuse_if_read_only()
        known = self.get(hotkey)
        if stake is None:
            stake = known.stake if known is not None else 0.0
        if address is None:
            address = known.address if known is not None else ""
        neuron = _neuron(hotkey=hotkey, role=role, stake=stake, address=address, active=active)
        if neuron != known:
            self._save(neuron)
        return neuron

    def deactivate(self, hotkey: str) -> NeuronInfo:
        """Keep the neuron listed, inactive: refused at handshakes, and unable to announce its way back."""
        self._refuse_if_read_only()
        known = self.get(hotkey)
        if known is None:
            raise NotRegistered(f"{hotkey} is not registered here")
        return self.register(hotkey, known.role, stake=known.stake, address=known.address, active=False)

    def remove(self, hotkey: str) -> None:
        """Forget the neuron (in an open registry, a miner can then announce itself again)."""
        self._refuse_if_read_only()
        if not self._delete(hotkey):
            raise NotRegistered(f"{hotkey} is not registered here")

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise ReadOnlyRegistry(
                f"this facilitator's registry is read-only ({self!r}): ask its operator to change it"
            )

    # hooks

    def _version(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}._version() must be implemented")

    def _stamp(self) -> tuple:
        """What identifies the registry's state, the version last; by default the version alone."""
        return (self._version(),)

    def _neurons(self) -> list[NeuronInfo]:
        raise NotImplementedError(f"{type(self).__name__}._neurons() must be implemented")

    def _get(self, hotkey: str) -> NeuronInfo | None:
        return next((neuron for neuron in self._neurons() if neuron.hotkey == hotkey), None)

    def _save(self, neuron: NeuronInfo) -> None:
        raise NotImplementedError(f"{type(self).__name__}._save() must be implemented")

    def _delete(self, hotkey: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__}._delete() must be implemented")


def _neuron(**fields: Any) -> NeuronInfo:
    try:
        return NeuronInfo(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "neuron"
        message = problem["msg"].removeprefix("Value error, ")
        raise InvalidNeuron(f"{field}: {message}", code=f"invalid_{field}") from None


# -- backends --------------------------------------------------------------------------------------


class DatabaseRegistry(Registry):
    """The facilitator's ``Neuron`` table; every change advances ``RegistryVersion`` in its transaction."""

    def _version(self) -> int:
        from facilitator.registry.models import RegistryVersion

        return RegistryVersion.current()

    def _stamp(self) -> tuple:
        from facilitator.registry.models import RegistryVersion

        return RegistryVersion.stamp()

    def _neurons(self) -> list[NeuronInfo]:
        from facilitator.registry.models import Neuron

        return [row.to_info() for row in Neuron.objects.order_by("id")]

    def _get(self, hotkey: str) -> NeuronInfo | None:
        from facilitator.registry.models import Neuron

        row = Neuron.objects.filter(hotkey=hotkey).first()
        return row.to_info() if row is not None else None

    def _save(self, neuron: NeuronInfo) -> None:
        from facilitator.registry.models import Neuron

        fields = {"role": neuron.role.value, "stake": neuron.stake, "address": neuron.address, "active": neuron.active}
        Neuron.objects.update_or_create(hotkey=neuron.hotkey, defaults=fields)

    def _delete(self, hotkey: str) -> bool:
        from facilitator.registry.models import Neuron

        row = Neuron.objects.filter(hotkey=hotkey).first()
        if row is None:
            return False
        row.delete()
        return True


class StaticFileRegistry(Registry):
    """A fixed JSON list of neurons, read again whenever the file changes; its version is the file's mtime.

    Args:
        path: the file (``[{"hotkey", "role", "stake", "address", "active"}, ...]``).
    """

    read_only = True

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._file_stamp: tuple[int, int] | None = None
        self._loaded: list[NeuronInfo] = []
        self._refresh(strict=True)

    def __repr__(self) -> str:
        return f"<StaticFileRegistry {self.path}>"

    def _version(self) -> int:
        self._refresh()
        return self._file_stamp[0] if self._file_stamp else 0

    def _neurons(self) -> list[NeuronInfo]:
        self._refresh()
        return list(self._loaded)

    def _refresh(self, *, strict: bool = False) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            if strict:
                raise ValueError(f"registry file {self.path}: {exc.strerror}") from exc
            return  # gone for now (being replaced?): keep what we have
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._file_stamp:
            return
        try:
            neurons = load_static_registry(self.path)
        except ValueError:
            if strict:
                raise
            log.exception("the registry file %s changed but cannot be used; keeping the previous list", self.path)
            return
        duplicates = [hotkey for hotkey, count in Counter(n.hotkey for n in neurons).items() if count > 1]
        if duplicates:
            problem = f"registry file {self.path} lists {duplicates[0]} more than once"
            if strict:
                raise ValueError(problem)
            log.error("%s; keeping the previous list", problem)
            return
        self._loaded, self._file_stamp = neurons, stamp
