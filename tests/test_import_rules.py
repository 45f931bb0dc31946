"""The import rules between parties (DESIGN.md §2), checked over every module's imports.

``protocol`` imports no party, no ``node`` and no Django; ``facilitator_sdk`` imports only
``protocol`` of ours; ``executor`` imports only ``protocol`` (no Django: it must start fast and
runs where Django is not installed); ``node`` imports no party and not ``grid``; the parties
(``facilitator``, ``validator``, ``miner``) never import each other nor ``grid``. Parties speak
only through messages, as they would across the internet.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"grid", "node", "protocol", "facilitator", "validator", "miner", "executor", "facilitator_sdk"}
PARTIES = {"facilitator", "validator", "miner"}
DJANGO = {"django", "channels", "celery", "ninja", "asgiref"}

# package → the top-level names it may not import
FORBIDDEN: dict[str, set[str]] = {
    "protocol": (OURS - {"protocol"}) | DJANGO,
    "facilitator_sdk": (OURS - {"protocol", "facilitator_sdk"}) | DJANGO,
    "executor": (OURS - {"protocol", "executor"}) | DJANGO,
    "node": PARTIES | {"grid", "executor", "facilitator_sdk"},
    **{party: (PARTIES - {party}) | {"grid", "executor"} for party in PARTIES},
}


def imported(source: str) -> set[tuple[str, int]]:
    """Top-level names a module imports, with their lines (relative imports stay in the package)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add((node.module.split(".")[0], node.lineno))
    return names


def violations(package: str, path: Path, source: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for name, line in sorted(imported(source))
        if name in FORBIDDEN[package]
    ]


def test_the_checker_sees_each_kind_of_import() -> None:
    source = "import django.db\nfrom miner.pool import x\nfrom . import y\nimport protocol.keys as k\n"
    assert imported(source) == {("django", 1), ("miner", 2), ("protocol", 4)}
    assert violations("validator", ROOT / "validator" / "x.py", source) == ["validator/x.py:2 imports miner"]
    assert violations("executor", ROOT / "executor" / "x.py", source) == [
        "executor/x.py:1 imports django",
        "executor/x.py:2 imports miner",
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_what_its_layer_may_not(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    found = [v for path in modules for v in violations(package, path, path.read_text())]
    assert not found, "\n".join(found)
