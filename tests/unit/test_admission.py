"""Unit tests for ``wirehub.server.admission``: trusted proxies, connection caps, handshake buckets."""

from __future__ import annotations

import logging

from wirehub.server.admission import AcceptErrorThrottle, ConnectionCounter, HandshakeBuckets, TrustedProxies


def test_trusted_proxy_forwards_the_rightmost_untrusted_address() -> None:
    """X-Forwarded-For counts only from a trusted peer, read from the right past trusted hops."""
    proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    assert proxies.client_address("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert proxies.client_address("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    assert proxies.client_address("192.0.2.1", "203.0.113.7") == "192.0.2.1"  # not a proxy: header ignored
    assert proxies.client_address("127.0.0.1", None) == "127.0.0.1"
    assert proxies.client_address("127.0.0.1", "10.0.0.5") == "10.0.0.5"  # only proxies: the first hop
    assert not proxies.trusts("not an address")


def test_connection_counter_caps_per_address_and_in_total() -> None:
    """An address past its cap is refused, others are not until the total is reached; closing frees."""
    counter = ConnectionCounter(per_address=2, total=3, proxies=TrustedProxies(["192.0.2.9"]))
    assert counter.try_open("a")
    assert counter.try_open("a")
    assert not counter.try_open("a")
    assert counter.try_open("b")
    assert not counter.try_open("c")  # the total
    counter.close("a")
    assert counter.try_open("c")
    assert counter.total == 3


def test_connection_counter_does_not_cap_a_trusted_proxy_per_address() -> None:
    """A load balancer carries many clients: only the total caps it."""
    counter = ConnectionCounter(per_address=1, total=5, proxies=TrustedProxies(["192.0.2.9"]))
    assert all(counter.try_open("192.0.2.9") for _ in range(5))
    assert not counter.try_open("192.0.2.9")


def test_handshake_buckets_are_per_address_and_forget_the_oldest() -> None:
    """Each address has its own bucket; past max_addresses the least recently used is forgotten."""
    buckets = HandshakeBuckets(1.0, 2, max_addresses=2)
    assert buckets.try_take("a", 0.0)
    assert buckets.try_take("a", 0.0)
    assert not buckets.try_take("a", 0.0)
    assert buckets.try_take("b", 0.0)
    assert buckets.try_take("a", 1.0)  # refilled by one
    assert buckets.try_take("c", 1.0)  # forgets b, the least recently used
    assert buckets.try_take("b", 1.0)
    assert buckets.try_take("b", 1.0)


def test_accept_error_throttle_summarises_repeats() -> None:
    """One accept error per interval is logged, the next one says how many were left out."""
    throttle = AcceptErrorThrottle(interval_s=3600)
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, AcceptErrorThrottle.MESSAGE, (), None)
    assert throttle.filter(record)
    assert not any(throttle.filter(record) for _ in range(100))
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "something else", (), None)
    assert throttle.filter(other)
