"""One client connection: reads commands in order, answers them, and writes through a bounded queue.

The reader processes the lines of every frame strictly in order. Everything the connection
sends (replies, pushes, pings) goes through ``deliver``, which appends to a queue bounded in
bytes and never awaits; one writer task drains the queue, joining whatever is ready into one
newline-batched frame. A client whose queue overflows is closed with 3008 and recovers by offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, PayloadTooBig

from wirehub.auth.base import ServerSubscription, SubscriptionClaims
from wirehub.channels.context import Context
from wirehub.config import NamespaceOptions
from wirehub.errors import (
    UNSUBSCRIBE_EXPIRED,
    UNSUBSCRIBE_SERVER,
    AlreadySubscribed,
    BrokerUnavailable,
    Disconnect,
    DisconnectBadRequest,
    DisconnectChannelLimit,
    DisconnectConnectionLimit,
    DisconnectExpired,
    DisconnectInsufficientState,
    DisconnectInvalidToken,
    DisconnectNoPong,
    DisconnectPermissionDenied,
    DisconnectSlow,
    DisconnectStale,
    DisconnectSubExpired,
    DisconnectTooManyErrors,
    DisconnectTooManyRequests,
    Forbidden,
    LimitExceeded,
    MethodNotFound,
    NotAvailable,
    RateLimited,
    RequestError,
    TokenError,
    TokenExpired,
    UnrecoverablePosition,
    error_reply,
)
from wirehub.protocol.codec import PING, decode_frame, encode_error, encode_push, encode_reply
from wirehub.protocol.frames import (
    Command,
    ConnectRequest,
    HistoryRequest,
    Pong,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    RpcRequest,
    SendRequest,
    SubRefreshRequest,
    SubscribeRequest,
    UnknownMethod,
    UnsubscribeRequest,
)
from wirehub.protocol.session import Session, State
from wirehub.server.hub import Joined, Recovery
from wirehub.server.limits import TokenBucket
from wirehub.server.node import Node
from wirehub.types import JSON, ClientInfo, SubscribeUser, User, WireDict

logger = logging.getLogger(__name__)

CLOSE_DEADLINE_S = 3.0
"""How long a closing connection may take to flush and shake hands before it is dropped."""

MAX_BATCH_CHARS = 64 * 1024
"""Replies and pushes are joined into frames of about this size, so no client sees huge frames."""

_RATE_LIMITED = error_reply(RateLimited())


@dataclass(slots=True)
class _Subscription:
    channel: str
    options: NamespaceOptions
    info: ClientInfo
    server_side: bool
    presence: bool = False
    announce: bool = False
    """Whether joins and leaves of this subscriber are announced (join_leave, unless overridden)."""
    expiry: asyncio.TimerHandle | None = None
    expire_at: int | None = None


@dataclass(slots=True)
class _Outbox:
    frames: deque[str] = field(default_factory=deque)
    size: int = 0
    held: list[str] | None = None
    """While a connect with server-side subscriptions is answered, pushes wait here."""


class Client:
    """Serves one WebSocket connection; ``serve()`` returns when the connection is over."""

    def __init__(self, node: Node, ws: ServerConnection) -> None:
        self.id = str(uuid.uuid4())
        self.node = node
        self.ws = ws
        self.settings = node.settings.client
        self.session = Session()
        self.user = User("")
        self.subs: dict[str, _Subscription] = {}
        self._outbox = _Outbox()
        self._wakeup = asyncio.Event()
        self._closing: Disconnect | None = None
        self._done = asyncio.Event()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._expire_at: int | None = None
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Task[None]] = set()
        self.log = logging.LoggerAdapter(logger, {"client": self.id})
        now = self._loop.time()
        settings = self.settings
        # Commands: 111 once the bucket is empty, 3013 once the client owes a further burst.
        self._commands: TokenBucket | None = None
        self._commands_debt_limit = -float(settings.command_burst)
        if settings.command_rate_per_s > 0:
            self._commands = TokenBucket(settings.command_rate_per_s, settings.command_burst, now)
        # Error replies: max_errors of them per max_errors_interval_s, then 3509.
        self._errors: TokenBucket | None = None
        if settings.max_errors > 0:
            rate = settings.max_errors / settings.max_errors_interval_s
            self._errors = TokenBucket(rate, settings.max_errors, now)

    # ------------------------------------------------------------------ lifecycle

    async def serve(self) -> None:
        self.node.register(self)
        self._timers["stale"] = self._loop.call_later(self.settings.stale_timeout_s, self._on_stale)
        writer = asyncio.create_task(self._write_loop())
        try:
            await self._read_loop()
        finally:
            # The abort deadline stays armed until the writer is done: it may be stuck on a
            # socket the client never reads.
            for name, timer in self._timers.items():
                if name != "abort":
                    timer.cancel()
            if self._closing is None:
                self._closing = Disconnect()  # the peer went away: nothing more to write
                self._wakeup.set()
            try:
                await self._cleanup()
            finally:
                await writer
                if "abort" in self._timers:
                    self._timers["abort"].cancel()
                self.node.unregister(self)
                self._done.set()

    async def closed(self) -> None:
        await self._done.wait()

    def disconnect(self, reason: Disconnect) -> None:
        """Close the connection with ``reason``'s close code once queued frames are written."""
        if self._closing is not None:
            return
        self._closing = reason
        if isinstance(reason, DisconnectSlow):
            # The writer may be stuck on a socket the client does not read: close from here.
            # websockets writes the close frame, and aborts the connection after close_timeout.
            self._outbox.frames.clear()
            self._outbox.size = 0
            self._spawn(self.ws.close(reason.code, reason.reason))
        # A client that does not read keeps a writer (and websockets' own close) waiting on a
        # full socket forever: past the close deadline, drop the connection.
        self._timers["abort"] = self._loop.call_later(CLOSE_DEADLINE_S, self._abort)
        self._wakeup.set()

    def _abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def _read_loop(self) -> None:
        try:
            async for message in self.ws:
                if self._closing is not None:
                    return
                commands = decode_frame(message)
                for command in commands:
                    await self._dispatch(command)
                    if self._closing is not None:
                        return
        except Disconnect as exc:
            self.disconnect(exc)
        except PayloadTooBig:
            pass  # websockets closes with 1009 itself
        except ConnectionClosed:
            pass

    async def _write_loop(self) -> None:
        outbox = self._outbox
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while outbox.frames:
                    batch: list[str] = []
                    chars = 0
                    while outbox.frames and (not batch or chars < MAX_BATCH_CHARS):
                        frame = outbox.frames.popleft()
                        batch.append(frame)
                        chars += len(frame)
                    outbox.size -= chars
                    await self.ws.send("\n".join(batch))
                if self._closing is not None:
                    reason = self._closing
                    if reason.code != Disconnect.close.code:
                        await self.ws.close(reason.code, reason.reason)
                    return
        except ConnectionClosed:
            pass
        finally:
            if self._closing is None:
                self._closing = Disconnect()

    async def _cleanup(self) -> None:
        for channel in list(self.subs):
            await self._leave(channel)
        if self.session.state is State.CONNECTED:
            try:
                await self.node.router.connection_handler.on_disconnect(self._context())
            except Exception:
                self.log.exception("on_disconnect failed")

    # ------------------------------------------------------------------ output

    def deliver(self, frame: str) -> None:
        """Queue a frame; never blocks. Overflowing the queue closes the client with 3008."""
        if self._closing is not None:
            return
        outbox = self._outbox
        if outbox.held is not None:
            outbox.held.append(frame)
            return
        outbox.frames.append(frame)
        outbox.size += len(frame)
        if outbox.size > self.settings.write_queue_max_bytes:
            self.disconnect(DisconnectSlow())
            return
        self._wakeup.set()

    def presence_entries(self) -> Iterator[tuple[str, ClientInfo]]:
        return ((sub.channel, sub.info) for sub in tuple(self.subs.values()) if sub.presence)

    def lost_continuity(self, channel: str) -> None:
        self.disconnect(DisconnectInsufficientState())

    @property
    def session_id(self) -> str:
        # A WebSocket connection is its own session: the server API's ``session`` selects it
        # by its client id.
        return self.id

    @property
    def subscription_count(self) -> int:
        return len(self.subs)

    def server_subscribe(self, request: SubscribeUser) -> None:
        """Subscribe on the server's initiative: a server-side subscription and a ``subscribe`` push."""
        if not self._may_subscribe_server_side(request.channel):
            return

        async def subscribe() -> None:
            if not self._may_subscribe_server_side(request.channel):
                return
            if self.settings.channel_limit and len(self.subs) >= self.settings.channel_limit:
                self.disconnect(DisconnectChannelLimit())
                return
            try:
                name, options = self.node.resolve(request.channel)
            except RequestError as exc:
                self.log.warning(
                    "server subscribe refused: %s", exc.message, extra={"channel": request.channel}
                )
                return
            since = request.recover_since
            asked = SubscribeRequest(
                channel=name.full,
                recover=since is not None,
                offset=since.offset if since else 0,
                epoch=since.epoch if since else "",
            )
            sub = _Subscription(name.full, options, self._info(request.info), server_side=True)
            try:
                await self._join(
                    None, sub, asked, data=request.data, ttl=0, override=dict(request.override), push=True
                )
            except RequestError as exc:
                self.log.warning(
                    "server subscribe failed: %s", exc.message, extra={"channel": request.channel}
                )

        self._spawn(subscribe())

    def _may_subscribe_server_side(self, channel: str) -> bool:
        # A connection still connecting makes its own server-side subscriptions from its token.
        connected = self.session.state is State.CONNECTED and self._closing is None
        return connected and channel not in self.subs

    def refresh_expiry(self, *, expired: bool, expire_at: int | None) -> None:
        if self._closing is not None or self.session.state is not State.CONNECTED:
            return
        if expired:
            self.disconnect(DisconnectExpired())
            return
        try:
            self._set_connection_expiry(expire_at)
        except TokenExpired:
            self.disconnect(DisconnectExpired())

    def server_unsubscribe(self, channel: str) -> None:
        """Unsubscribe from ``channel`` on the server's initiative: push 2000, then leave."""
        if channel not in self.subs or self._closing is not None:
            return

        async def unsubscribe() -> None:
            if channel not in self.subs:
                return
            code, reason = UNSUBSCRIBE_SERVER
            self.deliver(encode_push(channel, "unsubscribe", {"code": code, "reason": reason}))
            # In the same step as the push, _leave takes the connection off the hub's live set:
            # no publication of the channel follows the unsubscribe push.
            await self._leave(channel)

        self._spawn(unsubscribe())

    def _reply(self, command: Command, result: WireDict) -> None:
        self.deliver(encode_reply(command.id, command.method, result))

    # ------------------------------------------------------------------ timers

    def _on_stale(self) -> None:
        if self.session.state is not State.CONNECTED:
            self.disconnect(DisconnectStale())

    def _schedule_ping(self) -> None:
        interval = self.node.settings.client.ping_interval_s
        if interval > 0:
            self._timers["ping"] = self._loop.call_later(interval, self._on_ping)

    def _on_ping(self) -> None:
        if not self.session.ping_sent():
            return
        self.deliver(PING)
        self._timers["pong"] = self._loop.call_later(self.settings.pong_timeout_s, self._on_pong_deadline)
        self._schedule_ping()

    def _on_pong_deadline(self) -> None:
        if self.session.ping_outstanding:
            self.disconnect(DisconnectNoPong())

    def _set_connection_expiry(self, expire_at: int | None) -> int:
        """Arm the 3005 timer; return the ttl in seconds the client is told (0 = never)."""
        old = self._timers.pop("expire", None)
        if old is not None:
            old.cancel()
        self._expire_at = expire_at
        if expire_at is None:
            return 0
        ttl = expire_at - int(time.time())
        if ttl <= 0:
            raise TokenExpired()
        delay = ttl + self.settings.expired_close_delay_s
        self._timers["expire"] = self._loop.call_later(delay, self._on_expired)
        return ttl

    def _on_expired(self) -> None:
        self.disconnect(DisconnectExpired())

    def _set_subscription_expiry(self, sub: _Subscription, expire_at: int | None) -> int:
        if sub.expiry is not None:
            sub.expiry.cancel()
            sub.expiry = None
        sub.expire_at = expire_at
        if expire_at is None:
            return 0
        ttl = expire_at - int(time.time())
        if ttl <= 0:
            raise TokenExpired()
        sub.expiry = self._loop.call_later(ttl, self._on_subscription_expired, sub)
        return ttl

    def _on_subscription_expired(self, sub: _Subscription) -> None:
        if self.subs.get(sub.channel) is not sub:
            return
        if sub.server_side:
            self.disconnect(DisconnectSubExpired())
            return
        code, reason = UNSUBSCRIBE_EXPIRED
        self.deliver(encode_push(sub.channel, "unsubscribe", {"code": code, "reason": reason}))
        self._spawn(self._leave(sub.channel))

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                self.log.exception("background task failed")

        task = self._loop.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, command: Command) -> None:
        self.session.admit(command)
        request = command.request
        if self._commands is not None and not isinstance(request, Pong):
            balance = self._commands.take(self._loop.time())
            if balance < 0:
                if balance < self._commands_debt_limit:
                    raise DisconnectTooManyRequests()
                if command.id:  # ``send`` has no reply to carry the error
                    self.deliver(encode_error(command.id, _RATE_LIMITED))
                return
        try:
            match request:
                case Pong():
                    return
                case ConnectRequest():
                    result = await self._connect(command, request)
                    if result is None:
                        return
                case SubscribeRequest():
                    await self._subscribe(command, request)
                    return
                case UnsubscribeRequest():
                    result = await self._unsubscribe(request)
                case PublishRequest():
                    result = await self._publish(request)
                case PresenceRequest():
                    result = await self._presence(request)
                case PresenceStatsRequest():
                    result = await self._presence_stats(request)
                case HistoryRequest():
                    result = await self._history(request)
                case RpcRequest():
                    result = await self._rpc(request)
                case SendRequest():
                    await self._send(request)
                    return
                case RefreshRequest():
                    result = await self._refresh(request)
                case SubRefreshRequest():
                    result = await self._sub_refresh(request)
                case UnknownMethod():
                    raise MethodNotFound()
        except Disconnect:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(request, ConnectRequest):
                self.session.connect_failed()
                self.node.unbind_user(self)
            if not isinstance(exc, RequestError):
                self.log.exception("command failed", extra={"method": command.method})
            reply = error_reply(exc)
            self.deliver(encode_error(command.id, reply))
            # Temporary errors are the server's trouble (100) or have their own escalation (111).
            if not reply.temporary and self._errors is not None and self._errors.take(self._loop.time()) < 0:
                self.disconnect(DisconnectTooManyErrors())
            return
        self._reply(command, result)

    def _context(self, channel: str = "", options: NamespaceOptions | None = None, **kw: Any) -> Context:
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

    def _info(self, chan_info: JSON = None) -> ClientInfo:
        return ClientInfo(user=self.user.id, client=self.id, conn_info=self.user.info, chan_info=chan_info)

    # ------------------------------------------------------------------ connect / refresh

    async def _connect(self, command: Command, request: ConnectRequest) -> WireDict | None:
        verifier = self.node.verifier
        if request.token:
            try:
                claims = await verifier.verify_connection(request.token)
            except TokenError:
                raise DisconnectInvalidToken() from None
            self.user = User(claims.user, info=claims.info, meta=claims.meta)
            expire_at = claims.expire_at
            server_subs = claims.subs
        elif self.settings.allow_anonymous_connect_without_token:
            expire_at, server_subs = None, ()
        else:
            raise DisconnectPermissionDenied("connection token required")
        if self.settings.channel_limit and len(server_subs) > self.settings.channel_limit:
            raise DisconnectChannelLimit()
        ttl = self._set_connection_expiry(expire_at)
        # Checked and counted in one step (no await between), so a burst cannot overshoot.
        if not self.node.bind_user(self, self.user.id, limit=self.settings.user_connection_limit):
            self.log.info("user connection limit reached", extra={"user": self.user.id})
            raise DisconnectConnectionLimit()
        data = await self.node.router.connection_handler.on_connect(self._context(data=request.data))

        result: WireDict = {"client": self.id, "version": self.node.version}
        if ttl:
            result.update(expires=True, ttl=ttl)
        if data is not None:
            result["data"] = data
        interval = self.node.settings.client.ping_interval_s
        if interval > 0:
            result.update(ping=interval, pong=True)

        self.session.connect_succeeded()
        self._schedule_ping()
        if not server_subs:
            return result
        # Pushes of server-side subscriptions must not overtake the connect reply.
        self._outbox.held = []
        try:
            subs: WireDict = {}
            recover = request.subs or {}
            for sub in server_subs:
                asked = recover.get(sub.channel)
                subs[sub.channel] = await self._subscribe_server_side(sub, asked)
            result["subs"] = subs
            self._reply(command, result)
        except Exception:
            # A failed connect leaves nothing behind: no subscription of it stays live.
            self._outbox.held = []
            for channel in list(self.subs):
                await self._leave(channel)
            raise
        finally:
            held, self._outbox.held = self._outbox.held, None
            for frame in held:
                self.deliver(frame)
        return None

    async def _refresh(self, request: RefreshRequest) -> WireDict:
        if self._expire_at is None:
            raise DisconnectBadRequest("refresh not expected")
        try:
            claims = await self.node.verifier.verify_connection(request.token)
        except TokenError:
            raise DisconnectInvalidToken() from None
        if claims.user != self.user.id:
            raise DisconnectInvalidToken("token user mismatch")
        ttl = self._set_connection_expiry(claims.expire_at)
        result: WireDict = {"client": self.id, "version": self.node.version}
        if ttl:
            result.update(expires=True, ttl=ttl)
        return result

    async def _sub_refresh(self, request: SubRefreshRequest) -> WireDict:
        sub = self.subs.get(request.channel)
        if sub is None:
            raise Forbidden("not subscribed")
        claims = await self._verify_subscription_token(
            request.token, request.channel, invalid=DisconnectInvalidToken
        )
        ttl = self._set_subscription_expiry(sub, claims.expire_at)
        return {"expires": True, "ttl": ttl} if ttl else {}

    async def _verify_subscription_token(
        self, token: str, channel: str, *, invalid: Callable[[], Exception]
    ) -> SubscriptionClaims:
        try:
            claims = await self.node.verifier.verify_subscription(token)
        except TokenError:
            raise invalid() from None
        if (
            claims.user != self.user.id
            or claims.channel != channel
            or (claims.client and claims.client != self.id)
        ):
            raise DisconnectInvalidToken("subscription token mismatch")
        return claims

    # ------------------------------------------------------------------ subscribe / unsubscribe

    async def _subscribe(self, command: Command, request: SubscribeRequest) -> None:
        channel = request.channel
        if channel in self.subs:
            raise AlreadySubscribed()
        if self.settings.channel_limit and len(self.subs) >= self.settings.channel_limit:
            raise LimitExceeded("too many channels")
        name, options = self.node.resolve(channel)
        claims: SubscriptionClaims | None = None
        if request.token:
            claims = await self._verify_subscription_token(request.token, channel, invalid=Forbidden)
            granted = True
        elif name.private:
            raise Forbidden("private channel needs a subscription token")
        elif name.allowed_users is not None:
            if not options.allow_user_limited_channels or self.user.id not in name.allowed_users:
                raise Forbidden()
            granted = True
        else:
            granted = options.allow_subscribe_for_client and (
                not self.user.anonymous or options.allow_subscribe_for_anonymous
            )
        ctx = self._context(
            channel, options, granted=granted, data=request.data, token_data=claims.data if claims else None
        )
        handler = self.node.router.handler_for(name.namespace)
        data = await handler.on_subscribe(ctx)
        if data is None and claims is not None:
            data = claims.data
        override = dict(claims.override) if claims else {}
        sub = _Subscription(channel, options, self._info(claims.info if claims else None), server_side=False)
        ttl = self._set_subscription_expiry(sub, claims.expire_at) if claims else 0
        try:
            await self._join(command, sub, request, data=data, ttl=ttl, override=override)
        except BaseException:
            if sub.expiry is not None:
                sub.expiry.cancel()
            raise

    async def _subscribe_server_side(
        self, server_sub: ServerSubscription, asked: SubscribeRequest | None
    ) -> WireDict:
        name, options = self.node.resolve(server_sub.channel)
        request = asked or SubscribeRequest(channel=server_sub.channel)
        sub = _Subscription(name.full, options, self._info(server_sub.info), server_side=True)
        results: list[WireDict] = []
        await self._join(None, sub, request, data=server_sub.data, ttl=0, override={}, out=results)
        return results[0]

    async def _join(
        self,
        command: Command | None,
        sub: _Subscription,
        request: SubscribeRequest,
        *,
        data: JSON,
        ttl: int,
        override: dict[str, bool],
        out: list[WireDict] | None = None,
        push: bool = False,
    ) -> None:
        """Make the subscription live and answer it, in the step it goes live.

        The answer is the reply to ``command``, is appended to ``out`` (server-side
        subscriptions of a connect), or with ``push`` is a ``subscribe`` push followed by the
        recovered publications (a server-side subscription made through the server API).
        """
        options = sub.options
        history = options.history_enabled
        recoverable = history and (
            options.force_recovery or request.recoverable or override.get("force_recovery", False)
        )
        positioned = history and (
            recoverable
            or options.force_positioning
            or request.positioned
            or override.get("force_positioning", False)
        )
        sub.presence = options.presence and override.get("presence", True)
        sub.announce = options.join_leave and override.get("join_leave", True)
        push_join_leave = sub.announce and (
            options.force_push_join_leave
            or request.join_leave
            or override.get("force_push_join_leave", False)
        )
        recovery = None
        if recoverable and request.recover:
            recovery = Recovery(request.offset, request.epoch, self.settings.recovery_max_publication_limit)

        def on_joined(joined: Joined) -> bool:
            if recovery is not None and not joined.recovered and request.reject_unrecovered:
                return False
            result: WireDict = {}
            if ttl:
                result.update(expires=True, ttl=ttl)
            if recoverable:
                result["recoverable"] = True
            if positioned:
                result["positioned"] = True
            if joined.position is not None and (positioned or recoverable):
                result["epoch"] = joined.position.epoch
                if joined.position.offset:
                    result["offset"] = joined.position.offset
            if recovery is not None:
                result["was_recovering"] = True
                if joined.recovered:
                    result["recovered"] = True
                if joined.publications:
                    result["publications"] = [p.to_wire() for p in joined.publications]
            if data is not None:
                result["data"] = data
            self.subs[sub.channel] = sub
            if command is not None:
                self._reply(command, result)
            if out is not None:
                out.append(result)
            if push:
                self._push_subscribed(sub.channel, result)
            return True

        if sub.presence:
            # Before the reply: a client that sees its subscribe succeed is in presence, on every
            # replica (with a Redis broker the entry takes a round trip to land).
            await self._advisory(
                "presence update",
                sub.channel,
                self.node.joined(sub.channel, sub.info, presence=True, announce=False),
            )
        went_live = False
        try:
            went_live = await self.node.hub.subscribe(
                sub.channel,
                self,
                history=history,
                join_leave=push_join_leave,
                recovery=recovery,
                on_joined=on_joined,
            )
        finally:
            if not went_live and sub.presence:
                # Not live after all (recovery refused, or the subscribe failed): leave presence.
                await self._advisory(
                    "presence update",
                    sub.channel,
                    self.node.left(sub.channel, sub.info, presence=True, announce=False),
                )
        if not went_live:
            raise UnrecoverablePosition()
        if sub.announce:
            await self._advisory(
                "join announcement",
                sub.channel,
                self.node.joined(sub.channel, sub.info, presence=False, announce=True),
            )

    def _push_subscribed(self, channel: str, result: WireDict) -> None:
        """Tell the client of a server-side subscription: the push, then what it recovered."""
        fields = ("recoverable", "positioned", "epoch", "offset", "data")
        body: WireDict = {key: result[key] for key in fields if key in result}
        self.deliver(encode_push(channel, "subscribe", body))
        publications = result.get("publications")
        if isinstance(publications, list):
            for pub in publications:
                self.deliver(encode_push(channel, "pub", pub))

    async def _advisory(self, what: str, channel: str, action: Awaitable[None]) -> None:
        """Presence and join/leave are advisory: a failure is logged, the subscription stands."""
        try:
            await action
        except BrokerUnavailable:
            self.log.warning("%s skipped: broker unavailable", what, extra={"channel": channel})
        except Exception:
            self.log.exception("%s failed", what, extra={"channel": channel})

    async def _unsubscribe(self, request: UnsubscribeRequest) -> WireDict:
        if request.channel in self.subs:
            await self._leave(request.channel)
        return {}

    async def _leave(self, channel: str) -> None:
        sub = self.subs.pop(channel, None)
        if sub is None:
            return
        if sub.expiry is not None:
            sub.expiry.cancel()
        await self.node.hub.unsubscribe(channel, self)
        name, _ = self.node.resolve(channel)
        if sub.presence or sub.announce:
            await self._advisory(
                "leave",
                channel,
                self.node.left(channel, sub.info, presence=sub.presence, announce=sub.announce),
            )
        try:
            await self.node.router.handler_for(name.namespace).on_unsubscribe(
                self._context(channel, sub.options)
            )
        except Exception:
            self.log.exception("on_unsubscribe failed", extra={"channel": channel})

    # ------------------------------------------------------------------ publish, presence, history

    async def _publish(self, request: PublishRequest) -> WireDict:
        name, options = self.node.resolve(request.channel)
        subscribed = request.channel in self.subs
        granted = (
            options.allow_publish_for_client or (options.allow_publish_for_subscriber and subscribed)
        ) and (not self.user.anonymous or options.allow_publish_for_anonymous)
        ctx = self._context(request.channel, options, granted=granted)
        data = await self.node.router.handler_for(name.namespace).on_publish(ctx, request.data)
        sub = self.subs.get(request.channel)
        await self.node.publish(
            request.channel, data, options=options, info=sub.info if sub else self._info()
        )
        return {}

    async def _presence(self, request: PresenceRequest) -> WireDict:
        name, options = self.node.resolve(request.channel)
        if not options.presence:
            raise NotAvailable()
        await self._authorize_presence(name.namespace, request.channel, options)
        members = await self.node.presence(request.channel)
        return {"presence": {client: info.to_wire() for client, info in members.items()}}

    async def _presence_stats(self, request: PresenceStatsRequest) -> WireDict:
        name, options = self.node.resolve(request.channel)
        if not options.presence:
            raise NotAvailable()
        await self._authorize_presence(name.namespace, request.channel, options)
        stats = await self.node.presence_stats(request.channel)
        return {"num_clients": stats.num_clients, "num_users": stats.num_users}

    async def _authorize_presence(self, namespace: str, channel: str, options: NamespaceOptions) -> None:
        granted = options.allow_presence_for_client or (
            options.allow_presence_for_subscriber and channel in self.subs
        )
        await self.node.router.handler_for(namespace).on_presence(
            self._context(channel, options, granted=granted)
        )

    async def _history(self, request: HistoryRequest) -> WireDict:
        name, options = self.node.resolve(request.channel)
        if not options.history_enabled:
            raise NotAvailable()
        granted = options.allow_history_for_client or (
            options.allow_history_for_subscriber and request.channel in self.subs
        )
        ctx = self._context(request.channel, options, granted=granted)
        await self.node.router.handler_for(name.namespace).on_history(ctx)
        page = await self.node.history(
            request.channel,
            since=request.since_offset,
            limit=request.limit,
            reverse=request.reverse,
            cap=self.settings.history_max_publication_limit,
        )
        if request.since_epoch and request.since_epoch != page.position.epoch:
            raise UnrecoverablePosition()
        result: WireDict = {"epoch": page.position.epoch}
        if page.position.offset:
            result["offset"] = page.position.offset
        if page.publications:
            result["publications"] = [p.to_wire() for p in page.publications]
        return result

    # ------------------------------------------------------------------ rpc / send

    async def _rpc(self, request: RpcRequest) -> WireDict:
        namespace, sep, _ = request.method.partition(":")
        ctx = self._context()
        if sep and self.node.router.has_handler(namespace):
            data = await self.node.router.handler_for(namespace).on_rpc(ctx, request.method, request.data)
        else:
            data = await self.node.router.connection_handler.on_rpc(ctx, request.method, request.data)
        return {} if data is None else {"data": data}

    async def _send(self, request: SendRequest) -> None:
        try:
            await self.node.router.connection_handler.on_send(self._context(), request.data)
        except (Disconnect, asyncio.CancelledError):
            raise
        except Exception:
            # send has no reply to carry an error: log it and keep the connection.
            self.log.exception("on_send failed")
