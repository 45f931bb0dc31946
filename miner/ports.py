"""The public ports a miner hands to streaming jobs' gateways, from ``GRID_STREAMING_PORTS``."""

from __future__ import annotations

import socket

__all__ = ["PortPool", "parse_port_range"]


def parse_port_range(value: str) -> range:
    """``"40000-40099"`` (inclusive) or a single ``"40000"``.

    Raises:
        ValueError: not a range of ports 1..65535, quoting the value.
    """
    first, sep, last = value.strip().partition("-")
    try:
        low, high = int(first), int(last) if sep else int(first)
    except ValueError:
        raise ValueError(f"GRID_STREAMING_PORTS must look like 40000-40099, got {value!r}") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"GRID_STREAMING_PORTS must be ports 1..65535, low to high, got {value!r}")
    return range(low, high + 1)


class PortPool:
    """Hands out each port of a range to one job at a time; lowest free first.

    Free means not handed out and not bound by anything else on this host right now (another
    miner or grid on the same machine, a job's gateway still closing): a port someone holds
    would fail its job's gateway at start.
    """

    def __init__(self, ports: range) -> None:
        self.ports = ports
        self._taken: set[int] = set()

    def __repr__(self) -> str:
        return f"<PortPool {self.ports.start}-{self.ports.stop - 1}, {len(self._taken)} taken>"

    @property
    def free(self) -> int:
        return len(self.ports) - len(self._taken)

    def take(self) -> int | None:
        """A free port, now taken; ``None`` when every port is."""
        for port in self.ports:
            if port not in self._taken and _bindable(port):
                self._taken.add(port)
                return port
        return None

    def give_back(self, port: int | None) -> None:
        if port is not None:
            self._taken.discard(port)


def _bindable(port: int) -> bool:
    """Whether a listening socket could bind ``port`` now, on any address (a wildcard bind fails
    while anything listens on the port, whatever its address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the gateway's server does
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True
