"""MemoryRateLimiter: the RateLimiter on one replica, for ``memory://`` brokers.

The same token-bucket arithmetic as ``server/rate.py`` (which this layer may not import) and
as the Redis script in ``redis_rate.py``. Memory stays bounded: at most ``max_keys`` buckets;
beyond that the least recently touched ones are forgotten (the likeliest to have refilled
anyway). Under a flood of distinct keys this fails open for the oldest keys rather than growing
without bound; the per-address bucket still holds the flood itself back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MemoryRateLimiter"]


class MemoryRateLimiter:
    """A ``RateLimiter`` in a dict; ``clock`` is monotonic seconds (fake it in tests)."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        """key -> (tokens, updated), oldest update first."""
        self._max_keys = max_keys
        self._clock = clock

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._buckets.clear()

    async def hit(self, key: str, *, limit: int, window_s: float) -> float:
        now = self._clock()
        rate = limit / window_s
        tokens = self._tokens(key, now, limit, rate)
        if tokens < 1.0:
            return (1.0 - tokens) / rate
        self._store(key, tokens - 1.0, now)
        return 0.0

    async def refund(self, key: str, *, limit: int, window_s: float) -> None:
        now = self._clock()
        tokens = self._tokens(key, now, limit, limit / window_s)
        self._store(key, min(float(limit), tokens + 1.0), now)

    def _tokens(self, key: str, now: float, limit: int, rate: float) -> float:
        state = self._buckets.get(key)
        if state is None:
            return float(limit)
        tokens, updated = state
        return min(float(limit), tokens + max(0.0, now - updated) * rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets.pop(key, None)  # re-insert: the dict stays ordered by last update
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._evict()

    def _evict(self) -> None:
        # The oldest entries are the likeliest to have refilled; one pass over a bounded prefix.
        for key in list(self._buckets)[: max(1, len(self._buckets) - self._max_keys)]:
            del self._buckets[key]
