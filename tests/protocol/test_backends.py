"""One way to name a backend (protocol/backends.py): runtimes, object stores and registries use it."""

from __future__ import annotations

import pytest

from protocol.backends import BackendError, resolve_backend


class Base:
    pass


class Good(Base):
    pass


ALIASES = {"good": f"{__name__}.Good", "other": f"{__name__}.Base"}


def test_an_alias_and_a_dotted_path_give_the_class() -> None:
    assert resolve_backend("good", ALIASES, Base) is Good
    assert resolve_backend(f"{__name__}.Good", ALIASES, Base) is Good
    # The colon form (module:Class) that GRID_EXECUTOR_RUNTIME always accepted still works.
    assert resolve_backend(f"{__name__}:Good", ALIASES, Base) is Good


def test_an_unknown_alias_names_what_exists_and_the_closest() -> None:
    with pytest.raises(BackendError) as caught:
        resolve_backend("goood", ALIASES, Base, what="runtime")
    assert str(caught.value) == "unknown runtime 'goood'; did you mean 'good'? known: good, other"
    assert (caught.value.name, caught.value.known) == ("goood", ("good", "other"))
    assert isinstance(caught.value, ValueError)
    with pytest.raises(BackendError, match=r"^unknown backend 'ftp'; known: good, other$"):
        resolve_backend("ftp", ALIASES, Base)


@pytest.mark.parametrize(
    "path", ["no_such_module_here.Thing", f"{__name__}.Missing", f"{__name__}:Missing", "no_such_module_here:Thing"]
)
def test_a_path_that_does_not_import_is_named(path: str) -> None:
    with pytest.raises(BackendError, match=f"^cannot import backend '{path}': "):
        resolve_backend(path, ALIASES, Base)


@pytest.mark.parametrize("path", [f"{__name__}.ALIASES", "builtins.dict"])
def test_a_class_of_another_kind_is_refused(path: str) -> None:
    with pytest.raises(BackendError, match=f"^backend '{path}' is .*, not a Base$"):
        resolve_backend(path, ALIASES, Base)
