"""The executor's error tree (executor/errors.py): one base, every class drawn, old import paths kept."""

from __future__ import annotations

import executor.errors
from executor.errors import ExecutorError, JobFailed
from protocol.status import FailureReason


def test_every_error_is_in_the_tree_the_module_draws() -> None:
    for name in executor.errors.__all__:
        assert issubclass(getattr(executor.errors, name), ExecutorError), name
        assert f"\n{name} " in executor.errors.__doc__ or f" {name} " in executor.errors.__doc__, name


def test_the_old_import_paths_still_give_the_same_classes() -> None:
    from executor.datapolicy import DataPlaneError
    from executor.netguard import HostUnresolved, UrlRefused
    from executor.runtimes.base import RuntimeFailure
    from executor.runtimes.docker_client import EngineUnavailable
    from executor.transfer import HttpStatusError

    moved = (DataPlaneError, HostUnresolved, UrlRefused, RuntimeFailure, EngineUnavailable, HttpStatusError)
    assert all(cls is getattr(executor.errors, cls.__name__) for cls in moved)
    assert issubclass(EngineUnavailable, RuntimeError)
    assert issubclass(DataPlaneError, JobFailed) and issubclass(RuntimeFailure, JobFailed)


def test_a_failure_of_the_job_carries_its_reason() -> None:
    failure = executor.errors.RuntimeFailure(FailureReason.COMMAND_NOT_FOUND, "command not found: nope")
    assert (failure.reason, failure.message) == (FailureReason.COMMAND_NOT_FOUND, "command not found: nope")
    assert repr(failure) == "<RuntimeFailure [command_not_found] 'command not found: nope'>"
