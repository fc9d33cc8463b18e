"""SqliteStore opening one new file from several connections at once, as ``serve --workers`` does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wirehub.storage.sqlite import SqliteStore

ROUNDS = 50
"""Without the retry, about one round in four loses the race: fifty make missing it unlikely."""


async def test_stores_opening_a_new_file_together_all_start(tmp_path: Path) -> None:
    """Two stores that open one new file at the same moment both start: the switch to WAL, which
    SQLite does not let wait through busy_timeout, waits for the other connection's lock."""
    for n in range(ROUNDS):
        stores = [SqliteStore(str(tmp_path / f"new{n}.db")) for _ in range(2)]
        try:
            await asyncio.gather(*(store.start() for store in stores))
        finally:
            for store in stores:
                await store.close()
