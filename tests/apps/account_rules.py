"""A handler app for the account endpoint tests.

``wirehub serve --app tests.apps.account_rules:app``

* ``vault:*``: the namespace options allow nothing; the handler admits accounts whose username
  is ``boss`` (from the login token's connection info), ``$vault:`` channels included, and
  returns ``{"welcome": <username>}``. Everyone else is refused with "bosses only".
"""

from __future__ import annotations

from wirehub.app import App
from wirehub.channels.context import Context
from wirehub.channels.handler import ChannelHandler
from wirehub.channels.router import Router
from wirehub.errors import Forbidden
from wirehub.types import JSON

router = Router()


@router.namespace("vault")
class Vault(ChannelHandler):
    async def on_subscribe(self, ctx: Context) -> JSON | None:
        info = ctx.user.info
        username = info.get("username") if isinstance(info, dict) else None
        if username != "boss":
            raise Forbidden("bosses only")
        return {"welcome": username}


app = App(router)
