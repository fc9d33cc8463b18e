"""MongoStore: the MessageStore and UserStore on MongoDB, through PyMongo's native asyncio API.

The only package that imports ``pymongo`` (docs/decisions/0004). Every driver error leaves it as
``StoreUnavailable`` (error 100, temporary).

Collections, in the database the URL names (``wirehub`` when it names none):

* ``streams``: one document per channel, never deleted::

      {_id: channel, top: int, epoch: str, floor: int, pending: [publication...], batch: str}

  ``top`` is the last offset handed out and ``floor`` the highest offset retention by size has
  dropped. ``pending`` holds the publications of the latest append, written in the same atomic
  update that raised ``top``;
* ``publications``: one document per publication, unique on ``(channel, offset)``::

      {channel, offset, data, info?, tags?, time_ms, expires_at, idem?, hold_until}

  ``data``, ``info`` and ``tags`` are JSON text (ASCII, NUL escaped): MongoDB stores them and
  never interprets a key such as ``$set`` or ``a.b``, and numbers keep their JSON form;
* ``accounts``: the UserStore (``MongoUserStore``), unique on ``username_key``.

Appending (the algorithm, docs/decisions/0005-mongodb-offsets.md; per channel, serialised within
this process by a lock, so cross-process contention is only between replicas):

1. Know the stream document: cached from this process's previous append, else read (and
   created with a fresh epoch by an insert that loses gracefully to a concurrent one).
2. If its ``pending`` publications are not known to be stored, insert them (unordered; a
   duplicate key means someone already did). This is what makes step 4 safe.
3. Idempotency keys: look them up among the stored publications and ``pending``.
4. Compare-and-set: ``update_one({_id, top: T, epoch}, {$set: {top: T+n, floor, pending: batch,
   batch: id}})``. If nothing matched, another replica appended first: re-read, go to 2. A batch
   larger than ``MAX_PENDING_BYTES`` goes in several such chunks.
5. The batch is durable and visible now (``read`` merges ``pending``): the append succeeds. It
   then inserts the batch into ``publications``; if that fails, step 2 of the next append does it.
6. At most once per ``trim_interval_s`` per channel, delete what retention dropped.

Failure analysis, in short (the ADR has it in full): offsets are reserved only by the atomic
update in step 4, which also carries the data, so a crash anywhere leaves either nothing (before
4: the publish was not acknowledged) or a complete batch (after 4); no offset is ever reserved
without its publication, so none is skipped, and none is reused because the update is guarded
by ``top``. ``pending`` is only ever replaced after it is stored (step 2), so no acknowledged
publication is lost. An ambiguous failure of step 4 (connection lost after sending) is reported
as ``StoreUnavailable``; a retry may then store the publication twice, under two offsets, unless
it carries an idempotency key.

No transactions, change streams or TTL indexes are used (the nx-27017 stand-in lacks them, and
they are not needed): retention is enforced by ``read`` filtering on ``floor`` and
``expires_at`` and by step 6.
"""

from wirehub.storage.mongo.options import read_preference_for, write_concern_for
from wirehub.storage.mongo.store import MongoStore
from wirehub.storage.mongo.users import MongoUserStore

__all__ = ["MongoStore", "MongoUserStore", "read_preference_for", "write_concern_for"]
