"""Composition root: builds the backends from the settings and runs a gateway until told to stop.

The only module that knows which concrete broker, presence and store implement the interfaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import TypeAlias

from wirehub.api import Server
from wirehub.auth.accounts import Accounts
from wirehub.auth.issuer import HmacTokenIssuer
from wirehub.auth.jwt import JwtVerifier
from wirehub.auth.passwords import BcryptHasher
from wirehub.broker.base import Broker, Presence, RateLimiter
from wirehub.broker.memory import MemoryBroker, MemoryPresence
from wirehub.broker.memory_rate import MemoryRateLimiter
from wirehub.channels.context import State
from wirehub.channels.router import Router
from wirehub.config import Settings, load_settings, redacted_url
from wirehub.errors import BrokerUnavailable, StartupError, StoreUnavailable
from wirehub.server.admission import AcceptErrorThrottle, raise_fd_limit
from wirehub.server.gateway import Gateway
from wirehub.server.http import HttpServer
from wirehub.server.node import Node
from wirehub.storage.base import MessageStore, RefreshTokenStore, UserStore
from wirehub.storage.sqlite import SqliteStore
from wirehub.storage.sqlite_tokens import SqliteRefreshTokenStore

logger = logging.getLogger(__name__)

SECRET_FILE_NAME = "wirehub.secret"  # noqa: S105 - a file name, not a secret


Lifespan: TypeAlias = Callable[[Server], AbstractAsyncContextManager[None]]
"""Called with the node's ``Server`` at start; entered before clients connect, left after they go."""
Hook: TypeAlias = Callable[[Server], Awaitable[None]]
LifespanFunction: TypeAlias = Callable[[Server], AsyncIterator[None]]


