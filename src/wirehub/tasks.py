"""Stopping background tasks: how every object with ``start()``/``close()`` ends what it started.

A ``close`` cancels its tasks and waits until they have finished, so that nothing of the object
runs on after it returns; the tasks' own ``CancelledError`` is what cancelling them means, not
a failure, so it is swallowed. Importable from any layer but the protocol (which has no asyncio).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_all", "cancel_and_wait"]


async def cancel_and_wait(
    task: asyncio.Future[Any] | None, *, ignore: tuple[type[Exception], ...] = ()
) -> None:
    """Cancel ``task`` (None: nothing was started) and wait until it has finished.

    It may end with ``CancelledError`` or, with ``ignore``, with one of those exceptions; any
    other exception it ends with is raised here.
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        # The task's own cancellation is what was asked for; the caller's (a close that is
        # itself cancelled while it waits) must go on up.
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except ignore:
        pass


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel every one of ``tasks`` and wait until all have finished, whatever each ends with."""
    stopping = list(tasks)
    for task in stopping:
        task.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)
