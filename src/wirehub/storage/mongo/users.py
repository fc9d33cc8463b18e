"""MongoUserStore: the UserStore in the ``accounts`` collection, unique on ``username_key``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from wirehub.errors import UsernameTaken
from wirehub.storage.base import (
    Account,
    from_millis,
    millis,
    new_account,
    username_key,
)
from wirehub.storage.mongo.documents import Doc

__all__ = ["AccountsSource", "MongoUserStore"]


class AccountsSource(Protocol):
    """What the user store needs of the MongoStore: the ``accounts`` collection for one call."""

    def accounts(self) -> contextlib.AbstractAsyncContextManager[AsyncCollection[Doc]]: ...


def _account(doc: Mapping[str, Any]) -> Account:
    last_login = doc.get("last_login_ms")
    return Account(
        id=str(doc["_id"]),
        username=str(doc["username"]),
        password_hash=str(doc["password_hash"]),
        created_at=from_millis(int(doc["created_at_ms"])),
        last_login_at=None if last_login is None else from_millis(int(last_login)),
        disabled=bool(doc.get("disabled", False)),
    )


class MongoUserStore:
    """UserStore in the ``accounts`` collection, unique on ``username_key``; bcrypt hashes only."""

    def __init__(self, store: AccountsSource, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(self, username: str, password_hash: str) -> Account:
        account = new_account(username, password_hash, now_s=self._clock())
        async with self._store.accounts() as accounts:
            try:
                await accounts.insert_one(
                    {
                        "_id": account.id,
                        "username": username,
                        "username_key": username_key(username),
                        "password_hash": password_hash,
                        "created_at_ms": millis(account.created_at),
                        "last_login_ms": None,
                        "disabled": False,
                    }
                )
            except DuplicateKeyError as exc:
                # username_key is the index that fails: ids are 96 random bits.
                raise UsernameTaken(username) from exc
        return account

    async def find(self, username: str) -> Account | None:
        async with self._store.accounts() as accounts:
            doc = await accounts.find_one({"username_key": username_key(username)})
        return None if doc is None else _account(doc)

    async def get(self, account_id: str) -> Account | None:
        async with self._store.accounts() as accounts:
            doc = await accounts.find_one({"_id": account_id})
        return None if doc is None else _account(doc)

    async def record_login(self, account_id: str, at: datetime) -> bool:
        ms = millis(at)
        async with self._store.accounts() as accounts:
            result = await accounts.update_one({"_id": account_id}, {"$set": {"last_login_ms": ms}})
        return result.matched_count == 1

    async def set_disabled(self, account_id: str, disabled: bool) -> bool:
        async with self._store.accounts() as accounts:
            result = await accounts.update_one({"_id": account_id}, {"$set": {"disabled": disabled}})
        return result.matched_count == 1
