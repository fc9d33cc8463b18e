"""The declarative permission rules, in one place: what the namespace options and channel names grant.

Each function gives the verdict a handler receives as ``ctx.granted`` (the default handler
follows it; docs/permissions.md has the whole order of checks). Two rules are no verdict but a
refusal no handler can loosen: a ``#`` channel admits only the users it lists, and only in a
namespace with ``allow_user_limited_channels``. Client commands and the account endpoints'
``/auth/subscription-token`` both ask these functions.
"""

from __future__ import annotations

from wirehub.channels.names import ChannelName
from wirehub.config import NamespaceOptions
from wirehub.errors import Forbidden

__all__ = ["history_granted", "presence_granted", "publish_granted", "subscribe_granted"]


def subscribe_granted(name: ChannelName, options: NamespaceOptions, user: str, *, token: bool) -> bool:
    """Whether the rules grant ``user`` ("" for anonymous) a subscription to ``name``.

    A valid subscription token grants it. Without one: a ``#`` channel that does not list the
    user raises ``Forbidden``; a ``$`` channel is not granted (only a token opens it); anything
    else follows ``allow_subscribe_for_client`` and ``allow_subscribe_for_anonymous``.
    """
    if token:
        return True
    if name.allowed_users is not None:
        if not options.allow_user_limited_channels or user not in name.allowed_users:
            raise Forbidden()
        return True
    if name.private:
        return False
    return options.allow_subscribe_for_client and (bool(user) or options.allow_subscribe_for_anonymous)


def publish_granted(options: NamespaceOptions, *, subscribed: bool, anonymous: bool) -> bool:
    allowed = options.allow_publish_for_client or (options.allow_publish_for_subscriber and subscribed)
    return allowed and (not anonymous or options.allow_publish_for_anonymous)


def history_granted(options: NamespaceOptions, *, subscribed: bool) -> bool:
    return options.allow_history_for_client or (options.allow_history_for_subscriber and subscribed)


def presence_granted(options: NamespaceOptions, *, subscribed: bool) -> bool:
    return options.allow_presence_for_client or (options.allow_presence_for_subscriber and subscribed)
