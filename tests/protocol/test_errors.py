"""The error tree of protocol/errors.py: one base, every class drawn, old import paths kept."""

from __future__ import annotations

import protocol.errors
from protocol.errors import ConnectionLost, ProtocolError, ReplayedRequest, RequestAuthError


def test_every_error_is_in_the_tree_the_module_draws() -> None:
    for name in protocol.errors.__all__:
        assert issubclass(getattr(protocol.errors, name), ProtocolError), name
        assert f"\n{name} " in protocol.errors.__doc__ or f" {name} " in protocol.errors.__doc__, name


def test_the_old_import_paths_still_give_the_same_classes() -> None:
    from protocol.requests import NonceStoreFull
    from protocol.spec import SpecError
    from protocol.transport import ConnectionLost as TransportConnectionLost

    assert TransportConnectionLost is ConnectionLost
    assert (SpecError, NonceStoreFull) == (protocol.errors.SpecError, protocol.errors.NonceStoreFull)


def test_a_lost_connection_carries_its_close_frame_and_a_reason_code() -> None:
    lost = ConnectionLost(4429, "too many frames")
    assert (lost.close_code, lost.reason, lost.code) == (4429, "too many frames", "connection_lost")
    assert str(lost) == "connection closed (4429): too many frames"


def test_a_replay_is_a_request_auth_error_with_one_code_and_message() -> None:
    replayed = ReplayedRequest()
    assert isinstance(replayed, RequestAuthError)
    assert (replayed.code, replayed.message) == ("replayed", "this nonce was already used")
