"""What each client command does: one function per command, on one connection.

The order of the permission checks is docs/permissions.md's; the rules themselves are
``channels.policy``'s, the results' shapes ``protocol.replies``'. ``run`` answers every command
but ``publish``, whose ``start_publish`` returns once the publication is queued (the connection
pipelines publishes and replies when the queue is done with it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, assert_never

from wirehub.auth.base import SubscriptionClaims
from wirehub.channels.policy import history_granted, presence_granted, publish_granted, subscribe_granted
from wirehub.config import NamespaceOptions
from wirehub.errors import (
    AlreadySubscribed,
    Disconnect,
    DisconnectBadRequest,
    DisconnectChannelLimit,
    DisconnectConnectionLimit,
    DisconnectInvalidToken,
    DisconnectPermissionDenied,
    Forbidden,
    Invalid,
    LimitExceeded,
    MethodNotFound,
    NotAvailable,
    TokenError,
)
from wirehub.protocol.frames import (
    Command,
    ConnectRequest,
    HistoryRequest,
    Pong,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    Refused,
    RpcRequest,
    SendRequest,
    SubRefreshRequest,
    SubscribeRequest,
    UnknownMethod,
    UnsubscribeRequest,
)
from wirehub.protocol.replies import (
    connect_result,
    history_result,
    presence_result,
    presence_stats_result,
    publications_within,
    refresh_result,
    rpc_result,
    sub_refresh_result,
)
from wirehub.server import subscriptions
from wirehub.server.pipeline import OnDone
from wirehub.server.subscriptions import Subscription
from wirehub.types import JSON, ClientInfo, HistoryPage, User, WireDict

if TYPE_CHECKING:
    from wirehub.server.connection import Client

__all__ = ["disconnected", "run", "start_publish"]


async def run(client: Client, command: Command) -> WireDict | None:
    """Carry out ``command`` (not a publish); its result, or None when it answers itself or not at all."""
    request = command.request
    match request:
        case ConnectRequest():
            return await connect(client, command, request)
        case SubscribeRequest():
            await subscribe(client, command, request)
            return None
        case UnsubscribeRequest():
            if request.channel in client.subs:
                await subscriptions.leave(client, request.channel)
            return {}
        case PresenceRequest():
            await _authorize_presence(client, request.channel)
            return presence_result(await client.node.presence(request.channel))
        case PresenceStatsRequest():
            await _authorize_presence(client, request.channel)
            return presence_stats_result(await client.node.presence_stats(request.channel))
        case HistoryRequest():
            return await history(client, request)
        case RpcRequest():
            return await rpc(client, request)
        case SendRequest():
            await send(client, request)
            return None
        case RefreshRequest():
            return await refresh(client, request)
        case SubRefreshRequest():
            return await sub_refresh(client, request)
        case UnknownMethod():
            raise MethodNotFound()
        case Refused(reason=reason):
            raise Invalid(reason)
        case PublishRequest() | Pong():
            raise AssertionError("publishes and pongs never come here")  # the connection handles them
        case _:
            assert_never(request)


# --------------------------------------------------------------------------- connect / refresh


async def connect(client: Client, command: Command, request: ConnectRequest) -> WireDict | None:
    node, settings = client.node, client.settings
    if request.token:
        try:
            claims = await node.verifier.verify_connection(request.token)
        except TokenError as exc:
            raise DisconnectInvalidToken() from exc  # the cause is for the log, not the wire
        client.user = User(claims.user, info=claims.info, meta=claims.meta)
        expire_at = claims.expire_at
        server_subs = claims.subs
    elif settings.allow_anonymous_connect_without_token:
        expire_at, server_subs = None, ()
    else:
        raise DisconnectPermissionDenied("connection token required")
    if settings.channel_limit and len(server_subs) > settings.channel_limit:
        raise DisconnectChannelLimit()
    ttl = client.set_expiry(expire_at)
    # Checked and counted in one step (no await between), so a burst cannot overshoot.
    if not node.bind_user(client, client.user.id, limit=settings.user_connection_limit):
        client.log.info("user connection limit reached", extra={"user": client.user.id})
        raise DisconnectConnectionLimit()
    data = await node.router.connection_handler.on_connect(client.context(data=request.data))
    result = connect_result(
        client.id, node.version, ttl=ttl, data=data, ping_interval_s=settings.ping_interval_s
    )
    client.session.connect_succeeded()
    client.schedule_ping()
    if not server_subs:
        return result
    # Pushes of server-side subscriptions must not overtake the connect reply.
    client.outbox.hold()
    try:
        subs: WireDict = {}
        recover = request.subs or {}
        for sub in server_subs:
            subs[sub.channel] = await subscriptions.join_server_side(client, sub, recover.get(sub.channel))
        result["subs"] = subs
        client.reply(command, result)
    except Exception:
        # A failed connect leaves nothing behind: no subscription of it stays live.
        client.outbox.drop_held()
        await subscriptions.leave_all(client)
        raise
    finally:
        client.outbox.release()
    return None


async def refresh(client: Client, request: RefreshRequest) -> WireDict:
    if client.expire_at is None:
        raise DisconnectBadRequest("refresh not expected")
    try:
        claims = await client.node.verifier.verify_connection(request.token)
    except TokenError:
        raise DisconnectInvalidToken() from None
    if claims.user != client.user.id:
        raise DisconnectInvalidToken("token user mismatch")
    ttl = client.set_expiry(claims.expire_at)
    return refresh_result(client.id, client.node.version, ttl=ttl)


async def sub_refresh(client: Client, request: SubRefreshRequest) -> WireDict:
    sub = client.subs.get(request.channel)
    if sub is None:
        raise Forbidden("not subscribed")
    claims = await _verify_subscription_token(
        client, request.token, request.channel, invalid=DisconnectInvalidToken
    )
    return sub_refresh_result(ttl=subscriptions.set_expiry(client, sub, claims.expire_at))


async def _verify_subscription_token(
    client: Client, token: str, channel: str, *, invalid: Callable[[], Exception]
) -> SubscriptionClaims:
    try:
        claims = await client.node.verifier.verify_subscription(token)
    except TokenError:
        raise invalid() from None
    if (
        claims.user != client.user.id
        or claims.channel != channel
        or (claims.client and claims.client != client.id)
    ):
        raise DisconnectInvalidToken("subscription token mismatch")
    return claims


async def disconnected(client: Client) -> None:
    """The connection handler's ``on_disconnect``, once, for an authenticated connection."""
    try:
        await client.node.router.connection_handler.on_disconnect(client.context())
    except Exception:
        client.log.exception("on_disconnect failed")