class App:
    """What an app module exposes for ``wirehub serve --app module:attr``.

    Besides the router (channel handlers) and optional settings, an app has lifespan hooks that
    run once per process: at start, after the store and broker are up and before the first
    client connects; at shutdown, after every client is closed and before the store and broker
    close. Each gets the ``Server``, so a hook can open the app's own resources into
    ``app.state`` (handlers see it as ``ctx.state``) or start a background task that publishes.

    >>> router = Router()
    >>> app = App(router)
    >>> @app.on_startup
    ... async def open_database(server: Server) -> None:
    ...     app.state.greeting = "hello"
    """

    def __init__(
        self,
        router: Router | None = None,
        settings: Settings | None = None,
        *,
        lifespan: Lifespan | None = None,
        static_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.router = router or Router()
        self.settings = settings
        # The app's own web page, served on the public HTTP port unless the configuration names
        # another directory (``http.static_dir``). Checked here: a typo fails at import, by name.
        self.static_dir = os.fspath(static_dir) if static_dir is not None else ""
        if self.static_dir and not os.path.isdir(self.static_dir):
            raise ValueError(f"App(static_dir=...): {self.static_dir}: not a directory")
        self.state = State()
        self._lifespans: list[Lifespan] = [lifespan] if lifespan is not None else []

    def lifespan(self, function: LifespanFunction) -> LifespanFunction:
        """Decorate an async generator: the code before its ``yield`` runs at start, the rest at shutdown.

        Lifespans (and startup hooks) are entered in the order they were added and left in the
        reverse order; if one fails at start, those entered before it are left and the gateway
        does not start.
        """
        if not inspect.isasyncgenfunction(function):
            raise TypeError("app.lifespan decorates an async generator function (async def ... yield)")
        self._lifespans.append(contextlib.asynccontextmanager(function))
        return function

    def on_startup(self, hook: Hook) -> Hook:
        """Decorate ``async def hook(server)`` to run at start."""

        @contextlib.asynccontextmanager
        async def startup(server: Server) -> AsyncIterator[None]:
            await hook(server)
            yield

        self._lifespans.append(startup)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Decorate ``async def hook(server)`` to run at shutdown."""

        @contextlib.asynccontextmanager
        async def shutdown(server: Server) -> AsyncIterator[None]:
            yield
            await hook(server)

        self._lifespans.append(shutdown)
        return hook

    async def enter_lifespans(self, server: Server, stack: AsyncExitStack) -> None:
        """Enter every lifespan on ``stack``, in order (``wirehub.app.start`` does this)."""
        for lifespan in self._lifespans:
            await stack.enter_async_context(lifespan(server))


def secret_path(settings: Settings) -> Path:
    """Where a generated HMAC secret lives: beside the SQLite database (or in the working dir)."""
    url = settings.store.url
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).parent / SECRET_FILE_NAME
    return Path(SECRET_FILE_NAME)


def has_token_key(settings: Settings) -> bool:
    """Whether the settings name a key to verify tokens with (else serve generates a secret)."""
    auth = settings.auth
    return bool(
        auth.token_hmac_secret
        or auth.token_rsa_public_key
        or auth.token_ecdsa_public_key
        or auth.token_ed25519_public_key
        or auth.token_jwks_url
    )


def read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StartupError(f"cannot read the token secret {path}: {exc.strerror}") from None


def token_secret(settings: Settings) -> str:
    """The HMAC secret to sign tokens with: the configured one, or the one ``serve`` generated.

    Unlike ``with_token_secret`` this never makes one: a token signed with a secret that no
    gateway knows would be refused by all of them.
    """
    if settings.auth.token_hmac_secret:
        return settings.auth.token_hmac_secret
    if has_token_key(settings):
        raise StartupError("the gateway verifies tokens with public keys only: sign with --private-key")
    path = secret_path(settings)
    if not path.exists():
        raise StartupError(
            f"no token secret: auth.token_hmac_secret is not set and {path.resolve()} does not exist"
            " (`wirehub serve` writes it on its first start); or sign with --private-key"
        )
    return read_secret_file(path)


def with_token_secret(settings: Settings) -> Settings:
    """Fill in an HMAC secret when no key is configured, generating one on first use.

    ``wirehub serve`` and ``wirehub token`` both call this, so they always agree on the secret.
    """
    if has_token_key(settings):
        return settings
    auth = settings.auth
    path = secret_path(settings)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = read_secret_file(path)
    except OSError as exc:
        raise StartupError(
            f"cannot write a generated token secret to {path}: {exc.strerror}"
            " (make the directory writable, or set auth.token_hmac_secret)"
        ) from None
    else:
        secret = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
        logger.info("generated a token secret", extra={"path": str(path)})
    return dataclasses.replace(settings, auth=dataclasses.replace(auth, token_hmac_secret=secret))


def build_broker(settings: Settings) -> tuple[Broker, Presence]:
    """The broker and presence named by ``broker.url``; drivers are imported only when used."""
    if settings.broker.url.startswith(("redis://", "rediss://", "unix://")):
        from wirehub.broker.redis import open_redis

        return open_redis(settings.broker)
    return MemoryBroker(), MemoryPresence()


def build_store(settings: Settings) -> MessageStore:
    """The message store named by ``store.url``; drivers are imported only when used."""
    if settings.store.url.startswith(("mongodb://", "mongodb+srv://")):
        from wirehub.storage.mongo import MongoStore

        return MongoStore.from_settings(settings.store)
    return SqliteStore.from_settings(settings.store)


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Login limits shared by every replica on the broker's Redis, else counted per replica."""
    if settings.broker.url.startswith(("redis://", "rediss://", "unix://")):
        from wirehub.broker.redis_rate import RedisRateLimiter

        return RedisRateLimiter.from_settings(settings.broker)
    return MemoryRateLimiter()


def build_account_stores(store: MessageStore) -> tuple[UserStore, RefreshTokenStore]:
    """The UserStore and RefreshTokenStore beside the message store (same database, same URL)."""
    if isinstance(store, SqliteStore):
        return store.users, SqliteRefreshTokenStore(store)
    from wirehub.storage.mongo import MongoStore
    from wirehub.storage.mongo_tokens import MongoRefreshTokenStore

    if isinstance(store, MongoStore):
        return store.users, MongoRefreshTokenStore(store)
    raise TypeError(f"no account storage for {type(store).__name__}")


def build_accounts(settings: Settings, store: MessageStore) -> Accounts | None:
    """The account endpoints' service, or None when ``accounts.enabled`` is off or cannot be.

    Tokens are signed with the HMAC secret: a deployment verifying only public keys has no
    key to sign with, so its account endpoints stay off (with a warning).
    """
    if not settings.accounts.enabled:
        return None
    if not settings.auth.token_hmac_secret:
        logger.warning("account endpoints off: issuing tokens needs auth.token_hmac_secret")
        return None
    users, refresh_tokens = build_account_stores(store)
    a = settings.accounts
    return Accounts(
        a,
        users=users,
        refresh_tokens=refresh_tokens,
        hasher=BcryptHasher(
            a.bcrypt_cost, max_concurrency=a.bcrypt_max_concurrency, max_waiting=a.bcrypt_max_waiting
        ),
        issuer=HmacTokenIssuer(settings.auth),
        limiter=build_rate_limiter(settings),
    )


def install_accept_error_throttle() -> None:
    """Summarise asyncio's per-accept errors when file descriptors run out (once per process)."""
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptErrorThrottle) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(AcceptErrorThrottle())


