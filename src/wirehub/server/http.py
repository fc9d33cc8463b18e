"""The HTTP port: ``/health``, the account endpoints (``/auth/*``, in ``accounts_http``) and the
server API (``/api/<method>``, in ``http_api``)."""

from __future__ import annotations

from aiohttp import web

from wirehub.auth.accounts import Accounts
from wirehub.server.accounts_http import AccountRoutes
from wirehub.server.http_api import ServerApiRoutes
from wirehub.server.http_guard import GuardedSite, watch_requests
from wirehub.server.node import Node


class HttpServer:
    def __init__(self, node: Node, accounts: Accounts | None = None) -> None:
        self.node = node
        self.accounts = accounts
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None
        self.ready = False

    async def start(self) -> None:
        # Bodies are read by each route within its own limit (accounts, server API).
        app = web.Application(
            client_max_size=self.node.settings.api.max_body_bytes, middlewares=[watch_requests]
        )
        app.router.add_get("/health", self._health)
        if self.accounts is not None:
            AccountRoutes(self.node, self.accounts).install(app)
        ServerApiRoutes(
            self.node.server,
            self.node.settings.api,
            request_timeout_s=self.node.settings.http.request_timeout_s,
        ).install(app)
        settings = self.node.settings.http
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.keepalive_timeout_s)
        await self._runner.setup()
        self._site = GuardedSite(
            self._runner,
            settings.host,
            settings.port,
            counter=self.node.connections,
            request_timeout_s=settings.request_timeout_s,
        )
        await self._site.start()

    @property
    def port(self) -> int:
        assert self._runner is not None
        server = self._runner.server
        assert server is not None
        for address in self._runner.addresses:
            return int(address[1])
        raise RuntimeError("not listening")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        # A store may say it is not ready yet (MongoDB unreachable at start-up); one without a
        # ``ready`` attribute is ready once started.
        if not getattr(self.node.store, "ready", True):
            return web.json_response({"status": "store not ready"}, status=503)
        return web.json_response({"status": "ok", "clients": self.node.client_count})
