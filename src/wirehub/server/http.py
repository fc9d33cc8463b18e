"""The HTTP listeners: the public port and, when enabled, the internal one for operators.

* ``/health``: the process is alive and serving HTTP (liveness: 200 while it runs);
* ``/ready``: 200 only while the broker and the store answer and the node is not draining;
  503 naming the failing part otherwise, so a load balancer takes the replica out of rotation;
* ``/metrics``: Prometheus' text format (``metrics``);
* ``/auth/*``: the account endpoints (``accounts_http``), public port only;
* ``/api/<method>``: the server API (``http_api``);
* with ``http.static_dir`` (or the app's ``App(static_dir=...)``) set, every other ``GET`` on
  the public port: that directory's files (``http_static``), so a web app and the ``/auth/*``
  it calls share one origin.

``/auth/*`` answers CORS preflights for the origins the origin policy allows (``http_cors``);
nothing else sends CORS headers.

With the internal listener enabled, ``/metrics`` and ``/api/*`` are served there only: what an
operator or a backend uses need not face the internet.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Middleware

from wirehub.auth.base import AccountService
from wirehub.errors import BrokerUnavailable, StoreUnavailable
from wirehub.server.accounts_http import AccountRoutes
from wirehub.server.http_api import ServerApiRoutes
from wirehub.server.http_cors import cors_middleware
from wirehub.server.http_guard import GuardedSite, watch_requests
from wirehub.server.http_static import StaticFiles
from wirehub.server.metrics import CONTENT_TYPE, MetricsPage
from wirehub.server.node import Node
from wirehub.server.origins import OriginPolicy, is_loopback_host

__all__ = ["HttpServer"]

READY_TIMEOUT_S = 2.0
"""A readiness check slower than this counts as failed (each part has its own, shorter, bound)."""


class HttpServer:
    def __init__(self, node: Node, accounts: AccountService | None = None, *, static_dir: str = "") -> None:
        self.node = node
        self.accounts = accounts
        self.static_dir = static_dir
        self._runners: list[web.AppRunner] = []
        self._metrics = MetricsPage(node)
        self.ready = False
        """False until the gateway listens, and again once it drains."""
        self.internal_port: int | None = None

    async def start(self) -> None:
        settings = self.node.settings.http
        internal = settings.internal_enabled
        origins = OriginPolicy(
            self.node.settings.server.allowed_origins, loopback_listener=is_loopback_host(settings.host)
        )
        public = self._application(cors_middleware(origins))
        if self.accounts is not None:
            AccountRoutes(self.node, self.accounts).install(public)
        if not internal:
            self._install_operator_routes(public)
        if self.static_dir:
            StaticFiles(self.static_dir).install(public)  # last: every other route comes first
        await self._listen(public, settings.host, settings.port)
        if internal:
            app = self._application()
            self._install_operator_routes(app)
            self.internal_port = await self._listen(app, settings.internal_host, settings.internal_port)

    def _application(self, *middlewares: Middleware) -> web.Application:
        # Bodies are read by each route within its own limit (accounts, server API).
        app = web.Application(
            client_max_size=self.node.settings.api.max_body_bytes,
            middlewares=[watch_requests, *middlewares],
        )
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        return app

    def _install_operator_routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self._render_metrics)
        ServerApiRoutes(
            self.node.server,
            self.node.settings.api,
            request_timeout_s=self.node.settings.http.request_timeout_s,
        ).install(app)

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        settings = self.node.settings
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.http.keepalive_timeout_s)
        await runner.setup()
        self._runners.append(runner)
        site = GuardedSite(
            runner,
            host,
            port,
            counter=self.node.connections,
            request_timeout_s=settings.http.request_timeout_s,
            reuse_port=settings.server.reuse_port,
        )
        await site.start()
        for address in runner.addresses:
            return int(address[1])
        raise RuntimeError("not listening")  # pragma: no cover - a started site has an address

    @property
    def port(self) -> int:
        """The public port (the one bound, when the settings say 0)."""
        for address in self._runners[0].addresses:
            return int(address[1])
        raise RuntimeError("not listening")

    async def close(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "clients": self.node.client_count})

    async def _ready(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "not ready", "failing": {"node": "not serving"}}, status=503)
        failing = await self._failing_parts()
        if failing:
            return web.json_response({"status": "not ready", "failing": failing}, status=503)
        return web.json_response({"status": "ready"})

    async def _failing_parts(self) -> dict[str, str]:
        """Ask the broker and the store at once; what each says that does not answer, by name."""
        node = self.node
        checks = {"broker": node.broker.check(), "store": node.store.check()}
        failing: dict[str, str] = {}
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                results = await asyncio.gather(*checks.values(), return_exceptions=True)
        except TimeoutError:
            return {"node": f"readiness checks took over {READY_TIMEOUT_S:g} s"}
        for name, result in zip(checks, results, strict=True):
            if isinstance(result, BrokerUnavailable | StoreUnavailable):
                failing[name] = result.message
            elif isinstance(result, BaseException):
                failing[name] = type(result).__name__
        return failing

    async def _render_metrics(self, request: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
