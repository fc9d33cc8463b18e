"""Unit tests for ``wirehub.channels.router`` and the default handlers of ``wirehub.channels.handler``."""

from __future__ import annotations

import pytest

from wirehub.channels.context import Context
from wirehub.channels.handler import ChannelHandler, ConnectionHandler
from wirehub.channels.router import Router
from wirehub.errors import DisconnectNotAvailable, Forbidden, MethodNotFound, NotAvailable
from wirehub.types import JSON, User


@pytest.fixture
def router() -> Router:
    return Router()


def make_ctx(*, granted: bool, channel: str = "chat:room", user_id: str = "42") -> Context:
    return Context(user=User(id=user_id), client="client-1", channel=channel, granted=granted)


# --------------------------------------------------------------------------- router


def test_router_routes_registered_namespace_to_its_handler(router: Router) -> None:
    """A namespace registered with ``@router.namespace`` gets an instance of that handler."""

    @router.namespace("chat")
    class ChatHandler(ChannelHandler):
        pass

    assert isinstance(router.handler_for("chat"), ChatHandler)
    assert router.has_handler("chat")


def test_router_routes_unregistered_namespace_to_default_handler(router: Router) -> None:
    """Namespaces without their own handler get a plain ChannelHandler."""

    @router.namespace("chat")
    class ChatHandler(ChannelHandler):
        pass

    handler = router.handler_for("news")

    assert type(handler) is ChannelHandler
    assert not router.has_handler("news")
    assert type(router.handler_for("")) is ChannelHandler


def test_router_routes_empty_namespace_when_registered(router: Router) -> None:
    """``@router.namespace("")`` handles channels without a namespace."""

    @router.namespace("")
    class TopLevelHandler(ChannelHandler):
        pass

    assert isinstance(router.handler_for(""), TopLevelHandler)
    assert type(router.handler_for("chat")) is ChannelHandler


def test_router_keeps_one_handler_instance_per_namespace(router: Router) -> None:
    """The same handler instance serves every lookup of a namespace."""

    @router.namespace("chat")
    class ChatHandler(ChannelHandler):
        pass

    assert router.handler_for("chat") is router.handler_for("chat")


def test_router_namespace_decorator_returns_class_unchanged(router: Router) -> None:
    """The decorator gives back the decorated class itself."""

    class ChatHandler(ChannelHandler):
        pass

    assert router.namespace("chat")(ChatHandler) is ChatHandler


def test_router_lists_registered_namespaces(router: Router) -> None:
    """``namespaces`` is the set of namespaces with a handler of their own."""

    class A(ChannelHandler):
        pass

    class B(ChannelHandler):
        pass

    assert router.namespaces == frozenset()
    router.namespace("chat")(A)
    router.namespace("news")(B)

    assert router.namespaces == frozenset({"chat", "news"})


def test_router_raises_when_namespace_registered_twice(router: Router) -> None:
    """Registering a second handler for a namespace fails and keeps the first one."""

    @router.namespace("chat")
    class First(ChannelHandler):
        pass

    class Second(ChannelHandler):
        pass

    with pytest.raises(ValueError, match="chat"):
        router.namespace("chat")(Second)

    assert isinstance(router.handler_for("chat"), First)


def test_router_uses_default_connection_handler_when_none_registered(router: Router) -> None:
    """Without ``@router.connection`` the connection handler is a plain ConnectionHandler."""
    assert type(router.connection_handler) is ConnectionHandler


def test_router_uses_registered_connection_handler(router: Router) -> None:
    """``@router.connection`` installs an instance of the decorated class."""

    @router.connection
    class MyConnection(ConnectionHandler):
        pass

    assert isinstance(router.connection_handler, MyConnection)


# --------------------------------------------------------------------------- default ChannelHandler


async def test_channel_handler_on_subscribe_raises_forbidden_when_not_granted() -> None:
    """The default subscribe check refuses with 103 when the rules did not grant access."""
    with pytest.raises(Forbidden) as excinfo:
        await ChannelHandler().on_subscribe(make_ctx(granted=False))

    assert excinfo.value.code == 103


async def test_channel_handler_on_subscribe_returns_none_when_granted() -> None:
    """The default subscribe check admits a granted request and sends no data."""
    assert await ChannelHandler().on_subscribe(make_ctx(granted=True)) is None


