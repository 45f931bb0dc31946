"""Backends by name: an alias from a table, or a class's full dotted path (STYLE.md).

One rule for the executor's runtimes (``GRID_EXECUTOR_RUNTIME``), the facilitator's object
stores (``GRID_STORAGES``) and its registries (``GRID_REGISTRY``), in the shape of Django's
storage and cache backends: a name without a dot is an alias (``"docker"``, ``"s3"``,
``"database"``) looked up in the caller's table; anything else is a path to a class, dotted
(``"executor.runtimes.docker.DockerRuntime"``) or with a colon before the class
(``"executor.runtimes.docker:DockerRuntime"``, the form runtimes always accepted), imported on
first use. The class must
subclass the caller's base. Every refusal is one :class:`BackendError` naming what was asked
and what exists; the Django callers wrap it in their ``ImproperlyConfigured`` subclass.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import TypeVar

__all__ = ["BackendError", "resolve_backend"]

T = TypeVar("T")


class BackendError(ValueError):
    """A backend name that names no usable class; ``name`` is what was asked, ``known`` the aliases."""

    def __init__(self, message: str, *, name: str, known: tuple[str, ...]) -> None:
        super().__init__(message)
        self.name, self.known = name, known


def resolve_backend(name: str, aliases: Mapping[str, str], base: type[T], *, what: str = "backend") -> type[T]:
    """The class ``name`` stands for.

    Args:
        name: an alias of ``aliases`` or a path to a class (``pkg.mod.Class`` or ``pkg.mod:Class``).
        aliases: alias → dotted path.
        base: the class the backend must subclass.
        what: the word for it in messages (``"runtime"``, ``"backend"``).

    Raises:
        BackendError: an unknown alias (with a "did you mean" hint), a path that does not import,
            or a class of the wrong kind.
    """
    known = tuple(sorted(aliases))
    path = aliases.get(name, name)
    module_name, _, class_name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name:
        hint = difflib.get_close_matches(name, known, n=1)
        guess = f"did you mean {hint[0]!r}? known" if hint else "known"
        raise BackendError(f"unknown {what} {name!r}; {guess}: {', '.join(known)}", name=name, known=known)
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"cannot import {what} {name!r}: {exc}", name=name, known=known) from exc
    if not (isinstance(found, type) and issubclass(found, base)):
        raise BackendError(f"{what} {name!r} is {found!r}, not a {base.__name__}", name=name, known=known)
    return found
