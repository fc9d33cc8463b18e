"""RedisRateLimiter: the RateLimiter shared by every replica on one Redis (or Redis Cluster).

One hash per bucket (``<prefix>:ratelimit:<key>``: tokens and last update), changed by one Lua
script, so concurrent attempts from any replica are counted exactly. The script reads Redis's
own clock (``TIME``): replicas need not agree on the time. A bucket expires once it would be
full again, so idle keys cost nothing. Each call touches one key, so it works on a cluster.
"""

from __future__ import annotations

import math

from wirehub.broker.redis import RedisClient
from wirehub.config import BrokerSettings

__all__ = ["RedisRateLimiter"]

# KEYS[1]: the bucket. ARGV: limit, window in seconds, cost (1 = take, -1 = give back).
# Returns the seconds to wait as a string ("0" when the attempt was taken); Lua numbers would be
# truncated to integers on the way out.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local rate = limit / window
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = limit
else
  tokens = math.min(limit, tokens + math.max(0, now - updated) * rate)
end
if cost > 0 and tokens < cost then
  return tostring((cost - tokens) / rate)
end
tokens = math.min(limit, tokens - cost)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((limit - tokens) / rate * 1000) + 1000)
return '0'
"""


class RedisRateLimiter:
    """A ``RateLimiter`` in Redis; see the module docstring."""

    def __init__(self, client: RedisClient, *, key_prefix: str, owns_client: bool = False) -> None:
        self._client = client
        self._prefix = f"{key_prefix}:ratelimit:"
        self._owns_client = owns_client
        self._bucket = client.register_script(_BUCKET)

    @classmethod
    def from_settings(cls, settings: BrokerSettings, *, max_connections: int = 8) -> RedisRateLimiter:
        """A limiter with a small pool of its own on the broker's Redis (closed by ``close``)."""
        client = RedisClient(settings.url, cluster=settings.cluster, max_connections=max_connections)
        return cls(client, key_prefix=settings.key_prefix, owns_client=True)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def hit(self, key: str, *, limit: int, window_s: float) -> float:
        wait = await self._client.run(self._bucket, [self._prefix + key], [limit, repr(window_s), 1])
        seconds = float(wait)
        return seconds if math.isfinite(seconds) and seconds > 0 else 0.0

    async def refund(self, key: str, *, limit: int, window_s: float) -> None:
        await self._client.run(self._bucket, [self._prefix + key], [limit, repr(window_s), -1])
