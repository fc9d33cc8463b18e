"""Who may open connections, how many, and how fast: the gateway's defences against starvation.

* ``TrustedProxies``: which peers are load balancers whose ``X-Forwarded-For`` names the client.
* ``ConnectionCounter``: open connections per address and in total, across both listeners, so
  that one address (or everybody together) cannot take the file descriptors the others need.
  A peer that is a trusted proxy carries many clients and is not capped per address.
* ``HandshakeBuckets``: WebSocket handshakes per second per client address (token buckets), so
  that one address cannot take the whole handshake budget of the replica.
* ``raise_fd_limit``: the soft limit on open files up to the hard one, at start.
* ``AcceptErrorThrottle``: asyncio logs an error for every ``accept()`` that fails (out of file
  descriptors); at thousands a second that floods the log, so repeats are summarised.

Pure bookkeeping apart from ``raise_fd_limit`` and the logging filter: the listeners call it.
"""

from __future__ import annotations

import ipaddress
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Iterable

from wirehub.server.rate import TokenBucket

__all__ = [
    "AcceptErrorThrottle",
    "ConnectionCounter",
    "HandshakeBuckets",
    "TrustedProxies",
    "raise_fd_limit",
]

logger = logging.getLogger(__name__)

FD_RESERVE = 256
"""File descriptors kept out of the connection cap: the store, the broker, logs, health checks."""


class TrustedProxies:
    """Addresses and networks (CIDR) of proxies in front of the gateway."""

    __slots__ = ("_networks",)

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]

    def trusts(self, address: str) -> bool:
        if not self._networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_address(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the peer, or what a trusted proxy says it forwarded for.

        ``X-Forwarded-For`` is read from the right: each trusted proxy appends the address it got
        the request from, so the rightmost address that is not a trusted proxy is the client.
        """
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


class ConnectionCounter:
    """Open connections per address and in total; ``try_open`` refuses past either cap."""

    __slots__ = ("_by_address", "_per_address", "_proxies", "_total", "total_cap")

    def __init__(self, *, per_address: int, total: int, proxies: TrustedProxies) -> None:
        self._per_address = per_address
        self.total_cap = total
        self._proxies = proxies
        self._by_address: dict[str, int] = {}
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    def try_open(self, address: str) -> bool:
        if self.total_cap and self._total >= self.total_cap:
            return False
        count = self._by_address.get(address, 0)
        if self._per_address and count >= self._per_address and not self._proxies.trusts(address):
            return False
        self._by_address[address] = count + 1
        self._total += 1
        return True

    def close(self, address: str) -> None:
        count = self._by_address.get(address, 0)
        if count <= 1:
            self._by_address.pop(address, None)
        else:
            self._by_address[address] = count - 1
        self._total = max(0, self._total - 1)


class HandshakeBuckets:
    """A token bucket per client address, the least recently used ones forgotten past ``max_addresses``."""

    __slots__ = ("_buckets", "_burst", "_max", "_rate")

    def __init__(self, rate_per_s: float, burst: int, *, max_addresses: int = 100_000) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._max = max_addresses
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def try_take(self, address: str, now: float) -> bool:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket(self._rate, self._burst, now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)  # a forgotten address starts with a full bucket
        else:
            self._buckets.move_to_end(address)
        return bucket.try_take(now)


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # a container may forbid it: work within the soft limit
    return soft


def default_connection_cap(fd_limit: int) -> int:
    """Connections the process may hold when ``server.max_connections`` is 0: the fd limit, less a reserve."""
    return max(64, fd_limit - FD_RESERVE)


class AcceptErrorThrottle(logging.Filter):
    """Lets one ``socket.accept() out of system resource`` record through per ``interval_s``.

    The next one after a quiet interval says how many were left out.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last = float("-inf")
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != self.MESSAGE:
            return True
        now = time.monotonic()
        if now - self._last < self._interval_s:
            self._dropped += 1
            return False
        if self._dropped:
            record.msg = f"{self.MESSAGE} ({self._dropped} more since the last report)"
            record.args = ()
        self._last, self._dropped = now, 0
        return True