async def test_channel_handler_on_publish_raises_forbidden_when_not_granted() -> None:
    """The default publish check refuses with 103 when the rules did not grant access."""
    with pytest.raises(Forbidden):
        await ChannelHandler().on_publish(make_ctx(granted=False), {"text": "hi"})


async def test_channel_handler_on_publish_returns_data_unchanged_when_granted() -> None:
    """A granted publication is stored and fanned out as the client sent it."""
    data: JSON = {"text": "hi", "n": [1, 2.5, None, True]}

    result = await ChannelHandler().on_publish(make_ctx(granted=True), data)

    assert result is data
    assert result == {"text": "hi", "n": [1, 2.5, None, True]}


async def test_channel_handler_on_history_raises_forbidden_when_not_granted() -> None:
    """The default history check refuses with 103 when the rules did not grant access."""
    with pytest.raises(Forbidden):
        await ChannelHandler().on_history(make_ctx(granted=False))


async def test_channel_handler_on_history_returns_none_when_granted() -> None:
    """The default history check admits a granted request."""
    await ChannelHandler().on_history(make_ctx(granted=True))


async def test_channel_handler_on_presence_raises_forbidden_when_not_granted() -> None:
    """The default presence check refuses with 103 when the rules did not grant access."""
    with pytest.raises(Forbidden):
        await ChannelHandler().on_presence(make_ctx(granted=False))


async def test_channel_handler_on_presence_returns_none_when_granted() -> None:
    """The default presence check admits a granted request."""
    await ChannelHandler().on_presence(make_ctx(granted=True))


@pytest.mark.parametrize("granted", [True, False])
async def test_channel_handler_on_rpc_raises_method_not_found(granted: bool) -> None:
    """The default namespace RPC answers 104 whatever the grant."""
    with pytest.raises(MethodNotFound) as excinfo:
        await ChannelHandler().on_rpc(make_ctx(granted=granted), "chat:ping", {})

    assert excinfo.value.code == 104


async def test_channel_handler_on_unsubscribe_does_nothing() -> None:
    """The default unsubscribe hook accepts the call and does nothing."""
    await ChannelHandler().on_unsubscribe(make_ctx(granted=False))


async def test_channel_handler_subclass_overrides_default_verdict(router: Router) -> None:
    """A custom handler may admit a request the declarative rules did not grant."""

    @router.namespace("open")
    class OpenHandler(ChannelHandler):
        async def on_subscribe(self, ctx: Context) -> JSON | None:
            return {"welcome": ctx.user.id}

    handler = router.handler_for("open")
    result = await handler.on_subscribe(make_ctx(granted=False, channel="open:x", user_id="7"))

    assert result == {"welcome": "7"}


async def test_channel_handler_on_subscribe_raises_forbidden_when_anonymous_not_granted() -> None:
    """Anonymous users are refused like anyone else when not granted."""
    ctx = make_ctx(granted=False, user_id="")

    assert ctx.user.anonymous
    with pytest.raises(Forbidden):
        await ChannelHandler().on_subscribe(ctx)


# --------------------------------------------------------------------------- default ConnectionHandler


async def test_connection_handler_on_connect_returns_none() -> None:
    """The default connect hook admits the connection and sends no data."""
    assert await ConnectionHandler().on_connect(make_ctx(granted=False, channel="")) is None


async def test_connection_handler_on_disconnect_does_nothing() -> None:
    """The default disconnect hook accepts the call and does nothing."""
    await ConnectionHandler().on_disconnect(make_ctx(granted=False, channel=""))


async def test_connection_handler_on_rpc_raises_not_available() -> None:
    """RPCs outside any namespace answer 108 unless a handler is registered."""
    with pytest.raises(NotAvailable) as excinfo:
        await ConnectionHandler().on_rpc(make_ctx(granted=True, channel=""), "ping", {"x": 1})

    assert excinfo.value.code == 108


async def test_connection_handler_on_send_raises_disconnect_not_available() -> None:
    """``send`` without a handler closes the connection with 3508, no reconnect."""
    with pytest.raises(DisconnectNotAvailable) as excinfo:
        await ConnectionHandler().on_send(make_ctx(granted=True, channel=""), {"x": 1})

    assert excinfo.value.code == 3508
    assert excinfo.value.close.reconnect is False
