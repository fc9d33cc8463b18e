"""MongoRefreshTokenStore: the RefreshTokenStore in the MongoStore's database.

Two collections: ``refresh_tokens`` (``_id`` is the token's SHA-256, never the token) and
``refresh_families`` (``_id`` is the family, carrying ``revoked_at_ms``). Single-document
updates only (no transactions: the nx-27017 stand-in lacks them): ``use`` is a compare-and-set
on ``used_at_ms: null``, so exactly one caller wins. Revocation lives on the family document,
so a token added after (or while) its family is revoked is revoked too, whatever the order of
the two writes.

Every call goes through ``MongoStore.database()``: it waits for readiness within the store's
time budget and turns driver errors into ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from wirehub.storage.base import RefreshToken, check_token_hash, from_millis, millis
from wirehub.storage.mongo import MongoStore

__all__ = ["MongoRefreshTokenStore"]

TOKENS = "refresh_tokens"
FAMILIES = "refresh_families"


def _token(doc: Mapping[str, Any], family: Mapping[str, Any] | None) -> RefreshToken:
    used = doc.get("used_at_ms")
    return RefreshToken(
        token_hash=str(doc["_id"]),
        family=str(doc["family"]),
        account_id=str(doc["account_id"]),
        created_at=from_millis(int(doc["created_at_ms"])),
        expires_at=from_millis(int(doc["expires_at_ms"])),
        used_at=None if used is None else from_millis(int(used)),
        revoked=family is not None and family.get("revoked_at_ms") is not None,
    )


class MongoRefreshTokenStore:
    """RefreshTokenStore on MongoDB; see the module docstring."""

    def __init__(self, store: MongoStore) -> None:
        self._store = store

    async def start(self) -> None:
        async with self._store.database() as db:
            await db[TOKENS].create_index("expires_at_ms", name="expires_at_ms")
            await db[FAMILIES].create_index("expires_at_ms", name="expires_at_ms")

    async def add(self, token: RefreshToken) -> None:
        check_token_hash(token.token_hash)
        expires = millis(token.expires_at)
        async with self._store.database() as db:
            # The family first: a token never exists without the family that can revoke it.
            await db[FAMILIES].update_one(
                {"_id": token.family},
                {
                    "$setOnInsert": {"account_id": token.account_id, "revoked_at_ms": None},
                    "$max": {"expires_at_ms": expires},
                },
                upsert=True,
            )
            await db[TOKENS].insert_one(
                {
                    "_id": token.token_hash,
                    "family": token.family,
                    "account_id": token.account_id,
                    "created_at_ms": millis(token.created_at),
                    "expires_at_ms": expires,
                    "used_at_ms": None,
                }
            )

    async def get(self, token_hash: str) -> RefreshToken | None:
        async with self._store.database() as db:
            doc = await db[TOKENS].find_one({"_id": token_hash})
            if doc is None:
                return None
            family = await db[FAMILIES].find_one({"_id": doc["family"]})
        return _token(doc, family)

    async def use(self, token_hash: str, at: datetime) -> bool:
        ms = millis(at)
        async with self._store.database() as db:
            result = await db[TOKENS].update_one(
                {"_id": token_hash, "used_at_ms": None}, {"$set": {"used_at_ms": ms}}
            )
        return result.modified_count == 1

    async def revoke_family(self, family: str, at: datetime) -> None:
        ms = millis(at)
        async with self._store.database() as db:
            await db[FAMILIES].update_one(
                {"_id": family, "revoked_at_ms": None}, {"$set": {"revoked_at_ms": ms}}
            )

    async def purge(self, before: datetime) -> int:
        ms = millis(before)
        async with self._store.database() as db:
            result = await db[TOKENS].delete_many({"expires_at_ms": {"$lt": ms}})
            await db[FAMILIES].delete_many({"expires_at_ms": {"$lt": ms}})
        return int(result.deleted_count)
