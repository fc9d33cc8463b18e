"""The RateLimiter contract, against the in-process limiter and Redis (one server, and a cluster).

Redis keeps its own clock, so these tests only rely on what holds within a fraction of a
window: a bucket does not refill noticeably while a test makes a handful of calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from wirehub.broker.base import RateLimiter
from wirehub.broker.memory_rate import MemoryRateLimiter
from wirehub.broker.redis import RedisClient
from wirehub.broker.redis_rate import RedisRateLimiter
from wirehub.config import BrokerSettings

WINDOW_S = 600.0
"""Long enough that no test sees a refill between its calls."""

OpenLimiter = Callable[[], RateLimiter]


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def limiter_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def backend_url(limiter_kind: str, request: pytest.FixtureRequest) -> str:
    if limiter_kind == "memory":
        return ""
    url: str = request.getfixturevalue(
        "redis_cluster_url" if limiter_kind == "redis-cluster" else "redis_url"
    )
    return url


@pytest.fixture
async def open_limiter(limiter_kind: str, backend_url: str, unique_name: str) -> AsyncIterator[OpenLimiter]:
    """Opens limiters of one kind that share their counts (same Redis, same key prefix)."""
    opened: list[RateLimiter] = []
    shared = MemoryRateLimiter()

    def open_one() -> RateLimiter:
        limiter: RateLimiter
        if limiter_kind == "memory":
            limiter = shared
        else:
            client = RedisClient(backend_url, cluster=limiter_kind == "redis-cluster")
            limiter = RedisRateLimiter(client, key_prefix=unique_name, owns_client=True)
        opened.append(limiter)
        return limiter

    yield open_one
    for limiter in opened:
        await limiter.close()


async def test_hit_allows_limit_attempts_then_reports_wait(open_limiter: OpenLimiter) -> None:
    """A bucket of 3 admits three attempts; the fourth is refused with about a third of the window."""
    limiter = open_limiter()
    await limiter.start()

    waits = [await limiter.hit("user:a", limit=3, window_s=WINDOW_S) for _ in range(4)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert WINDOW_S / 3 - 5 < waits[3] <= WINDOW_S / 3


async def test_hit_counts_keys_separately(open_limiter: OpenLimiter) -> None:
    """Exhausting one key leaves another key's bucket full."""
    limiter = open_limiter()
    await limiter.hit("user:a", limit=1, window_s=WINDOW_S)

    refused = await limiter.hit("user:a", limit=1, window_s=WINDOW_S)
    other = await limiter.hit("user:b", limit=1, window_s=WINDOW_S)

    assert refused > 0
    assert other == 0.0


async def test_refused_hit_does_not_dig_deeper(open_limiter: OpenLimiter) -> None:
    """Refused attempts cost nothing: the wait does not grow with each refusal."""
    limiter = open_limiter()
    await limiter.hit("k", limit=1, window_s=WINDOW_S)

    first = await limiter.hit("k", limit=1, window_s=WINDOW_S)
    for _ in range(5):
        await limiter.hit("k", limit=1, window_s=WINDOW_S)
    later = await limiter.hit("k", limit=1, window_s=WINDOW_S)

    assert later <= first


async def test_refund_gives_one_attempt_back_but_never_beyond_limit(open_limiter: OpenLimiter) -> None:
    """After a refund one more attempt passes; refunding a full bucket adds nothing."""
    limiter = open_limiter()
    await limiter.refund("k", limit=2, window_s=WINDOW_S)  # full already: stays at 2
    assert await limiter.hit("k", limit=2, window_s=WINDOW_S) == 0.0
    assert await limiter.hit("k", limit=2, window_s=WINDOW_S) == 0.0
    assert await limiter.hit("k", limit=2, window_s=WINDOW_S) > 0

    await limiter.refund("k", limit=2, window_s=WINDOW_S)

    assert await limiter.hit("k", limit=2, window_s=WINDOW_S) == 0.0
    assert await limiter.hit("k", limit=2, window_s=WINDOW_S) > 0


async def test_limiters_share_counts_when_backed_by_one_service(open_limiter: OpenLimiter) -> None:
    """Two limiters (two replicas) on one backend draw from the same bucket."""
    first, second = open_limiter(), open_limiter()

    assert await first.hit("shared", limit=2, window_s=WINDOW_S) == 0.0
    assert await second.hit("shared", limit=2, window_s=WINDOW_S) == 0.0
    assert await first.hit("shared", limit=2, window_s=WINDOW_S) > 0
    assert await second.hit("shared", limit=2, window_s=WINDOW_S) > 0


async def test_memory_limiter_refills_evenly_with_clock() -> None:
    """With a fake clock: a drained bucket of 4 per 60 s admits one attempt again after 15 s."""
    now = [100.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    for _ in range(4):
        await limiter.hit("k", limit=4, window_s=60.0)

    refused = await limiter.hit("k", limit=4, window_s=60.0)
    now[0] += 15.0
    again = await limiter.hit("k", limit=4, window_s=60.0)
    after = await limiter.hit("k", limit=4, window_s=60.0)

    assert refused == pytest.approx(15.0)
    assert again == 0.0
    assert after == pytest.approx(15.0)


async def test_memory_limiter_forgets_oldest_buckets_when_over_max_keys() -> None:
    """Beyond max_keys the least recently used bucket is dropped, so memory stays bounded."""
    limiter = MemoryRateLimiter(max_keys=2, clock=lambda: 0.0)
    await limiter.hit("a", limit=1, window_s=60.0)
    await limiter.hit("b", limit=1, window_s=60.0)
    await limiter.hit("c", limit=1, window_s=60.0)  # evicts "a", the oldest

    assert await limiter.hit("a", limit=1, window_s=60.0) == 0.0  # a fresh bucket again
    assert await limiter.hit("c", limit=1, window_s=60.0) > 0  # still remembered


def test_redis_limiter_from_settings_uses_broker_key_prefix() -> None:
    """The limiter built from the broker settings keys its buckets under the broker's prefix."""
    limiter = RedisRateLimiter.from_settings(BrokerSettings(url="redis://127.0.0.1:1/0", key_prefix="acme"))

    assert limiter._prefix == "acme:ratelimit:"