# --------------------------------------------------------------------------- subscribe


async def subscribe(client: Client, command: Command, request: SubscribeRequest) -> None:
    channel = request.channel
    if channel in client.subs:
        raise AlreadySubscribed()
    if client.settings.channel_limit and len(client.subs) >= client.settings.channel_limit:
        raise LimitExceeded("too many channels")
    name, options = client.node.resolve(channel)
    claims: SubscriptionClaims | None = None
    if request.token:
        claims = await _verify_subscription_token(client, request.token, channel, invalid=Forbidden)
    elif name.private:
        raise Forbidden("private channel needs a subscription token")
    granted = subscribe_granted(name, options, client.user.id, token=claims is not None)
    ctx = client.context(
        channel, options, granted=granted, data=request.data, token_data=claims.data if claims else None
    )
    data = await client.node.router.handler_for(name.namespace).on_subscribe(ctx)
    if data is None and claims is not None:
        data = claims.data
    override = dict(claims.override) if claims else {}
    sub = Subscription(channel, options, client.info(claims.info if claims else None), server_side=False)
    ttl = subscriptions.set_expiry(client, sub, claims.expire_at) if claims else 0
    try:
        await subscriptions.join(client, command, sub, request, data=data, ttl=ttl, override=override)
    except BaseException:
        client.cancel_deadline(f"sub:{channel}")
        raise


# --------------------------------------------------------------------------- publish, presence, history


def start_publish(client: Client, request: PublishRequest, on_done: OnDone) -> Awaitable[None] | None:
    """Authorise and validate a publish (``on_publish``), then queue it; ``on_done`` gets the outcome.

    None when that is done already: the default ``on_publish`` allowed it and it is queued (on
    the in-process broker a publication without history is fanned out, too). Otherwise the
    caller awaits what is returned: the namespace handler's ``on_publish``, then the queueing.
    """
    name, options = client.node.resolve(request.channel)
    sub = client.subs.get(request.channel)
    granted = publish_granted(options, subscribed=sub is not None, anonymous=client.user.anonymous)
    handler = client.node.router.handler_for(name.namespace)
    info = sub.info if sub else client.info()
    if not handler.default_on_publish:
        ctx = client.context(request.channel, options, granted=granted)
        return _publish_after_handler(
            client, request.channel, handler.on_publish(ctx, request.data), on_done, options, info
        )
    # What the default on_publish would do, without the context it would not look at.
    if not granted:
        raise Forbidden()
    client.node.submit_publish(request.channel, request.data, on_done, options=options, info=info)
    return None


async def _publish_after_handler(
    client: Client,
    channel: str,
    on_publish: Awaitable[JSON],
    on_done: OnDone,
    options: NamespaceOptions,
    info: ClientInfo,
) -> None:
    data = await on_publish
    client.node.submit_publish(channel, data, on_done, options=options, info=info)


async def _authorize_presence(client: Client, channel: str) -> None:
    name, options = client.node.resolve(channel)
    if not options.presence:
        raise NotAvailable()
    granted = presence_granted(options, subscribed=channel in client.subs)
    await client.node.router.handler_for(name.namespace).on_presence(
        client.context(channel, options, granted=granted)
    )


async def history(client: Client, request: HistoryRequest) -> WireDict:
    name, options = client.node.resolve(request.channel)
    if not options.history_enabled:
        raise NotAvailable()
    granted = history_granted(options, subscribed=request.channel in client.subs)
    await client.node.router.handler_for(name.namespace).on_history(
        client.context(request.channel, options, granted=granted)
    )
    page = await client.node.history(request, cap=client.settings.history_max_publication_limit)
    fit = publications_within(page.publications, client.reply_budget_bytes)
    if fit < len(page.publications):
        # A reply the write queue could not hold would only close the client as slow: it gets
        # what fits, and pages on from the last offset (``since``) for the rest.
        page = HistoryPage(page.publications[:fit], page.position)
    return history_result(page)


# --------------------------------------------------------------------------- rpc / send


async def rpc(client: Client, request: RpcRequest) -> WireDict:
    namespace, sep, _ = request.method.partition(":")
    router, ctx = client.node.router, client.context()
    if sep and router.has_handler(namespace):
        data = await router.handler_for(namespace).on_rpc(ctx, request.method, request.data)
    else:
        data = await router.connection_handler.on_rpc(ctx, request.method, request.data)
    return rpc_result(data)


async def send(client: Client, request: SendRequest) -> None:
    try:
        await client.node.router.connection_handler.on_send(client.context(), request.data)
    except (Disconnect, asyncio.CancelledError):
        raise
    except Exception:
        # send has no reply to carry an error: log it and keep the connection.
        client.log.exception("on_send failed")
