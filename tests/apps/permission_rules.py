"""A handler app for permission tests: one handler stricter than its namespace, one looser.

``wirehub serve --app tests.apps.permission_rules:app``

* ``guarded:*``: the namespace options let every authenticated client subscribe; the handler
  still refuses user ``mallory`` (even with a subscription token) and wraps publications as
  ``{"checked": <data>}``.
* ``vip:*``: the namespace options allow nothing; the handler admits user ``vip`` to subscribe
  and publish anyway. Rules no handler can loosen still apply: ``$`` channels need a token and
  ``#`` channels only admit the users they list.
* ``on_connect`` refuses (103) a connect whose ``data`` is ``{"refuse": true}``.
"""

from __future__ import annotations

from wirehub.app import App
from wirehub.channels.context import Context
from wirehub.channels.handler import ChannelHandler, ConnectionHandler
from wirehub.channels.router import Router
from wirehub.errors import Forbidden
from wirehub.types import JSON

router = Router()


@router.namespace("guarded")
class Guarded(ChannelHandler):
    async def on_subscribe(self, ctx: Context) -> JSON | None:
        if ctx.user.id == "mallory":
            raise Forbidden("mallory is banned")
        if not ctx.granted:
            raise Forbidden()
        return {"handler": "guarded", "token_data": ctx.token_data}

    async def on_publish(self, ctx: Context, data: JSON) -> JSON:
        if not ctx.granted:
            raise Forbidden()
        return {"checked": data}


@router.namespace("vip")
class Vip(ChannelHandler):
    async def on_subscribe(self, ctx: Context) -> JSON | None:
        if ctx.user.id != "vip":
            raise Forbidden()
        return {"handler": "vip", "granted": ctx.granted}

    async def on_publish(self, ctx: Context, data: JSON) -> JSON:
        if ctx.user.id != "vip":
            raise Forbidden()
        return data


@router.connection
class Connections(ConnectionHandler):
    async def on_connect(self, ctx: Context) -> JSON | None:
        if ctx.data == {"refuse": True}:
            raise Forbidden("refused by on_connect")
        return None


app = App(router)
