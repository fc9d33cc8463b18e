"""The chat example's server side: rooms whose messages live in the app's own MongoDB collection.

    wirehub serve --config wirehub.toml --app server:app        # from examples/chat/

* Publications to ``chat:<room>`` must be ``{"text": "..."}`` (1 to 2,000 characters after
  trimming). The handler gives each message an id, stores it in the ``messages`` collection of
  the database named by ``CHAT_MONGODB_URL`` (when set), and returns what every member receives:
  ``{"type": "message", "id", "user", "text", "at"}``. The gateway keeps the room's recent
  history and recovery as for any channel with history.
* RPC ``chat:edit`` ``{"channel", "id", "text"}`` and ``chat:delete`` ``{"channel", "id"}``
  change a message its author sent, in the collection, and publish the change to the room
  (``{"type": "edit", "id", "text"}`` or ``{"type": "delete", "id"}``) through the server API.
* Without ``CHAT_MONGODB_URL`` the messages are only in the gateway's history, which is where
  edits and deletes then look the author up.
* RPC ``chat:rooms`` lists the rooms (``{"rooms": [...]}``, ``lobby`` first) and ``chat:create``
  ``{"room"}`` adds one (lowercase letters, digits and dashes, at most 32). The list is the
  history of the ``rooms:index`` channel, which the page also subscribes to, so a new room shows
  up in every open page at once.
* ``typing:<room>`` carries "someone is typing" (``{"typing": true}`` in, ``{"user", "name"}``
  out), without history or recovery: a stale notice is worth nothing.
* ``web/`` is the page, served by the gateway (``App(static_dir=...)``); README.md explains it.

The database client is opened and closed by a lifespan hook and handed to the handlers through
``app.state``: the pattern of docs/handlers.md, "Handlers that own their data".
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from wirehub import JSON, App, ChannelHandler, Context, Forbidden, Invalid, NotFound, Router, Server

MAX_TEXT = 2000
ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
ROOMS_INDEX = "rooms:index"
"""Each publication there is ``{"room": name}``: the room list, kept by the gateway's history."""
DEFAULT_ROOM = "lobby"

router = Router()
# The page, served by the gateway on its HTTP port (the origin of /auth/*), wherever it is started from.
app = App(router, static_dir=Path(__file__).parent / "web")


@app.lifespan
async def database(server: Server) -> AsyncIterator[None]:
    """Open the app's MongoDB (if configured) for the handlers, and close it at shutdown."""
    url = os.environ.get("CHAT_MONGODB_URL", "")
    if not url:
        app.state.messages = None
        yield
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    messages = client.get_default_database()["messages"]
    await messages.create_index([("room", 1), ("at", 1)])
    app.state.messages = messages
    try:
        yield
    finally:
        await client.close()


def _text(data: Mapping[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str) or not 0 < len(text.strip()) <= MAX_TEXT:
        raise Invalid(f"text must be 1 to {MAX_TEXT} characters")
    return text.strip()


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise Invalid(f"{key} must be a non-empty string")
    return value


def _display_name(ctx: Context) -> str:
    """The account's username (the connection info /auth/login puts in the token), else the id."""
    info = ctx.user.info
    name = info.get("username") if isinstance(info, dict) else None
    return name if isinstance(name, str) and name else ctx.user.id


async def _rooms(ctx: Context) -> list[str]:
    page = await ctx.server.history(ROOMS_INDEX, limit=-1)
    names = [DEFAULT_ROOM]
    for pub in page.publications:
        room = pub.data.get("room") if isinstance(pub.data, dict) else None
        if isinstance(room, str) and room not in names:
            names.append(room)
    return names


@router.namespace("typing")
class Typing(ChannelHandler):
    async def on_publish(self, ctx: Context, data: JSON) -> JSON:
        if not ctx.granted:
            raise Forbidden()
        if data != {"typing": True}:
            raise Invalid('a typing notice is {"typing": true}')
        return {"user": ctx.user.id, "name": _display_name(ctx)}


@router.namespace("chat")
class Room(ChannelHandler):
    async def on_publish(self, ctx: Context, data: JSON) -> JSON:
        if not ctx.granted:  # the namespace options: members of the room may post
            raise Forbidden()
        if not isinstance(data, dict) or set(data) != {"text"}:
            raise Invalid('a message is {"text": "..."}')
        message: dict[str, JSON] = {
            "type": "message",
            "id": uuid.uuid4().hex,
            "user": ctx.user.id,
            "name": _display_name(ctx),
            "text": _text(data),
            "at": int(time.time() * 1000),
        }
        messages: AsyncCollection[dict[str, Any]] | None = ctx.state.messages
        if messages is not None:
            await messages.insert_one({"_id": message["id"], "room": ctx.channel, **message})
        return message  # stored in the room's history with the next offset, then fanned out

    async def on_rpc(self, ctx: Context, method: str, data: JSON) -> JSON:
        if method == "chat:rooms":
            return {"rooms": list[JSON](await _rooms(ctx))}
        if not isinstance(data, dict):
            raise Invalid("params must be an object")
        if method == "chat:create":
            return await self._create_room(ctx, data)
        if method not in ("chat:edit", "chat:delete"):
            raise NotFound()
        channel, message_id = _string(data, "channel"), _string(data, "id")
        if not channel.startswith("chat:"):
            raise Invalid("channel must be a chat room")
        await self._check_author(ctx, channel, message_id)
        messages: AsyncCollection[dict[str, Any]] | None = ctx.state.messages
        change: dict[str, JSON]
        if method == "chat:edit":
            text = _text(data)
            if messages is not None:
                await messages.update_one({"_id": message_id}, {"$set": {"text": text, "edited": True}})
            change = {"type": "edit", "id": message_id, "text": text}
        else:
            if messages is not None:
                await messages.delete_one({"_id": message_id})
            change = {"type": "delete", "id": message_id}
        published = await ctx.server.publish(channel, change)
        return {"offset": published.offset}

    @staticmethod
    async def _create_room(ctx: Context, data: Mapping[str, Any]) -> JSON:
        room = data.get("room")
        if not isinstance(room, str) or not ROOM_NAME.fullmatch(room):
            raise Invalid("a room name is 1 to 32 lowercase letters, digits or dashes")
        if room not in await _rooms(ctx):
            await ctx.server.publish(ROOMS_INDEX, {"room": room, "by": ctx.user.id})
        return {"room": room}

    @staticmethod
    async def _check_author(ctx: Context, channel: str, message_id: str) -> None:
        """Only the author may change a message; NotFound if there is no such message."""
        messages: AsyncCollection[dict[str, Any]] | None = ctx.state.messages
        if messages is not None:
            found = await messages.find_one({"_id": message_id, "room": channel}, {"user": 1})
            author = found["user"] if found else None
        else:
            page = await ctx.server.history(channel, limit=-1)
            authors = {
                pub.data["id"]: pub.data.get("user")
                for pub in page.publications
                if isinstance(pub.data, dict) and pub.data.get("type") == "message"
            }
            author = authors.get(message_id)
        if author is None:
            raise NotFound("no such message")
        if author != ctx.user.id:
            raise Forbidden("only the author may change a message")
