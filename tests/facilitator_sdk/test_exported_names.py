"""``facilitator_sdk``'s public surface: what ``__all__`` exports, what the docs use, and the sync/async twins.

The docs (README.md "From Python", docs/*.md) show a part of the SDK; every SDK name they use
must be exported. ``__all__`` must also be all the package exports: no public name left out of
it. ``Client`` and ``AsyncClient`` (and ``Job`` / ``AsyncJob`` and the like) are httpx-style
twins: the same methods with the same parameters, coroutines on the async side, and
``close()`` / ``aclose()`` the one difference of name.
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

import facilitator_sdk

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
IMPORT = re.compile(r"from facilitator_sdk import (\([\w,\s]+\)|[\w, ]+)")
# SDK names the docs name in prose, not in an import line (checked present below, so a rename shows).
DOCUMENTED_IN_PROSE = {
    "AsyncClient": "README.md",
    "Job": "README.md",
    "ObjectRef": "README.md",
    "ApiError": "docs/configuration.md",
    "RateLimitedError": "docs/configuration.md",
    "Evidence": "docs/reports.md",
    "Report": "docs/reports.md",
    "SealedResponse": "docs/reports.md",
    "StreamClient": "docs/reports.md",
    "StreamBrokenError": "docs/streaming.md",
    "StreamTarget": "docs/streaming.md",
    "verify_evidence": "docs/streaming.md",
}
TWINS = [
    (facilitator_sdk.Client, facilitator_sdk.AsyncClient),
    (facilitator_sdk.Job, facilitator_sdk.AsyncJob),
    (facilitator_sdk.JobResult, facilitator_sdk.AsyncJobResult),
    (facilitator_sdk.Report, facilitator_sdk.AsyncReport),
    (facilitator_sdk.StreamClient, facilitator_sdk.AsyncStreamClient),
    (facilitator_sdk.WebSocketSession, facilitator_sdk.AsyncWebSocketSession),
]


def imported_in_docs() -> dict[str, str]:
    """Every name a doc imports with ``from facilitator_sdk import …``, and the doc."""
    names: dict[str, str] = {}
    for doc in [*DOCS, ROOT / "facilitator_sdk" / "__init__.py"]:
        for match in IMPORT.finditer(doc.read_text()):
            for name in re.split(r"[\s,()]+", match.group(1)):
                if name:
                    names.setdefault(name, str(doc.relative_to(ROOT)))
    return names


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_name_in_all_resolves_once() -> None:
    assert len(facilitator_sdk.__all__) == len(set(facilitator_sdk.__all__))
    for name in facilitator_sdk.__all__:
        assert getattr(facilitator_sdk, name, None) is not None, name


def test_all_is_every_public_name_the_package_exports() -> None:
    exported = {
        name
        for name, value in vars(facilitator_sdk).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert exported == set(facilitator_sdk.__all__)


def test_the_docs_import_only_exported_names() -> None:
    imported = imported_in_docs()
    assert {"Client", "JobSpec", "JobError", "Input", "Output"} <= set(imported)  # README "From Python"
    missing = {name: doc for name, doc in imported.items() if name not in facilitator_sdk.__all__}
    assert not missing


@pytest.mark.parametrize(("name", "doc"), sorted(DOCUMENTED_IN_PROSE.items()))
def test_the_names_the_docs_mention_are_exported(name: str, doc: str) -> None:
    assert re.search(rf"\b{name}\b", (ROOT / doc).read_text()), f"{doc} no longer mentions {name}"
    assert name in facilitator_sdk.__all__


def test_stream_target_is_the_protocol_one_the_docs_describe() -> None:
    from protocol.stream_caller import StreamTarget

    # The SDK's own subclass: the same model, raising the SDK's StreamingTrustError.
    assert issubclass(facilitator_sdk.StreamTarget, StreamTarget)
    assert facilitator_sdk.StreamTarget.trust_error is facilitator_sdk.StreamingTrustError


@pytest.mark.parametrize(("sync", "async_"), TWINS, ids=[pair[0].__name__ for pair in TWINS])
def test_sync_and_async_twins_have_the_same_public_names(sync: type, async_: type) -> None:
    def normalised(cls: type) -> set[str]:
        return {"close" if name == "aclose" else name for name in public(cls)}

    assert normalised(sync) == normalised(async_)


def test_client_and_async_client_methods_match_and_the_async_ones_are_coroutines() -> None:
    sync, async_ = facilitator_sdk.Client, facilitator_sdk.AsyncClient
    assert "close" in public(sync) and "aclose" in public(async_)
    assert inspect.signature(sync.__init__).parameters.keys() == inspect.signature(async_.__init__).parameters.keys()
    for name in public(sync):
        twin = "aclose" if name == "close" else name
        ours, theirs = inspect.getattr_static(sync, name), inspect.getattr_static(async_, twin)
        if isinstance(ours, property):
            assert isinstance(theirs, property), name
            continue
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters), name
        assert not inspect.iscoroutinefunction(ours), name
        assert inspect.iscoroutinefunction(theirs), name
    for cls in (sync, async_):
        assert hasattr(cls, "__enter__" if cls is sync else "__aenter__")
