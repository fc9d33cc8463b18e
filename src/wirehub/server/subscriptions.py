"""A connection's subscriptions: going live, leaving, expiring, and those the server makes.

``join`` makes one subscription live through the hub and answers it in the very step it goes
live, so that the answer precedes every live publication and the publications it carries end
exactly where the live stream begins. Presence and join/leave announcements are advisory: a
broker outage skips them (logged) and the subscription stands.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wirehub.auth.base import ServerSubscription
from wirehub.config import NamespaceOptions
from wirehub.errors import (
    UNSUBSCRIBE_EXPIRED,
    UNSUBSCRIBE_SERVER,
    BrokerUnavailable,
    DisconnectChannelLimit,
    DisconnectSubExpired,
    RequestError,
    TokenExpired,
    UnrecoverablePosition,
)
from wirehub.protocol.codec import encode_push
from wirehub.protocol.frames import Command, SubscribeRequest
from wirehub.protocol.replies import publications_within, subscribe_push, subscribe_result, unsubscribe_push
from wirehub.protocol.session import State
from wirehub.server.hub import Joined, Recovery
from wirehub.types import JSON, ClientInfo, StreamPosition, SubscribeUser, WireDict

if TYPE_CHECKING:
    from wirehub.server.connection import Client

__all__ = ["Subscription", "join", "leave", "leave_all", "server_subscribe", "server_unsubscribe"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Subscription:
    channel: str
    options: NamespaceOptions
    info: ClientInfo
    server_side: bool
    presence: bool = False
    announce: bool = False
    """Whether joins and leaves of this subscriber are announced (join_leave, unless overridden)."""
    expire_at: int | None = None


async def join(
    client: Client,
    command: Command | None,
    sub: Subscription,
    request: SubscribeRequest,
    *,
    data: JSON,
    ttl: int,
    override: dict[str, bool],
    out: list[WireDict] | None = None,
    push: bool = False,
) -> None:
    """Make ``sub`` live and answer it, in the step it goes live.

    The answer is the reply to ``command``, is appended to ``out`` (server-side subscriptions of
    a connect), or with ``push`` is a ``subscribe`` push followed by the recovered publications (a
    server-side subscription made through the server API).
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
        options.force_push_join_leave or request.join_leave or override.get("force_push_join_leave", False)
    )
    recovery = None
    if recoverable and request.recover:
        recovery = Recovery(request.offset, request.epoch, client.settings.recovery_max_publication_limit)

    def on_joined(joined: Joined) -> bool:
        if joined.recovered and not _fits(client, joined):
            # The missed publications would not fit the write queue: the client is told it could
            # not recover (it then loads history in pages) rather than closed as slow, again and
            # again, by a reply it cannot take.
            client.log.info("recovery too large for one reply", extra={"channel": sub.channel})
            last = joined.publications[-1].offset
            assert joined.position is not None
            joined = Joined(StreamPosition(last, joined.position.epoch))
        if recovery is not None and not joined.recovered and request.reject_unrecovered:
            return False
        result = subscribe_result(
            ttl=ttl,
            recoverable=recoverable,
            positioned=positioned,
            position=joined.position,
            was_recovering=recovery is not None,
            recovered=joined.recovered,
            publications=joined.publications,
            data=data,
        )
        client.subs[sub.channel] = sub
        if command is not None:
            client.reply(command, result)
        if out is not None:
            out.append(result)
        if push:
            client.deliver(encode_push(sub.channel, "subscribe", subscribe_push(result)))
            for pub in joined.publications:
                client.deliver(encode_push(sub.channel, "pub", pub.to_wire()))
        return True

    node = client.node
    if sub.presence:
        # Before the reply: a client that sees its subscribe succeed is in presence, on every
        # replica (with a Redis broker the entry takes a round trip to land).
        await _advisory(client, "presence update", sub, joined=True, presence=True, announce=False)
    went_live = False
    try:
        went_live = await node.hub.subscribe(
            sub.channel,
            client,
            history=history,
            join_leave=push_join_leave,
            recovery=recovery,
            on_joined=on_joined,
        )
    finally:
        if not went_live and sub.presence:
            # Not live after all (recovery refused, or the subscribe failed): leave presence.
            await _advisory(client, "presence update", sub, joined=False, presence=True, announce=False)
    if not went_live:
        raise UnrecoverablePosition()
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "subscribed",
            extra={
                "client": client.id,
                "user": client.user.id,
                "channel": sub.channel,
                "server_side": sub.server_side,
                "recovering": recovery is not None,
            },
        )
    if sub.announce:
        await _advisory(client, "join announcement", sub, joined=True, presence=False, announce=True)


def _fits(client: Client, joined: Joined) -> bool:
    pubs = joined.publications
    return publications_within(pubs, client.reply_budget_bytes) == len(pubs)


