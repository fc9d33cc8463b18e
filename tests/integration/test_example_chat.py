"""The chat example (``examples/chat``): handlers that keep messages in the app's own MongoDB.

The example runs as a real ``wirehub serve --app`` process on its own configuration, with its
collection on the MongoDB stand-in (or WIREHUB_TEST_MONGODB_URL); centrifuge-python clients post,
edit and delete, and the test reads the collection with PyMongo.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from centrifuge import ReplyError

from tests.conftest import StartGateway
from tests.gateway_process import GatewayProcess
from tests.helpers import unique
from tests.mongo_helpers import raw_client
from tests.sdk import Clients, connect_subscribed, next_event
from wirehub import App

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chat"
APP = "examples.chat.server:app"


async def start_chat(start_gateway: StartGateway, mongo_url: str = "") -> GatewayProcess:
    config = (EXAMPLE / "wirehub.toml").read_text(encoding="utf-8")
    return await start_gateway(
        config=config, app=APP, env={"CHAT_MONGODB_URL": mongo_url} if mongo_url else {}
    )


@pytest.fixture(scope="module")
async def chat_without_database(start_module_gateway: StartGateway) -> GatewayProcess:
    """The example without CHAT_MONGODB_URL, shared by the module's tests of it: each uses rooms
    of its own, and only the test of the room list creates rooms."""
    return await start_chat(start_module_gateway)


@pytest.fixture
async def sdk_clients() -> AsyncIterator[Clients]:
    """centrifuge-python clients for one test, closed when it ends."""
    clients = Clients()
    yield clients
    await clients.close()


async def stored_messages(mongo_url: str) -> list[dict[str, Any]]:
    client = raw_client(mongo_url)
    try:
        return await client.get_default_database()["messages"].find({}, {"_id": 0}).to_list()
    finally:
        await client.close()


async def test_chat_stores_validated_messages_and_fans_them_out(
    start_gateway: StartGateway, mongo_db: str
) -> None:
    """A message is trimmed, given an id, written to the app's collection and received by the room."""
    gateway = await start_chat(start_gateway, mongo_db)
    clients = Clients()
    try:
        _, alice_sub, _ = await connect_subscribed(clients, gateway, "alice", "chat:lobby")
        _, _, bob_events = await connect_subscribed(clients, gateway, "bob", "chat:lobby")

        await alice_sub.publish({"text": "  hello  "})

        message = (await next_event(bob_events.publications)).pub.data
        assert {k: message[k] for k in ("type", "user", "text")} == {
            "type": "message",
            "user": "alice",
            "text": "hello",
        }
        [stored] = await stored_messages(mongo_db)
        assert stored == {**message, "room": "chat:lobby"}
        for bad in ({"text": ""}, {"text": "x" * 2001}, {"text": 5}, {"text": "hi", "extra": 1}, "hi"):
            with pytest.raises(ReplyError) as refused:
                await alice_sub.publish(bad)
            assert refused.value.code == 107
        assert len(await stored_messages(mongo_db)) == 1
    finally:
        await clients.close()


async def test_chat_lets_only_the_author_edit_or_delete(start_gateway: StartGateway, mongo_db: str) -> None:
    """Edit and delete change the collection and reach the room; anyone else gets 103."""
    gateway = await start_chat(start_gateway, mongo_db)
    clients = Clients()
    try:
        alice, alice_sub, _ = await connect_subscribed(clients, gateway, "alice", "chat:edits")
        bob, _, bob_events = await connect_subscribed(clients, gateway, "bob", "chat:edits")
        await alice_sub.publish({"text": "first draft"})
        message_id = (await next_event(bob_events.publications)).pub.data["id"]

        with pytest.raises(ReplyError) as refused:
            await bob.rpc("chat:edit", {"channel": "chat:edits", "id": message_id, "text": "mine now"})
        assert refused.value.code == 103
        with pytest.raises(ReplyError) as missing:
            await alice.rpc("chat:delete", {"channel": "chat:edits", "id": "no-such-id"})
        assert missing.value.code == 104

        await alice.rpc("chat:edit", {"channel": "chat:edits", "id": message_id, "text": "final"})
        assert (await next_event(bob_events.publications)).pub.data == {
            "type": "edit",
            "id": message_id,
            "text": "final",
        }
        [stored] = await stored_messages(mongo_db)
        assert (stored["text"], stored["edited"]) == ("final", True)

        await alice.rpc("chat:delete", {"channel": "chat:edits", "id": message_id})
        assert (await next_event(bob_events.publications)).pub.data == {"type": "delete", "id": message_id}
        assert await stored_messages(mongo_db) == []
    finally:
        await clients.close()


