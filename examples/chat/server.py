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

The database client is opened and closed by a lifespan hook and handed to the handlers through
``app.state``: the pattern of docs/handlers.md, "Handlers that own their data".
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from wirehub import JSON, App, ChannelHandler, Context, Forbidden, Invalid, NotFound, Router, Server

MAX_TEXT = 2000

router = Router()
app = App(router)


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
            "text": _text(data),
            "at": int(time.time() * 1000),
        }
        messages: AsyncCollection[dict[str, Any]] | None = ctx.state.messages
        if messages is not None:
            await messages.insert_one({"_id": message["id"], "room": ctx.channel, **message})
        return message  # stored in the room's history with the next offset, then fanned out

    async def on_rpc(self, ctx: Context, method: str, data: JSON) -> JSON:
        if method not in ("chat:edit", "chat:delete") or not isinstance(data, dict):
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
