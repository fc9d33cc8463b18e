"""Unit tests for ``wirehub.tasks``: what a ``close()`` relies on to stop the tasks it started."""

from __future__ import annotations

import asyncio

import pytest

from wirehub.tasks import cancel_all, cancel_and_wait


async def test_cancel_and_wait_returns_once_the_task_has_finished() -> None:
    """The task is cancelled and has run its cleanup by the time the call returns."""
    started, cleaned_up = asyncio.Event(), asyncio.Event()

    async def loop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()

    task = asyncio.create_task(loop())
    await started.wait()
    await cancel_and_wait(task)
    assert task.cancelled()
    assert cleaned_up.is_set()


async def test_cancel_and_wait_accepts_no_task() -> None:
    """None stands for a task that was never started: nothing to do."""
    await cancel_and_wait(None)


async def test_cancel_and_wait_raises_what_the_task_failed_with_unless_ignored() -> None:
    """A task that had already failed raises its error, or not when the caller ignores it."""

    async def fail() -> None:
        raise LookupError("gone")

    failed = asyncio.create_task(fail())
    await asyncio.wait([failed])
    with pytest.raises(LookupError, match="gone"):
        await cancel_and_wait(failed)

    ignored = asyncio.create_task(fail())
    await asyncio.wait([ignored])
    await cancel_and_wait(ignored, ignore=(LookupError,))


async def test_cancel_all_waits_for_every_task_whatever_it_ends_with() -> None:
    """Running tasks are cancelled, finished and failed ones are collected; none is left pending."""

    async def wait_forever() -> None:
        await asyncio.Event().wait()

    async def fail() -> None:
        raise LookupError("gone")

    running = [asyncio.create_task(wait_forever()) for _ in range(3)]
    failed = asyncio.create_task(fail())
    await asyncio.wait([failed])
    await cancel_all({*running, failed})
    assert all(task.cancelled() for task in running)
    assert failed.done()


async def test_a_caller_cancelled_while_waiting_stays_cancelled() -> None:
    """Cancelling the task that waits in ``cancel_and_wait`` cancels it: its cancel is not swallowed."""
    started, cancelled, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await release.wait()  # cleanup that takes a while
            raise

    child = asyncio.create_task(slow_to_stop())
    await started.wait()
    closer = asyncio.create_task(cancel_and_wait(child))
    await cancelled.wait()
    closer.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert closer.cancelled()
    await asyncio.wait([child])
