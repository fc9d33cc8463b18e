"""Composition root: builds the backends from the settings and runs a gateway until told to stop.

The only module that knows which concrete broker, presence and store implement the interfaces.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import signal
from collections.abc import Callable
from pathlib import Path

from wirehub.auth.jwt import JwtVerifier
from wirehub.broker.base import Broker, Presence
from wirehub.broker.memory import MemoryBroker, MemoryPresence
from wirehub.channels.router import Router
from wirehub.config import Settings, load_settings
from wirehub.server.gateway import Gateway
from wirehub.server.http import HttpServer
from wirehub.server.node import Node
from wirehub.storage.base import MessageStore
from wirehub.storage.sqlite import SqliteStore

logger = logging.getLogger(__name__)

SECRET_FILE_NAME = "wirehub.secret"  # noqa: S105 - a file name, not a secret


class App:
    """What an app module exposes for ``wirehub serve --app module:attr``.

    >>> router = Router()
    >>> app = App(router)
    """

    def __init__(self, router: Router | None = None, settings: Settings | None = None) -> None:
        self.router = router or Router()
        self.settings = settings


def secret_path(settings: Settings) -> Path:
    """Where a generated HMAC secret lives: beside the SQLite database (or in the working dir)."""
    url = settings.store.url
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).parent / SECRET_FILE_NAME
    return Path(SECRET_FILE_NAME)


def with_token_secret(settings: Settings) -> Settings:
    """Fill in an HMAC secret when no key is configured, generating one on first use.

    ``wirehub serve`` and ``wirehub token`` both call this, so they always agree on the secret.
    """
    auth = settings.auth
    if auth.token_hmac_secret or auth.token_rsa_public_key or auth.token_ecdsa_public_key:
        return settings
    path = secret_path(settings)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="utf-8").strip()
    else:
        secret = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
        logger.info("generated a token secret", extra={"path": str(path)})
    return dataclasses.replace(settings, auth=dataclasses.replace(auth, token_hmac_secret=secret))


def build_broker(settings: Settings) -> tuple[Broker, Presence]:
    """The broker and presence named by ``broker.url``; drivers are imported only when used."""
    return MemoryBroker(), MemoryPresence()


def build_store(settings: Settings) -> MessageStore:
    """The message store named by ``store.url``; drivers are imported only when used."""
    return SqliteStore.from_url(settings.store.url)


def build_node(settings: Settings, router: Router) -> Node:
    broker, presence = build_broker(settings)
    return Node(
        settings,
        broker=broker,
        presence=presence,
        store=build_store(settings),
        verifier=JwtVerifier(settings.auth),
        router=router,
    )


class Running:
    """A started gateway: its node, WebSocket listener and HTTP port."""

    def __init__(self, node: Node, gateway: Gateway, http: HttpServer) -> None:
        self.node = node
        self.gateway = gateway
        self.http = http

    async def stop(self) -> None:
        timeout = self.node.settings.server.shutdown_timeout_s
        self.http.ready = False
        await self.gateway.shutdown(timeout)
        await self.http.close()
        await self.node.close()


async def start(settings: Settings, router: Router) -> Running:
    settings = with_token_secret(settings)
    node = build_node(settings, router)
    await node.start()
    gateway = Gateway(node)
    http = HttpServer(node)
    try:
        await gateway.start()
        await http.start()
    except BaseException:
        await gateway.shutdown(0)
        await node.close()
        raise
    http.ready = True
    return Running(node, gateway, http)


async def serve(
    settings: Settings, router: Router, *, on_ready: Callable[[Running], None] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then drain: close clients with 3001 and exit."""
    running = await start(settings, router)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        on_ready(running)
    try:
        await stop.wait()
        logger.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await running.stop()


def load_app(spec: str) -> App:
    """Import ``module:attr``; the attribute may be an ``App`` or a ``Router``."""
    import importlib

    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    obj = getattr(module, attr or "app")
    if isinstance(obj, Router):
        return App(obj)
    if not isinstance(obj, App):
        raise TypeError(f"{spec} is neither a wirehub App nor a Router")
    return obj


__all__ = ["App", "build_node", "load_app", "load_settings", "serve", "start", "with_token_secret"]