async def test_chat_edits_by_history_when_no_database(chat_without_database: GatewayProcess) -> None:
    """Without CHAT_MONGODB_URL the author is looked up in the gateway's history."""
    channel = f"chat:{unique('plain-')}"
    clients = Clients()
    try:
        alice, alice_sub, _ = await connect_subscribed(clients, chat_without_database, "alice", channel)
        bob, _, bob_events = await connect_subscribed(clients, chat_without_database, "bob", channel)
        await alice_sub.publish({"text": "hello"})
        message_id = (await next_event(bob_events.publications)).pub.data["id"]

        with pytest.raises(ReplyError) as refused:
            await bob.rpc("chat:delete", {"channel": channel, "id": message_id})
        assert refused.value.code == 103
        await alice.rpc("chat:delete", {"channel": channel, "id": message_id})
        assert (await next_event(bob_events.publications)).pub.data == {"type": "delete", "id": message_id}
    finally:
        await clients.close()


async def test_chat_rooms_are_listed_created_once_and_announced(
    chat_without_database: GatewayProcess, sdk_clients: Clients
) -> None:
    """chat:rooms lists lobby and the created rooms; chat:create validates, adds once, announces."""
    alice, _, index_events = await connect_subscribed(
        sdk_clients, chat_without_database, "alice", "rooms:index"
    )
    assert (await alice.rpc("chat:rooms", {})).data == {"rooms": ["lobby"]}
    assert (await alice.rpc("chat:create", {"room": "pancakes"})).data == {"room": "pancakes"}
    assert (await next_event(index_events.publications)).pub.data == {"room": "pancakes", "by": "alice"}
    await alice.rpc("chat:create", {"room": "pancakes"})  # already there: not added twice
    assert (await alice.rpc("chat:rooms", {})).data == {"rooms": ["lobby", "pancakes"]}
    for bad in ({"room": ""}, {"room": "Upper"}, {"room": "x" * 33}, {"room": "a b"}, {"room": 5}, {}):
        with pytest.raises(ReplyError) as refused:
            await alice.rpc("chat:create", bad)
        assert refused.value.code == 107, bad


async def test_typing_notices_are_validated_and_kept_nowhere(
    chat_without_database: GatewayProcess, sdk_clients: Clients
) -> None:
    """typing:<room> takes only {"typing": true}, names the sender, and has no history."""
    channel = f"typing:{unique('room-')}"
    _, alice_sub, _ = await connect_subscribed(sdk_clients, chat_without_database, "alice", channel)
    _, bob_sub, bob_events = await connect_subscribed(sdk_clients, chat_without_database, "bob", channel)
    await alice_sub.publish({"typing": True})
    assert (await next_event(bob_events.publications)).pub.data == {"user": "alice", "name": "alice"}
    for bad in ({"typing": False}, {"typing": True, "text": "x"}, "typing", None):
        with pytest.raises(ReplyError) as refused:
            await alice_sub.publish(bad)
        assert refused.value.code == 107, bad
    with pytest.raises(ReplyError) as no_history:
        await bob_sub.history(limit=10)
    assert no_history.value.code in (103, 108)


async def test_chat_serves_its_page_on_the_http_port(chat_without_database: GatewayProcess) -> None:
    """App(static_dir=...) serves web/ where /auth/* is, whatever the working directory."""
    async with aiohttp.ClientSession() as http, http.get(chat_without_database.http_url + "/") as page:
        assert page.status == 200
        assert '<script type="module" src="app.js"></script>' in await page.text()


def test_app_refuses_a_static_dir_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        App(static_dir=tmp_path / "nowhere")
