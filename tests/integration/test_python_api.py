"""The in-process server API and the App's lifespan hooks, in a real ``wirehub serve --app`` process.

The app (``tests.apps.ticker``) runs a 50 Hz background task from a lifespan hook and publishes
from a handler through ``ctx.server``; centrifuge-python clients check what arrives. Waits are on
SDK events under a deadline.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import StartGateway
from tests.sdk import Clients, SubEvents, next_event, subscribed

CONFIG = """\
[namespaces.game]
allow_subscribe_for_client = true
"""


async def test_background_task_publishes_every_tick_in_order_and_stops_at_shutdown(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    """A lifespan's 50 Hz ticker reaches a subscriber tick after tick; shutdown runs the lifespan's end."""
    report = tmp_path / "ticks"
    gateway = await start_gateway(
        config=CONFIG, app="tests.apps.ticker:app", env={"TICKER_REPORT": str(report)}
    )
    clients = Clients()
    try:
        client = clients.new(gateway.ws_url, gateway.token("player"))
        events = SubEvents()
        sub = client.new_subscription("game:state", events=events)
        await client.connect()
        assert (await subscribed(sub, events)).data == {"hz": 50}  # the handler read app.state

        # A second of ticks, each once and in order.
        ticks = [(await next_event(events.publications)).pub.data["tick"] for _ in range(50)]
        assert ticks == list(range(ticks[0], ticks[0] + 50))
    finally:
        await clients.close()

    assert await gateway.stop(signal.SIGTERM) == 0
    assert int(report.read_text(encoding="utf-8")) >= ticks[-1]


async def test_handler_publishes_through_context_server(start_gateway: StartGateway) -> None:
    """An RPC handler publishes with ``ctx.server.publish``; a subscriber of that channel receives it."""
    gateway = await start_gateway(config=CONFIG, app="tests.apps.ticker:app")
    clients = Clients()
    try:
        listener = clients.new(gateway.ws_url, gateway.token("listener"))
        events = SubEvents()
        sub = listener.new_subscription("game:shouts", events=events)
        await listener.connect()
        await subscribed(sub, events)
        shouter = clients.new(gateway.ws_url, gateway.token("alice"))
        await shouter.connect()

        result = await shouter.rpc("game:shout", "hello")

        assert result.data == {"offset": 0}  # game has no history
        assert (await next_event(events.publications)).pub.data == {"from": "alice", "text": "hello"}
    finally:
        await clients.close()


async def test_gateway_does_not_start_when_a_startup_hook_fails(start_gateway: StartGateway) -> None:
    """A failing on_startup hook stops the gateway before it listens, and the log says why."""
    with pytest.raises(RuntimeError, match="exited before listening") as failed:
        await start_gateway(app="tests.apps.broken_startup:app")
    assert "database unreachable: db.example:27017" in str(failed.value)