async def join_server_side(
    client: Client, server_sub: ServerSubscription, asked: SubscribeRequest | None
) -> WireDict:
    """Subscribe to one of the connection token's channels; its result for the connect reply."""
    name, options = client.node.resolve(server_sub.channel)
    request = asked or SubscribeRequest(channel=server_sub.channel)
    sub = Subscription(name.full, options, client.info(server_sub.info), server_side=True)
    results: list[WireDict] = []
    await join(client, None, sub, request, data=server_sub.data, ttl=0, override={}, out=results)
    return results[0]


def server_subscribe(client: Client, request: SubscribeUser) -> None:
    """Subscribe on the server's initiative: a server-side subscription and a ``subscribe`` push."""
    if not _may_subscribe_server_side(client, request.channel):
        return

    async def subscribe() -> None:
        if not _may_subscribe_server_side(client, request.channel):
            return
        if client.settings.channel_limit and len(client.subs) >= client.settings.channel_limit:
            client.disconnect(DisconnectChannelLimit())
            return
        try:
            name, options = client.node.resolve(request.channel)
        except RequestError as exc:
            client.log.warning(
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
        sub = Subscription(name.full, options, client.info(request.info), server_side=True)
        try:
            await join(
                client, None, sub, asked, data=request.data, ttl=0, override=dict(request.override), push=True
            )
        except RequestError as exc:
            client.log.warning("server subscribe failed: %s", exc.message, extra={"channel": request.channel})

    client.spawn(subscribe())


def _may_subscribe_server_side(client: Client, channel: str) -> bool:
    # A connection still connecting makes its own server-side subscriptions from its token.
    return client.session.state is State.CONNECTED and not client.closing and channel not in client.subs


def server_unsubscribe(client: Client, channel: str) -> None:
    """Unsubscribe from ``channel`` on the server's initiative: push 2000, then leave."""
    if channel not in client.subs or client.closing:
        return

    async def unsubscribe() -> None:
        if channel not in client.subs:
            return
        client.deliver(encode_push(channel, "unsubscribe", unsubscribe_push(*UNSUBSCRIBE_SERVER)))
        # In the same step as the push, leave takes the connection off the hub's live set:
        # no publication of the channel follows the unsubscribe push.
        await leave(client, channel)

    client.spawn(unsubscribe())


def set_expiry(client: Client, sub: Subscription, expire_at: int | None) -> int:
    """Arm the subscription's expiry; return the ttl the client is told (0 = never)."""
    sub.expire_at = expire_at
    name = f"sub:{sub.channel}"
    if expire_at is None:
        client.cancel_deadline(name)
        return 0
    ttl = expire_at - int(time.time())
    if ttl <= 0:
        raise TokenExpired()
    client.set_deadline(name, ttl, lambda: _expired(client, sub))
    return ttl


def _expired(client: Client, sub: Subscription) -> None:
    if client.subs.get(sub.channel) is not sub:
        return
    if sub.server_side:
        client.disconnect(DisconnectSubExpired())
        return
    client.deliver(encode_push(sub.channel, "unsubscribe", unsubscribe_push(*UNSUBSCRIBE_EXPIRED)))
    client.spawn(leave(client, sub.channel))


async def leave(client: Client, channel: str) -> None:
    sub = client.subs.pop(channel, None)
    if sub is None:
        return
    client.cancel_deadline(f"sub:{channel}")
    node = client.node
    await node.hub.unsubscribe(channel, client)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("unsubscribed", extra={"client": client.id, "user": client.user.id, "channel": channel})
    name, _ = node.resolve(channel)
    if sub.presence or sub.announce:
        await _advisory(client, "leave", sub, joined=False, presence=sub.presence, announce=sub.announce)
    try:
        await node.router.handler_for(name.namespace).on_unsubscribe(client.context(channel, sub.options))
    except Exception:
        client.log.exception("on_unsubscribe failed", extra={"channel": channel})


async def leave_all(client: Client) -> None:
    for channel in list(client.subs):
        await leave(client, channel)


async def _advisory(
    client: Client, what: str, sub: Subscription, *, joined: bool, presence: bool, announce: bool
) -> None:
    """Tell presence and join/leave that ``sub``'s subscriber ``joined`` (or left) its channel.

    Both are advisory: a failure is logged, the subscription stands.
    """
    change = client.node.joined if joined else client.node.left
    try:
        await change(sub.channel, sub.info, presence=presence, announce=announce)
    except BrokerUnavailable:
        client.log.warning("%s skipped: broker unavailable", what, extra={"channel": sub.channel})
    except Exception:
        client.log.exception("%s failed", what, extra={"channel": sub.channel})
