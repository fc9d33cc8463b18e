"""A game-like app for integration tests of the in-process server API and the lifespan hooks.

``wirehub serve --app tests.apps.ticker:app``

* A lifespan starts a background task that publishes ``{"tick": n}`` to ``game:state`` at
  ``TICKER_HZ`` (50) until shutdown; ``app.state.hz`` is set before it starts.
* Subscribing to ``game:*`` answers ``{"hz": <app.state.hz>}``: handlers see the app's state.
* RPC ``game:shout`` publishes ``{"from": <user>, "text": <data>}`` to ``game:shouts`` through
  ``ctx.server`` and answers with the publication's offset.
* At shutdown, after the ticker stopped, the number of ticks published is written to the file
  named by ``TICKER_REPORT`` (when set): proof that the shutdown side of the lifespan ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from wirehub import JSON, App, ChannelHandler, Context, NotFound, Router, Server

TICKER_HZ = 50
TICK_CHANNEL = "game:state"

router = Router()


@router.namespace("game")
class Game(ChannelHandler):
    async def on_subscribe(self, ctx: Context) -> JSON | None:
        return {"hz": ctx.state.hz}

    async def on_rpc(self, ctx: Context, method: str, data: JSON) -> JSON:
        if method != "game:shout":
            raise NotFound()
        published = await ctx.server.publish("game:shouts", {"from": ctx.user.id, "text": data})
        return {"offset": published.offset}


app = App(router)


async def tick(server: Server, counter: list[int]) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        counter[0] += 1
        await server.publish(TICK_CHANNEL, {"tick": counter[0]})
        # Keep the rate steady: sleep to the next tick's time, not a fixed period after this one.
        await asyncio.sleep(max(0.0, started + counter[0] / TICKER_HZ - loop.time()))


@app.lifespan
async def ticker(server: Server) -> AsyncIterator[None]:
    app.state.hz = TICKER_HZ
    counter = [0]
    task = asyncio.create_task(tick(server, counter))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    report = os.environ.get("TICKER_REPORT")
    if report:
        # Off the event loop, as any blocking call in a hook should be.
        await asyncio.to_thread(Path(report).write_text, str(counter[0]), encoding="utf-8")
