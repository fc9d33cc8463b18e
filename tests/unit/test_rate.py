"""Unit tests for ``wirehub.server.rate``: the token bucket behind handshake and command rates."""

from __future__ import annotations

from wirehub.server.rate import TokenBucket


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
