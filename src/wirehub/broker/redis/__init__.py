"""Redis broker and presence: fan-out between gateway replicas, presence with expiry.

**Names.** Every key and channel starts with ``key_prefix``, so deployments can share one Redis.
A wirehub channel ``C`` is the Redis channel ``{prefix}:pub:{C}``; its presence lives in four
keys ``{prefix}:presence:{C}:*``. The braces make ``C`` their hash tag: in a Redis Cluster the
channel and its keys live on one shard, and channels spread over the shards. (A channel whose
name holds a brace gets a digest of its name as the tag instead.) Node-level control messages
travel on ``{prefix}:control``.

**Pub/sub side.** A node holds one pub/sub connection per Redis server it needs, a ``Link``:
one for a single server; in a cluster, one per master that owns some of the node's channels,
with sharded pub/sub (``SSUBSCRIBE``), so that fan-out capacity grows with the shards. Each
wirehub channel is subscribed once per node (the Hub refcounts its local subscribers). A link's
reader decodes each envelope once and hands it to the listener: no work per subscriber here.

A link that breaks reconnects with capped, jittered exponential backoff, subscribes its
channels again and, once Redis has confirmed them (a ``PING`` sent after the subscribes comes
back), reports them to the listener as a gap: the Hub then repairs channels with history from
the store. A link that hears nothing for ``health_interval_s`` pings; no answer by the next
interval drops it. In a cluster, a ``MOVED`` reply or a shard channel that Redis unsubscribes
(its slot moved) refreshes the slot map and moves the channel to its new owner, again with a
gap.

**Command side.** Publishing (``PUBLISH``, or ``SPUBLISH`` in a cluster) and the presence
scripts use redis-py's asyncio client on a *blocking* pool of ``max_connections`` connections:
a command waits for a free connection instead of failing. A cluster client's per-node pools
raise when full, so a semaphore bounds them. Every driver error becomes ``BrokerUnavailable``.

This package (with the rest of ``wirehub.broker``) is the only one that imports ``redis``:
``keys`` (names and slots), ``client`` (the command side), ``links`` (the pub/sub side), ``broker``
and ``presence`` (its Lua scripts are the ``*.lua`` files beside it).
"""

from wirehub.broker.redis.broker import RedisBroker, open_redis
from wirehub.broker.redis.client import RedisClient
from wirehub.broker.redis.keys import KeySpace, channel_slot, hash_tag, slot_of
from wirehub.broker.redis.presence import RedisPresence

__all__ = [
    "KeySpace",
    "RedisBroker",
    "RedisClient",
    "RedisPresence",
    "channel_slot",
    "hash_tag",
    "open_redis",
    "slot_of",
]
