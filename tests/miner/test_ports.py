"""Gateway ports for streaming jobs (miner/ports.py)."""

from __future__ import annotations

import socket

import pytest

from miner.ports import PortPool, parse_port_range


def test_a_range_is_inclusive_and_a_single_port_is_a_range_of_one() -> None:
    assert parse_port_range("40000-40002") == range(40000, 40003)
    assert parse_port_range(" 8443 ") == range(8443, 8444)


@pytest.mark.parametrize("value", ["", "abc", "40000-", "0-10", "10-5", "65535-65536", "1-2-3"])
def test_a_malformed_range_is_refused_quoting_it(value: str) -> None:
    with pytest.raises(ValueError, match="GRID_STREAMING_PORTS"):
        parse_port_range(value)


def test_ports_are_handed_out_once_until_given_back() -> None:
    pool = PortPool(range(5000, 5002))
    assert (pool.take(), pool.take(), pool.take()) == (5000, 5001, None)
    pool.give_back(5000)
    pool.give_back(None)
    pool.give_back(5000)  # twice is harmless
    assert pool.free == 1 and pool.take() == 5000


def test_a_port_something_else_on_the_host_listens_on_is_skipped() -> None:
    with socket.socket() as other:  # another grid's job, say, on the first port of the range
        other.bind(("127.0.0.1", 0))
        other.listen()
        held = other.getsockname()[1]
        pool = PortPool(range(held, held + 2))
        taken = pool.take()
        assert taken != held
    pool.give_back(taken)
    assert pool.take() == held  # free again once it is closed
