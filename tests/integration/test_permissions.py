"""Who may subscribe and publish, decided in the documented order (docs/permissions.md).

Subscribe: a subscription token, else ``$`` refuses, else a ``#`` user list, else the namespace
options; then the namespace handler's ``on_subscribe`` has the last word, but cannot open a
``$`` channel without a token nor a ``#`` channel to an unlisted user. Publish: the namespace
options, then ``on_publish``. A real gateway runs ``tests.apps.permission_rules``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.gateway_process import GatewayProcess
from tests.helpers import running_gateway, unique
from tests.raw_client import RawClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = """
[client]
allow_anonymous_connect_without_token = true

[namespaces.open]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true

[namespaces.anon]
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true

[namespaces.locked]

[namespaces.users]
allow_user_limited_channels = true

[namespaces.guarded]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true

[namespaces.vip]
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    async with running_gateway(
        tmp_path_factory.mktemp("permissions"), config=CONFIG, app="tests.apps.permission_rules:app"
    ) as gateway:
        yield gateway


class Clients:
    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self._open: list[RawClient] = []

    async def user(self, user: str) -> RawClient:
        """A client connected as ``user``; ``""`` connects anonymously, without a token."""
        client = await RawClient.open(self.gateway.ws_url)
        self._open.append(client)
        params = {"token": self.gateway.token(user)} if user else {}
        reply = await client.call("connect", params)
        assert "connect" in reply, reply
        return client

    async def close_all(self) -> None:
        for client in self._open:
            await client.close()


@pytest_asyncio.fixture(loop_scope="module")
async def clients(gw: GatewayProcess) -> AsyncIterator[Clients]:
    opened = Clients(gw)
    yield opened
    await opened.close_all()


async def subscribe(client: RawClient, channel: str, token: str = "") -> dict[str, Any]:
    params = {"channel": channel} | ({"token": token} if token else {})
    return await client.call("subscribe", params)


def assert_refused(reply: dict[str, Any]) -> None:
    assert reply.get("error", {}).get("code") == 103, reply


def assert_subscribed(reply: dict[str, Any]) -> dict[str, Any]:
    assert "subscribe" in reply, reply
    result: dict[str, Any] = reply["subscribe"]
    return result


# --------------------------------------------------------------------------- subscription tokens


async def test_subscribe_succeeds_with_subscription_token_when_namespace_allows_nothing(
    gw: GatewayProcess, clients: Clients
) -> None:
    """A valid subscription token opens a channel whose namespace options allow nobody."""
    alice = await clients.user("alice")
    channel = unique("locked:room-")
    assert_refused(await subscribe(alice, channel))
    result = assert_subscribed(await subscribe(alice, channel, gw.sub_token("alice", channel, data={"x": 1})))
    assert result["data"] == {"x": 1}


async def test_subscribe_succeeds_with_subscription_token_when_user_not_in_hash_list(
    gw: GatewayProcess, clients: Clients
) -> None:
    """The token comes first: it grants a ``#`` channel even to a user the list does not name."""
    carol = await clients.user("carol")
    channel = unique("users:dm-") + "#alice,bob"
    assert_refused(await subscribe(carol, channel))
    assert_subscribed(await subscribe(carol, channel, gw.sub_token("carol", channel)))


# --------------------------------------------------------------------------- $ private channels


@pytest.mark.parametrize("namespace", ["open", "anon", "guarded", "vip"])
async def test_subscribe_fails_with_103_when_private_channel_has_no_token(
    clients: Clients, namespace: str
) -> None:
    """A ``$`` channel needs a token even where options or the handler would admit the user."""
    client = await clients.user("vip")
    assert_refused(await subscribe(client, unique(f"${namespace}:secret-")))


async def test_subscribe_to_private_channel_succeeds_with_token(gw: GatewayProcess, clients: Clients) -> None:
    """With a subscription token for it, a ``$`` channel opens."""
    alice = await clients.user("alice")
    channel = unique("$open:secret-")
    assert_subscribed(await subscribe(alice, channel, gw.sub_token("alice", channel)))


# --------------------------------------------------------------------------- # user-limited channels


@pytest.mark.parametrize("user", ["alice", "bob"])
async def test_subscribe_succeeds_when_user_is_in_hash_list(clients: Clients, user: str) -> None:
    """Every user listed after ``#`` may subscribe without a token."""
    client = await clients.user(user)
    assert_subscribed(await subscribe(client, unique("users:dm-") + "#alice,bob"))


