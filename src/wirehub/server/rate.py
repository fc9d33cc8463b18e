"""TokenBucket: the arithmetic of wirehub's rate limits (handshakes, commands).

Pure code: no sockets, no asyncio, time passed in by the caller, so every limit can be tested
with a fake clock. A bucket costs one small object per connection and a few float operations per
command, never an allocation of its own or an await.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate_per_s`` tokens a second, holding at most ``burst``; starts full.

    ``take`` lets the bucket go into debt (callers charge refused requests too, so a client
    that keeps pushing past the limit only digs deeper); ``try_take`` never does (a refused
    request costs nothing).
    """

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> float:
        """Take one token, on credit if need be; return the balance left (negative: in debt)."""
        tokens = self._tokens + (now - self._updated) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        tokens -= 1.0
        self._tokens = tokens
        self._updated = now
        return tokens

    def try_take(self, now: float) -> bool:
        """Take one token if there is one; False (and nothing taken) if not."""
        tokens = self._tokens + (now - self._updated) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        self._updated = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
