"""A handler app for integration tests: validated, rewritten chat publications and a few RPCs.

``wirehub serve --app tests.apps.chat_rules:app``

* ``chat:*`` publications must be exactly ``{"text": str}`` with 1 to 200 characters; they are
  stored and fanned out as ``{"from": <user id>, "text": <text>}``. Anything else fails with 107.
* RPC ``echo`` answers ``{"user": <user id>, "echo": <data>}``; ``boom`` crashes the handler
  (the client gets 100 and the connection lives on); other methods fail with 104.
* RPC ``chat:echo`` goes to the chat handler and answers ``{"namespace": "chat", "echo": <data>}``.
"""

from __future__ import annotations

from wirehub.app import App
from wirehub.channels.context import Context
from wirehub.channels.handler import ChannelHandler, ConnectionHandler
from wirehub.channels.router import Router
from wirehub.errors import Forbidden, Invalid, NotFound
from wirehub.types import JSON

MAX_TEXT = 200

router = Router()


@router.namespace("chat")
class ChatRules(ChannelHandler):
    async def on_publish(self, ctx: Context, data: JSON) -> JSON:
        if not ctx.granted:
            raise Forbidden()
        if not isinstance(data, dict) or set(data) != {"text"}:
            raise Invalid('publication must be {"text": string}')
        text = data["text"]
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            raise Invalid(f"text must be a string of 1 to {MAX_TEXT} characters")
        return {"from": ctx.user.id, "text": text}

    async def on_rpc(self, ctx: Context, method: str, data: JSON) -> JSON:
        if method == "chat:echo":
            return {"namespace": "chat", "echo": data}
        raise NotFound()


@router.connection
class Connection(ConnectionHandler):
    async def on_rpc(self, ctx: Context, method: str, data: JSON) -> JSON:
        if method == "echo":
            return {"user": ctx.user.id, "echo": data}
        if method == "boom":
            raise RuntimeError("boom: a handler bug")
        raise NotFound()


app = App(router)