async def test_subscribe_fails_with_103_when_user_is_not_in_hash_list(clients: Clients) -> None:
    """A user the ``#`` list does not name is refused."""
    carol = await clients.user("carol")
    assert_refused(await subscribe(carol, unique("users:dm-") + "#alice,bob"))


@pytest.mark.parametrize("namespace", ["open", "vip"])
async def test_subscribe_fails_with_103_when_namespace_does_not_allow_user_limited_channels(
    clients: Clients, namespace: str
) -> None:
    """Outside ``allow_user_limited_channels`` namespaces even a listed user is refused."""
    client = await clients.user("vip")
    assert_refused(await subscribe(client, unique(f"{namespace}:dm-") + "#vip"))


# --------------------------------------------------------------------------- namespace options


async def test_subscribe_follows_namespace_options_when_handler_is_default(clients: Clients) -> None:
    """``allow_subscribe_for_client`` admits users; anonymous ones need ``_for_anonymous`` too."""
    alice = await clients.user("alice")
    anonymous = await clients.user("")
    assert_subscribed(await subscribe(alice, unique("open:room-")))
    assert_refused(await subscribe(anonymous, unique("open:room-")))
    assert_subscribed(await subscribe(anonymous, unique("anon:room-")))
    assert_refused(await subscribe(alice, unique("locked:room-")))


# --------------------------------------------------------------------------- the handler decides last


async def test_subscribe_fails_with_103_when_handler_refuses_what_options_grant(
    gw: GatewayProcess, clients: Clients
) -> None:
    """``on_subscribe`` runs after the options and may refuse, even a user holding a token."""
    mallory = await clients.user("mallory")
    channel = unique("guarded:room-")
    reply = await subscribe(mallory, channel)
    assert_refused(reply)
    assert reply["error"]["message"] == "mallory is banned"
    assert_refused(await subscribe(mallory, channel, gw.sub_token("mallory", channel)))


async def test_subscribe_returns_handler_data_when_handler_admits(
    gw: GatewayProcess, clients: Clients
) -> None:
    """What ``on_subscribe`` returns is the subscribe result's ``data``; it sees the token's data."""
    alice = await clients.user("alice")
    channel = unique("guarded:room-")
    result = assert_subscribed(await subscribe(alice, channel, gw.sub_token("alice", channel, data={"t": 1})))
    assert result["data"] == {"handler": "guarded", "token_data": {"t": 1}}


async def test_subscribe_succeeds_when_handler_admits_what_options_refuse(clients: Clients) -> None:
    """A handler may admit beyond the options: ``vip`` gets in although ``granted`` is false."""
    vip = await clients.user("vip")
    alice = await clients.user("alice")
    result = assert_subscribed(await subscribe(vip, unique("vip:lounge-")))
    assert result["data"] == {"handler": "vip", "granted": False}
    assert_refused(await subscribe(alice, unique("vip:lounge-")))


# --------------------------------------------------------------------------- publish


async def test_publish_follows_namespace_options_when_handler_is_default(clients: Clients) -> None:
    """``allow_publish_for_subscriber``: refused before subscribing, accepted after."""
    alice = await clients.user("alice")
    channel = unique("open:talk-")
    assert_refused(await alice.call("publish", {"channel": channel, "data": {"n": 1}}))
    assert_subscribed(await subscribe(alice, channel))
    assert "publish" in await alice.call("publish", {"channel": channel, "data": {"n": 1}})


async def test_publish_goes_through_handler_after_options(clients: Clients) -> None:
    """``on_publish`` sees what the options granted and its return value is what is fanned out."""
    alice = await clients.user("alice")
    channel = unique("guarded:talk-")
    assert_refused(await alice.call("publish", {"channel": channel, "data": "early"}))
    assert_subscribed(await subscribe(alice, channel))
    assert "publish" in await alice.call("publish", {"channel": channel, "data": "hello"})
    push = await alice.push()
    assert push["pub"]["data"] == {"checked": "hello"}


async def test_publish_succeeds_when_handler_admits_what_options_refuse(clients: Clients) -> None:
    """In ``vip`` the options allow no publishing; the handler lets user ``vip`` publish anyway."""
    vip = await clients.user("vip")
    alice = await clients.user("alice")
    channel = unique("vip:stage-")
    assert "publish" in await vip.call("publish", {"channel": channel, "data": {"n": 1}})
    assert_refused(await alice.call("publish", {"channel": channel, "data": {"n": 1}}))
