"""The HTTP port: ``/health`` now; accounts, the server API and metrics come later."""

from __future__ import annotations

from aiohttp import web

from wirehub.server.node import Node


class HttpServer:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.ready = False

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        settings = self.node.settings.http
        self._site = web.TCPSite(self._runner, settings.host, settings.port)
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
        return web.json_response({"status": "ok", "clients": self.node.client_count})
