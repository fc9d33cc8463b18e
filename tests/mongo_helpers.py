"""Helpers for tests against MongoDB (the nx-27017 stand-in, or WIREHUB_TEST_MONGODB_URL) and stores.

Each test works in a database of its own, named by the ``unique_name`` fixture, and drops only
that database afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pymongo import AsyncMongoClient

from wirehub.storage.base import MessageStore
from wirehub.storage.mongo import MongoStore

WAIT_S = 30.0
"""Deadline for MongoDB (re)appearing and for the store becoming ready: generous on a busy box."""


def database_url(base_url: str, name: str) -> str:
    """``base_url`` with its database path set to ``name``, keeping hosts and options."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path="/" + name))


def raw_client(url: str) -> AsyncMongoClient[dict[str, Any]]:
    """A plain PyMongo client for looking at what the store wrote (not for the store itself)."""
    return AsyncMongoClient(url, serverSelectionTimeoutMS=int(WAIT_S * 1000))


async def drop_database(url: str) -> None:
    """Drop the database ``url`` names (one the test created)."""
    client = raw_client(url)
    try:
        await client.drop_database(client.get_default_database().name)
    finally:
        await client.close()


async def start_store(store: MessageStore) -> None:
    """Start ``store``; a MongoStore is also waited on until MongoDB answers (under ``WAIT_S``)."""
    await store.start()
    if isinstance(store, MongoStore):
        async with asyncio.timeout(WAIT_S):
            await store.wait_ready()
