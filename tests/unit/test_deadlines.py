"""Unit tests for ``wirehub.server.deadlines``: several deadlines on one scheduled handle."""

from __future__ import annotations

from tests.helpers import ManualClock

from wirehub.server.deadlines import Deadlines


def test_deadlines_fire_in_time_order_on_one_handle() -> None:
    """Three deadlines keep one live handle and fire in the order they are due."""
    loop = ManualClock()
    deadlines = Deadlines(loop)
    fired: list[str] = []
    deadlines.set("ping", 25, lambda: fired.append("ping"))
    deadlines.set("stale", 15, lambda: fired.append("stale"))
    deadlines.set("expire", 3600, lambda: fired.append("expire"))
    assert loop.live == 1
    loop.advance(20)
    assert fired == ["stale"]
    loop.advance(10)
    assert fired == ["stale", "ping"]
    assert loop.live == 1
    loop.advance(4000)
    assert fired == ["stale", "ping", "expire"]
    assert loop.live == 0


def test_replacing_and_cancelling_deadlines() -> None:
    """set() with a known name moves that deadline; cancel() and cancel_all() forget them."""
    loop = ManualClock()
    deadlines = Deadlines(loop)
    fired: list[str] = []
    deadlines.set("ping", 10, lambda: fired.append("first"))
    deadlines.set("ping", 30, lambda: fired.append("moved"))
    deadlines.set("pong", 20, lambda: fired.append("pong"))
    deadlines.cancel("pong")
    loop.advance(25)
    assert fired == []
    loop.advance(10)
    assert fired == ["moved"]
    deadlines.set("a", 5, lambda: fired.append("a"))
    deadlines.set("abort", 6, lambda: fired.append("abort"))
    deadlines.cancel_all(keep="abort")
    assert "abort" in deadlines
    assert "a" not in deadlines
    loop.advance(10)
    assert fired == ["moved", "abort"]


def test_callback_may_set_the_next_deadline() -> None:
    """A ping callback that schedules the next ping keeps the connection's timer going."""
    loop = ManualClock()
    deadlines = Deadlines(loop)
    pings: list[float] = []

    def ping() -> None:
        pings.append(loop.now)
        deadlines.set("ping", 25, ping)

    deadlines.set("ping", 25, ping)
    loop.advance(25)
    loop.advance(25)
    loop.advance(25)
    assert pings == [125.0, 150.0, 175.0]
    assert loop.live == 1
