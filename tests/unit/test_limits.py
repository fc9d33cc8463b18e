"""Unit tests for ``wirehub.server.limits`` and ``admission``: buckets, origins, connection caps."""

from __future__ import annotations

import logging

import pytest

from wirehub.server.admission import AcceptErrorThrottle, ConnectionCounter, HandshakeBuckets, TrustedProxies
from wirehub.server.limits import OriginPolicy, TokenBucket

# --------------------------------------------------------------------------- TokenBucket


def test_token_bucket_take_starts_full_and_counts_down() -> None:
    """A new bucket holds ``burst`` tokens; each take leaves one fewer."""
    bucket = TokenBucket(rate_per_s=1.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [2.0, 1.0, 0.0]


def test_token_bucket_take_goes_into_debt_when_empty() -> None:
    """Taking from an empty bucket is allowed on credit: the balance turns negative."""
    bucket = TokenBucket(rate_per_s=1.0, burst=1, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == -1.0
    assert bucket.take(0.0) == -2.0


def test_token_bucket_take_refills_at_rate_and_pays_debt_first() -> None:
    """Tokens flow back at ``rate_per_s``; a bucket in debt must refill past zero first."""
    bucket = TokenBucket(rate_per_s=2.0, burst=2, now=0.0)
    for _ in range(4):
        bucket.take(0.0)  # balance -2
    assert bucket.take(1.0) == -1.0  # +2 refilled, -1 taken
    assert bucket.take(2.0) == 0.0


def test_token_bucket_take_caps_refill_at_burst() -> None:
    """However long it rests, a bucket never holds more than ``burst``."""
    bucket = TokenBucket(rate_per_s=100.0, burst=5, now=0.0)
    bucket.take(0.0)
    assert bucket.take(3600.0) == 4.0


def test_token_bucket_try_take_refuses_without_charging_when_empty() -> None:
    """``try_take`` never goes into debt: a refused take costs nothing."""
    bucket = TokenBucket(rate_per_s=1.0, burst=2, now=0.0)
    assert bucket.try_take(0.0)
    assert bucket.try_take(0.0)
    assert [bucket.try_take(0.0) for _ in range(10)] == [False] * 10
    assert not bucket.try_take(0.5)
    assert bucket.try_take(1.0)  # one whole token refilled, the refusals took nothing


def test_token_bucket_try_take_keeps_partial_refill_when_refused() -> None:
    """Half a token refilled before a refusal still counts towards the next token."""
    bucket = TokenBucket(rate_per_s=1.0, burst=1, now=0.0)
    assert bucket.try_take(0.0)
    assert not bucket.try_take(0.5)
    assert bucket.try_take(1.0)


# --------------------------------------------------------------------------- OriginPolicy


@pytest.mark.parametrize("origin", [None, ""])
def test_origin_policy_allows_missing_origin_when_no_patterns(origin: str | None) -> None:
    """Without patterns, only handshakes without an Origin (non-browser clients) pass."""
    assert OriginPolicy(()).allows(origin)


@pytest.mark.parametrize("origin", ["https://example.com", "null", "http://127.0.0.1:8000"])
def test_origin_policy_refuses_every_origin_when_no_patterns(origin: str) -> None:
    """Without patterns, no Host to compare with and not on loopback, any browser origin is
    refused (the default rule is in test_origin_policy.py)."""
    assert not OriginPolicy(()).allows(origin)


def test_origin_policy_allows_everything_when_star() -> None:
    """``*`` alone allows every origin."""
    policy = OriginPolicy(["*"])
    assert policy.allows("https://anything.example")
    assert policy.allows("null")
    assert policy.allows(None)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM", True),
        ("https://app.example.com.evil.net", False),
        ("https://evil.net/https://app.example.com", False),
        ("http://app.example.com", False),
        ("https://appxexample.com", False),
        ("https://eu.example.org", True),
        ("https://a.b.example.org", True),
        ("https://example.org", False),
        ("https://eu.example.org:8443", False),
    ],
)
def test_origin_policy_matches_whole_origin_with_globs(origin: str, allowed: bool) -> None:
    """Patterns match the whole origin, case-insensitively; ``*`` globs and ``.`` is literal."""
    policy = OriginPolicy(["https://app.example.com", "https://*.EXAMPLE.org"])
    assert policy.allows(origin) is allowed


# --------------------------------------------------------------------------- admission


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