def build_node(settings: Settings, app: App) -> Node:
    broker, presence = build_broker(settings)
    return Node(
        settings,
        broker=broker,
        presence=presence,
        store=build_store(settings),
        verifier=JwtVerifier(settings.auth),
        router=app.router,
        state=app.state,
    )


@dataclasses.dataclass(eq=False)
class Running:
    """A started gateway: its node, WebSocket listener and HTTP port, and the app's lifespans."""

    node: Node
    gateway: Gateway
    http: HttpServer
    lifespans: AsyncExitStack

    @property
    def server(self) -> Server:
        return self.node.server

    async def stop(self) -> None:
        timeout = self.node.settings.server.shutdown_timeout_s
        self.http.ready = False
        try:
            await self.gateway.shutdown(timeout)
            try:
                await self.lifespans.aclose()
            except Exception:
                logger.exception("app shutdown hook failed")
        finally:
            await self.http.close()
            if self.http.accounts is not None:
                await self.http.accounts.close()
            await self.node.close()


async def start(settings: Settings, app: App | Router) -> Running:
    """Start a gateway on ``settings`` with the app's handlers and lifespans (or a bare router)."""
    if isinstance(app, Router):
        app = App(app)
    settings = with_token_secret(settings)
    raise_fd_limit()  # before the node sizes its connection cap on it
    install_accept_error_throttle()
    node = build_node(settings, app)
    try:
        await node.start()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await node.close()
        raise _startup_error(settings, exc) from exc
    gateway = Gateway(node)
    accounts = build_accounts(settings, node.store)
    http = HttpServer(node, accounts, static_dir=settings.http.static_dir or app.static_dir)
    lifespans = AsyncExitStack()
    try:
        try:
            await app.enter_lifespans(node.server, lifespans)
        except Exception as exc:
            logger.debug("app startup failed", exc_info=True)
            raise StartupError(f"app startup failed: {_where(exc)}") from exc
        if accounts is not None:
            await accounts.start()
        s = settings.server
        with _listening("server.port", s.host, s.port):
            await gateway.start()
        h = settings.http
        with _listening("http.port or http.internal_port", h.host, h.port):
            await http.start()
    except BaseException:
        await gateway.shutdown(0)
        await lifespans.aclose()
        if accounts is not None:
            await accounts.close()
        await http.close()
        await node.close()
        raise
    http.ready = True
    return Running(node, gateway, http, lifespans)


def _startup_error(settings: Settings, exc: BaseException) -> BaseException:
    """What a failed node start means to the operator: which backend, at which (redacted) URL."""
    if isinstance(exc, StoreUnavailable):
        cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        return StartupError(f"store.url {redacted_url(settings.store.url)}: {exc.message}{cause}")
    if isinstance(exc, BrokerUnavailable):
        return StartupError(f"broker.url {redacted_url(settings.broker.url)}: {exc.message}")
    return exc


@contextlib.contextmanager
def _listening(key: str, host: str, port: int) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StartupError(f"{key}: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _where(exc: BaseException) -> str:
    """``Type: message (file:line)`` of an exception, from the innermost frame of its traceback."""
    text = f"{type(exc).__name__}: {exc}"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        text += f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
    return text


async def serve(
    settings: Settings, app: App | Router, *, on_ready: Callable[[Running], None] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then drain: close clients with 3001 and exit."""
    running = await start(settings, app)
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
    """Import ``module:attr``; the attribute may be an ``App`` or a ``Router``.

    The module is looked for in the current directory first, as uvicorn and gunicorn do.
    """
    import importlib
    import sys

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise StartupError(f"--app {spec}: expected module:attribute, e.g. myapp.realtime:app")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise StartupError(
                f"--app {spec}: no module named {exc.name!r} (looked in {os.getcwd()})"
            ) from None
        raise StartupError(f"--app {spec}: importing {module_name} failed: {_where(exc)}") from exc
    except Exception as exc:
        raise StartupError(f"--app {spec}: importing {module_name} failed: {_where(exc)}") from exc
    name = attr or "app"
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise StartupError(f"--app {spec}: module {module_name} has no attribute {name!r}") from None
    if isinstance(obj, Router):
        return App(obj)
    if not isinstance(obj, App):
        raise StartupError(f"--app {spec}: {name} is a {type(obj).__name__}, not a wirehub App or Router")
    return obj


__all__ = ["App", "build_node", "load_app", "load_settings", "serve", "start", "with_token_secret"]
