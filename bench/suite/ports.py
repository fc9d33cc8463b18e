"""Listening ports for the servers under test, taken below the kernel's ephemeral port range.

The generator opens thousands of client sockets, each bound to an ephemeral port. A port that
was free when it was chosen (``bind(0)``) lies in that same range, and a client socket of an
earlier run can hold it when the server tries to listen on it. Ports below the range are never
handed to client sockets.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000
"""Below this are the well-known and commonly configured service ports."""


def ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class PortAllocator:
    """Hands out distinct free loopback ports in [LOWEST_PORT, ephemeral start).

    It starts at a random place, so that two suites running at once rarely try the same ports;
    a port is checked with a bind just before it is handed out.
    """

    def __init__(self) -> None:
        self.high = ephemeral_start()
        if self.high - LOWEST_PORT < 1000:
            raise RuntimeError(f"too few ports below the ephemeral range (it starts at {self.high})")
        self.next = random.randrange(LOWEST_PORT, self.high)

    def take(self) -> int:
        for _ in range(self.high - LOWEST_PORT):
            port = self.next
            self.next = LOWEST_PORT + (self.next + 1 - LOWEST_PORT) % (self.high - LOWEST_PORT)
            if is_free(port):
                return port
        raise RuntimeError("no free loopback port below the ephemeral range")
