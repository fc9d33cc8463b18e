"""What the SQLite store's companions (accounts, refresh tokens) need of it: a way to run a job
on its one connection and worker thread. An interface, so that they do not import the store that
builds them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["ConnectionRunner"]

_T = TypeVar("_T")


class ConnectionRunner(Protocol):
    async def run_with_connection(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``job(connection)`` on the worker thread; driver errors as ``StoreUnavailable``."""
        ...
