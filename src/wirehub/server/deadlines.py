"""A connection's timers folded into one scheduled callback: the earliest due deadline.

A connection has several deadlines (stale, next ping, pong, expiry, subscription expiries, the
close deadline); keeping one timer handle for the earliest of them, not one per deadline, costs an
idle connection one handle. The clock is injected (an asyncio loop is one), so that connection
logic can be tested without waiting on the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "Deadlines"]


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What ``Deadlines`` needs of an event loop: its monotonic time and ``call_at``."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Handle: ...


class Deadlines:
    """Named deadlines, each calling its callback once when due; one handle for all of them."""

    __slots__ = ("_clock", "_due", "_handle", "_handle_at")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._due: dict[str, tuple[float, Callable[[], None]]] = {}
        self._handle: Handle | None = None
        self._handle_at = 0.0

    def set(self, name: str, delay_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``delay_s`` seconds, replacing a deadline of the same name."""
        when = self._clock.time() + delay_s
        self._due[name] = (when, callback)
        if self._handle is None or when < self._handle_at:
            self._schedule(when)

    def cancel(self, name: str) -> None:
        """Forget the deadline (the timer fires later for nothing, or for the next one)."""
        self._due.pop(name, None)
        if not self._due and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def cancel_all(self, *, keep: str = "") -> None:
        """Forget every deadline but ``keep``."""
        kept = self._due.get(keep) if keep else None
        self._due.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if kept is not None:
            self._due[keep] = kept
            self._schedule(kept[0])

    def __contains__(self, name: str) -> bool:
        return name in self._due

    def _schedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle_at = when
        self._handle = self._clock.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self._clock.time()
        due = sorted((when, name) for name, (when, _) in self._due.items() if when <= now)
        for _, name in due:
            entry = self._due.pop(name, None)
            if entry is not None:
                entry[1]()  # may set or cancel deadlines: each is looked up again
        if self._due and self._handle is None:
            self._schedule(min(when for when, _ in self._due.values()))
