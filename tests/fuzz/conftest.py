"""Hypothesis profiles of the fuzz suite (promise 4: bad input never takes a process down).

The profiles are registered here and applied per test through :data:`FUZZ` (or :func:`fuzz`),
never loaded globally, so the rest of the suite keeps hypothesis' own defaults.

``GRID_FUZZ_PROFILE`` picks one: ``fuzz`` (the default, random examples each run), ``fuzz-ci``
(the same examples every run, so a CI failure reproduces; the default when ``CI`` is set) or
``fuzz-long`` (ten times the examples, for a hunt on a quiet machine).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ", "fuzz"]

settings.register_profile(
    "fuzz",
    max_examples=100,
    deadline=None,  # two busy cores: a slow example is not a bug
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("fuzz-ci", parent=settings.get_profile("fuzz"), derandomize=True, database=None)
settings.register_profile("fuzz-long", parent=settings.get_profile("fuzz"), max_examples=1000)

_PROFILE = settings.get_profile(os.environ.get("GRID_FUZZ_PROFILE") or ("fuzz-ci" if os.environ.get("CI") else "fuzz"))


def fuzz(scale: float = 1.0, *, shared_fixtures: bool = False) -> settings:
    """The chosen profile, with ``scale`` times its examples (a slow property runs fewer).

    ``shared_fixtures``: the test's function-scoped fixtures are set up once for all its examples,
    on purpose (a database, a pool); hypothesis would otherwise warn about it.
    """
    checks = [*_PROFILE.suppress_health_check, *([HealthCheck.function_scoped_fixture] if shared_fixtures else [])]
    return settings(_PROFILE, max_examples=max(1, round(_PROFILE.max_examples * scale)), suppress_health_check=checks)


FUZZ = fuzz()
