"""One client connection: its lifecycle, the order its commands run in, its limits and timers.

The reader processes the lines of every frame in order, one command after another, with one
exception: publishes are pipelined. A publish waits for its handler (``on_publish``), is queued
on the node's publish pipeline, and the reader goes on; its reply is sent when the pipeline is
done with it. Publications to one channel keep their order (the pipeline keeps the order they
were queued in), every reply keeps its command's id, and any command other than a publish first
waits for the publishes before it, so it sees their effects.

Frames are read in one of two ways, in arrival order either way. While the reader of a
connected client waits for a frame with nothing queued, the listener's connection hands a whole
text frame straight to ``take_frame`` from the transport's callback: its commands run there and
then, with no task woken and no queue (a publish on the in-process broker is fanned out and
answered before the callback returns). A command that must await (subscribe, history, a
handler's ``on_publish``...) finishes in a task of its own, the *continuation*, with the rest of
its frame; until the reader has seen it done, every frame queues for ``recv`` as websockets
queues it, and the reader processes those as before. The connect frame is always the reader's.
So the serving task only wakes for the commands that wait.

Everything the connection sends goes through its ``Outbox`` (``deliver``), which never awaits.
Timers (stale, ping, pong, expiry, subscription expiries, the close deadline) share one handle
(``Deadlines``). The only task of an idle connection is the one serving it. The commands
themselves are in ``commands.py``, subscribing and leaving in ``subscriptions.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, PayloadTooBig
from websockets.frames import Frame, Opcode

from wirehub.channels.context import Context
from wirehub.config import NamespaceOptions
from wirehub.errors import (
    Disconnect,
    DisconnectExpired,
    DisconnectInsufficientState,
    DisconnectNoPong,
    DisconnectServerError,
    DisconnectSlow,
    DisconnectStale,
    DisconnectTooManyErrors,
    DisconnectTooManyRequests,
    RateLimited,
    RequestError,
    TokenExpired,
    error_reply,
)
from wirehub.protocol.codec import PING, decode_frame, encode_error, encode_reply
from wirehub.protocol.frames import Command, ConnectRequest, Pong, PublishRequest, SendRequest
from wirehub.protocol.session import Session, State
from wirehub.server import commands, subscriptions
from wirehub.server.connection_log import log_closed, log_connect_refused
from wirehub.server.deadlines import Clock, Deadlines
from wirehub.server.node import Node
from wirehub.server.outbox import Outbox
from wirehub.server.pipeline import Published
from wirehub.server.rate import TokenBucket
from wirehub.server.sink import WebSocketSink
from wirehub.server.subscriptions import Subscription
from wirehub.types import JSON, ClientInfo, SubscribeUser, User, WireDict

__all__ = [
    "CLOSE_DEADLINE_S",
    "HARD_LIMIT_FACTOR",
    "REPLY_BUDGET_FACTOR",
    "Client",
]

logger = logging.getLogger(__name__)

CLOSE_DEADLINE_S = 3.0
"""How long a closing connection may take to flush and shake hands before it is dropped."""

HARD_LIMIT_FACTOR = 4
"""A backlog past this many times ``client.write_queue_max_bytes`` is slow at once."""
REPLY_BUDGET_FACTOR = 2
"""The largest reply (history, recovery) is this many times ``client.write_queue_max_bytes``: well
under the hard limit, so one reply never makes a reading client slow."""

_PEER_GONE = Disconnect()
"""The reason of a connection the client ended: nothing more is written to it."""


class Client:
    """Serves one WebSocket connection; ``serve()`` returns when the connection is over."""

    __slots__ = (
        "_background",
        "_clock",
        "_closer",
        "_closing",
        "_commands",
        "_commands_debt_limit",
        "_continuation",
        "_deadlines",
        "_done",
        "_errors",
        "_idle",
        "_in_flight",
        "_inline",
        "_loop",
        "_opened_at",
        "deliver",
        "expire_at",
        "forwarded_for",
        "id",
        "node",
        "outbox",
        "remote",
        "session",
        "settings",
        "subs",
        "user",
        "ws",
    )

    def __init__(self, node: Node, ws: ServerConnection, *, clock: Clock | None = None) -> None:
        self.id = str(uuid.uuid4())
        self.node = node
        self.ws = ws
        # For the log line that ends the connection. The peer's address is the string the
        # listener keeps anyway; a proxy's X-Forwarded-For only when the peer is a trusted proxy.
        self.remote: str = getattr(ws, "peer_address", "")
        self.forwarded_for = ""
        forwarded = ws.request.headers.get("X-Forwarded-For") if ws.request is not None else None
        if forwarded and node.proxies.trusts(self.remote):
            self.forwarded_for = forwarded
        # The handshake's headers are about 3 KiB a connection and are not needed once it is
        # open: what the connection needs of them is taken above this line.
        for message in (ws.request, ws.response):
            if message is not None:
                message.headers.clear()
        self.settings = settings = node.settings.client
        self.session = Session()
        self.user = User("")
        self.subs: dict[str, Subscription] = {}
        self._loop = loop = asyncio.get_running_loop()
        self._clock: Clock = clock or loop
        """Deadlines and rate limits run on it (tests pass a clock of their own)."""
        self._deadlines = Deadlines(self._clock)
        self.outbox = Outbox(
            WebSocketSink(ws),
            node.flusher,
            self._deadlines,
            limit_bytes=settings.write_queue_max_bytes,
            slow_after_s=settings.slow_client_timeout_s,
            hard_limit_bytes=HARD_LIMIT_FACTOR * settings.write_queue_max_bytes,
            on_slow=self._on_slow,
        )
        self.deliver = self.outbox.offer
        """Queue encoded bytes to send (what the hub calls for every publication)."""
        self._closing: Disconnect | None = None
        self._closer: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._background: set[asyncio.Task[None]] | None = None
        self._in_flight = 0
        """Publishes queued on the pipeline and not answered yet."""
        self._inline = False
        """Whether ``take_frame`` may run a frame now: connected, the reader waits, nothing is queued."""
        self._continuation: asyncio.Task[None] | None = None
        """What a frame run by ``take_frame`` still had to await; the reader waits for it."""
        self._idle: asyncio.Future[None] | None = None
        """Set once ``_in_flight`` is back to 0, while a command waits for that."""
        self.expire_at: int | None = None
        self._opened_at = now = self._clock.time()
        # Commands: 111 once the bucket is empty, 3013 once the client owes a further burst.
        self._commands: TokenBucket | None = None
        self._commands_debt_limit = -float(settings.command_burst)
        if settings.command_rate_per_s > 0:
            self._commands = TokenBucket(settings.command_rate_per_s, settings.command_burst, now)
        # Error replies: max_errors of them per max_errors_interval_s, then 3509 (the bucket is
        # made at the first error: most connections never provoke one).
        self._errors: TokenBucket | None = None

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        # Made when used (seldom), not kept: an idle connection carries nothing it does not need.
        return logging.LoggerAdapter(logger, {"client": self.id})

    # ------------------------------------------------------------------ lifecycle

    async def serve(self) -> None:
        # The reader is inlined here, not a coroutine of its own: every coroutine frame an idle
        # connection keeps suspended costs its memory.
        self.node.register(self)
        self._deadlines.set("stale", self.settings.stale_timeout_s, self._on_stale)
        ws = self.ws
        try:
            while self._closing is None:
                # The continuation, if any, is done: nothing is ahead of a new frame. The connect
                # frame stays the reader's: it always awaits, so running it at once would only
                # add a task per connection.
                self._inline = self.session.state is State.CONNECTED
                # Bytes: the codec parses UTF-8 itself (and refuses what is not), no str in between.
                message = await ws.recv(decode=False)
                self._inline = False
                if self._continuation is not None:
                    await self._continuation  # the frame before this one: it handles its own errors
                if self._closing is not None:
                    break  # closed meanwhile, by a frame taken at once or by its continuation
                # The decoded frame is only the call's argument: nothing of it stays referenced
                # while the connection waits for the next one.
                if not await self._run_commands(decode_frame(message)):
                    break
        except Disconnect as exc:
            self.disconnect(exc)
        except (PayloadTooBig, ConnectionClosed):
            pass  # websockets closes with 1009 itself; or the peer went away
        except Exception:
            logger.exception("connection failed", extra={"client": self.id})
        finally:
            await self._end()

    async def _run_commands(self, commands: list[Command]) -> bool:
        """Run a frame's commands in order; False once the connection is closing."""
        for command in commands:
            running = self._dispatch(command)
            if running is not None:
                await running
            if self._closing is not None:
                return False
        return True

    def take_frame(self, frame: Frame) -> bool:
        """Run a frame the connection just received, if it may run now; False: it goes to ``recv``.

        Called from the transport's callback (never raises): see the module docstring.
        """
        if not self._inline or frame.opcode is not Opcode.TEXT or not frame.fin:
            self._inline = False  # this one is queued for the reader: the next ones queue behind it
            return False
        try:
            data = frame.data
            commands = decode_frame(data if isinstance(data, bytes) else bytes(data))
            for at, command in enumerate(commands):
                running = self._dispatch(command)
                if running is not None:
                    self._inline = False
                    self._continuation = self._loop.create_task(self._continue(running, commands[at + 1 :]))
                    break
                if self._closing is not None:
                    break
        except Exception as exc:
            self._close_for(exc)
        return True

    async def _continue(self, running: Awaitable[None], commands: list[Command]) -> None:
        """The rest of a frame ``take_frame`` began: ``running``, then ``commands`` in order."""
        try:
            await running
            if self._closing is None:
                await self._run_commands(commands)
        except Exception as exc:
            self._close_for(exc)
        finally:
            # Done: nothing is left to wait for, and a connection that stays idle after its
            # connect must not keep the finished task (about 2 KiB).
            self._continuation = None

    def _close_for(self, exc: Exception) -> None:
        """Close as the reader does when a frame run outside it raised ``exc``."""
        if not isinstance(exc, Disconnect):
            logger.error("connection failed", extra={"client": self.id}, exc_info=exc)
            exc = DisconnectServerError()
        self.disconnect(exc)

    async def _end(self) -> None:
        self._inline = False
        if self._continuation is not None:
            await asyncio.wait([self._continuation])  # a command still running finishes first
        if self._closing is None:
            self._closing = _PEER_GONE  # the peer went away: nothing more to write
            self.outbox.close(discard=True)
        try:
            await subscriptions.leave_all(self)
            if self.session.state is State.CONNECTED:
                await commands.disconnected(self)
        finally:
            if self._closer is not None:
                # The close deadline stays armed meanwhile: the client may never read.
                await asyncio.wait([self._closer])
            self._deadlines.cancel_all()
            self.node.unregister(self)
            reason = self._closing
            log_closed(self, None if reason is _PEER_GONE else reason, self._clock.time() - self._opened_at)
            if self._done is None:
                self._done = self._loop.create_future()
            self._done.set_result(None)

    async def closed(self) -> None:
        if self._done is None:
            self._done = self._loop.create_future()
        await asyncio.shield(self._done)

    def disconnect(self, reason: Disconnect) -> None:
        """Close the connection with ``reason``'s close code once queued frames are written.

        A slow client's queue is dropped instead, and its close frame goes out at once. A client
        that does not read keeps the socket (and websockets' own close) waiting on a full socket
        forever: past the close deadline, the connection is dropped.
        """
        if self._closing is not None:
            return
        self._closing = reason
        self._inline = False
        slow = isinstance(reason, DisconnectSlow)
        if slow:
            self.outbox.close(discard=True)
        self._deadlines.set("abort", CLOSE_DEADLINE_S, self._abort)
        self._closer = self._loop.create_task(self._close(reason, slow=slow))

    async def _close(self, reason: Disconnect, *, slow: bool) -> None:
        try:
            if self._in_flight and not slow:
                # Publishes read before the reason to close are answered first.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_DEADLINE_S):
                        await self._publishes_done()
            self.outbox.close(discard=False)
            await self.outbox.flushed()
            await self.ws.close(reason.code, reason.reason)
        except ConnectionClosed:
            pass

    def _abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, command: Command) -> Awaitable[None] | None:
        """Start ``command``: None when it is done (or, a publish, queued); else what runs the rest.

        The reader awaits what is returned before the frame's next command. A publish the default
        handler allows, on the in-process broker, is answered before this returns.
        """
        self.session.admit(command)
        request = command.request
        if isinstance(request, Pong):
            return None
        if self._commands is not None:
            balance = self._commands.take(self._clock.time())
            if balance < 0:
                if balance < self._commands_debt_limit:
                    raise DisconnectTooManyRequests()
                self.node.metrics.command_failed(command.method, RateLimited.code)
                if command.id:  # ``send`` has no reply to carry the error
                    self.deliver(encode_error(command.id, error_reply(RateLimited())))
                return None
        if not isinstance(request, PublishRequest):
            return self._run(command)
        self._in_flight += 1
        try:
            handing_over = commands.start_publish(self, request, partial(self._published, command))
        except Exception as exc:
            self._published(command, None, exc)
            return None
        return None if handing_over is None else self._finish_publish(command, handing_over)

    async def _finish_publish(self, command: Command, handing_over: Awaitable[None]) -> None:
        try:
            await handing_over
        except Exception as exc:
            self._published(command, None, exc)

    async def _run(self, command: Command) -> None:
        request = command.request
        if self._in_flight:
            await self._publishes_done()
        try:
            result = await commands.run(self, command)
        except Exception as exc:
            if isinstance(request, ConnectRequest):
                log_connect_refused(self, exc)
            if isinstance(exc, Disconnect):
                raise
            if isinstance(request, ConnectRequest):
                self.session.connect_failed()
                self.node.unbind_user(self)
            self._fail(command, exc)
            return
        self.node.metrics.command_done(command.method)
        if result is not None and not isinstance(request, SendRequest):
            self.reply(command, result)

    def _published(self, command: Command, published: Published | None, exc: BaseException | None) -> None:
        """Answer a pipelined publish (called by the pipeline, in the step it fans out)."""
        self._in_flight -= 1
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set_result(None)
            self._idle = None
        if exc is None:
            self.node.metrics.command_done("publish")
            self.reply(command, {})
        elif isinstance(exc, Exception):
            self._fail(command, exc)

    async def _publishes_done(self) -> None:
        if self._idle is None:
            self._idle = self._loop.create_future()
        await asyncio.shield(self._idle)

    def _fail(self, command: Command, exc: Exception) -> None:
        """Answer ``command`` with the error ``exc`` maps to; too many errors close with 3509."""
        if not isinstance(exc, RequestError):
            self.log.error("command failed", extra={"method": command.method}, exc_info=exc)
        reply = error_reply(exc)
        self.node.metrics.command_failed(command.method, reply.code)
        if command.id:  # ``send`` has no reply to carry the error
            self.deliver(encode_error(command.id, reply))
        # Temporary errors are the server's trouble (100) or have their own escalation (111).
        if not reply.temporary and self._error_budget_spent():
            self.disconnect(DisconnectTooManyErrors())

    def _error_budget_spent(self) -> bool:
        settings = self.settings
        if settings.max_errors <= 0:
            return False
        now = self._clock.time()
        if self._errors is None:
            self._errors = TokenBucket(
                settings.max_errors / settings.max_errors_interval_s, settings.max_errors, now
            )
        return self._errors.take(now) < 0

    def reply(self, command: Command, result: WireDict) -> None:
        self.deliver(encode_reply(command.id, command.method, result))

    # ------------------------------------------------------------------ what the node and hub call

    @property
    def reply_budget_bytes(self) -> int:
        return REPLY_BUDGET_FACTOR * self.settings.write_queue_max_bytes

    @property
    def closing(self) -> bool:
        return self._closing is not None

    @property
    def session_id(self) -> str:
        # A WebSocket connection is its own session: the server API's ``session`` selects it
        # by its client id.
        return self.id

    @property
    def subscription_count(self) -> int:
        return len(self.subs)

    def presence_entries(self) -> Iterator[tuple[str, ClientInfo]]:
        return ((sub.channel, sub.info) for sub in tuple(self.subs.values()) if sub.presence)

    def lost_continuity(self, channel: str) -> None:
        self.disconnect(DisconnectInsufficientState())

    def server_subscribe(self, request: SubscribeUser) -> None:
        subscriptions.server_subscribe(self, request)

    def server_unsubscribe(self, channel: str) -> None:
        subscriptions.server_unsubscribe(self, channel)

    def refresh_expiry(self, *, expired: bool, expire_at: int | None) -> None:
        if self._closing is not None or self.session.state is not State.CONNECTED:
            return
        if expired:
            self.disconnect(DisconnectExpired())
            return
        try:
            self.set_expiry(expire_at)
        except TokenExpired:
            self.disconnect(DisconnectExpired())

    def context(self, channel: str = "", options: NamespaceOptions | None = None, **kw: Any) -> Context:
        """What a handler sees of a request of this connection (``kw``: ``granted``, ``data``...)."""
        return Context(
            user=self.user,
            client=self.id,
            channel=channel,
            options=options or NamespaceOptions(),
            subscribed=channel in self.subs,
            api=self.node.server,
            state=self.node.state,
            **kw,
        )

    def info(self, chan_info: JSON = None) -> ClientInfo:
        return ClientInfo(user=self.user.id, client=self.id, conn_info=self.user.info, chan_info=chan_info)

    # ------------------------------------------------------------------ timers

    def set_deadline(self, name: str, delay_s: float, callback: Callable[[], None]) -> None:
        self._deadlines.set(name, delay_s, callback)

    def cancel_deadline(self, name: str) -> None:
        self._deadlines.cancel(name)

    def _on_stale(self) -> None:
        if self.session.state is not State.CONNECTED:
            self.disconnect(DisconnectStale())

    def schedule_ping(self) -> None:
        interval = self.node.settings.client.ping_interval_s
        if interval > 0:
            self._deadlines.set("ping", interval, self._on_ping)

    def _on_ping(self) -> None:
        if not self.session.ping_sent():
            return
        self.deliver(PING)
        self._deadlines.set("pong", self.settings.pong_timeout_s, self._on_pong_deadline)
        self.schedule_ping()

    def _on_pong_deadline(self) -> None:
        if self.session.ping_outstanding:
            self.disconnect(DisconnectNoPong())

    def set_expiry(self, expire_at: int | None) -> int:
        """Arm the 3005 deadline; return the ttl in seconds the client is told (0 = never)."""
        self.expire_at = expire_at
        if expire_at is None:
            self._deadlines.cancel("expire")
            return 0
        ttl = expire_at - int(time.time())
        if ttl <= 0:
            raise TokenExpired()
        delay = ttl + self.settings.expired_close_delay_s
        self._deadlines.set("expire", delay, self._on_expired)
        return ttl

    def _on_expired(self) -> None:
        self.disconnect(DisconnectExpired())

    def _on_slow(self, backlog: int) -> None:
        self.log.info(
            "closing slow client",
            extra={
                "user": self.user.id,
                "backlog_bytes": backlog,
                "limit_bytes": self.settings.write_queue_max_bytes,
            },
        )
        self.disconnect(DisconnectSlow())

    # ------------------------------------------------------------------ background work

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` alongside the reader (a server-side subscribe or unsubscribe)."""

        async def run() -> None:
            try:
                await coro
            except Exception:
                self.log.exception("background task failed")

        if self._background is None:
            self._background = set()
        task = self._loop.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
