"""The log lines an operator reads, from a real ``wirehub serve``: who, from where, and why.

A line is written a moment after the client sees its close: the tests poll the log file for it
under a deadline.
"""

from __future__ import annotations

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import StartGateway
from tests.log_helpers import WAIT_S, json_entry, text_line
from tests.raw_client import RawClient
from wirehub.auth.jwt import issue_token


async def test_json_logs_say_who_connected_from_where_and_why_it_ended(start_gateway: StartGateway) -> None:
    """--log-format json: one object per line; connection end, refusals and subscribes with fields."""
    gateway = await start_gateway(args=["--log-format", "json", "--log-level", "debug"])
    client = await RawClient.open(gateway.ws_url)
    client_id = (await client.connect(gateway.token("alice")))["connect"]["client"]
    await client.call("subscribe", {"channel": "chat:logs"})
    await client.call("unsubscribe", {"channel": "chat:logs"})
    await client.ws.close(4000, "going away")

    expired_token = gateway.token("mallory", ttl_s=-10)
    expired = await RawClient.open(gateway.ws_url)
    assert (await expired.connect(expired_token))["error"]["code"] == 109  # the SDK refreshes
    await expired.close()
    forged_token = issue_token("not-the-secret-" * 3, user="mallory")
    forged = await RawClient.open(gateway.ws_url)
    await forged.send("connect", {"token": forged_token})
    assert (await forged.closed())[0] == 3500

    closed = await json_entry(gateway, "connection closed", client=client_id)
    assert closed["level"] == "INFO"
    assert closed["logger"] == "wirehub.server.connection"
    assert (closed["user"], closed["remote"], closed["code"], closed["reason"]) == (
        "alice",
        "127.0.0.1",
        4000,
        "going away",
    )
    assert closed["closed_by"] == "client"
    assert isinstance(closed["duration_s"], float)
    assert 0 <= closed["duration_s"] < WAIT_S
    assert "forwarded_for" not in closed

    subscribed = await json_entry(gateway, "subscribed", client=client_id)
    assert (subscribed["level"], subscribed["channel"]) == ("DEBUG", "chat:logs")
    assert (await json_entry(gateway, "unsubscribed", client=client_id))["channel"] == "chat:logs"

    refusal = await json_entry(gateway, "connect refused", code=109)
    assert (refusal["level"], refusal["remote"], refusal["reason"]) == ("INFO", "127.0.0.1", "token expired")
    refusal = await json_entry(gateway, "connect refused", code=3500)
    assert refusal["remote"] == "127.0.0.1"
    assert refusal["reason"] == "invalid token: Signature verification failed"
    for token in (expired_token, forged_token):
        assert token.split(".")[2] not in gateway.log()


async def test_text_logs_carry_the_fields_and_the_forwarded_address(start_gateway: StartGateway) -> None:
    """The readable format appends key=value fields; X-Forwarded-For is logged from a trusted proxy."""
    gateway = await start_gateway(env={"WIREHUB_SERVER_TRUSTED_PROXIES": "127.0.0.1/32"})
    client = await RawClient.open(gateway.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.7"})
    client_id = (await client.connect(gateway.token("bob")))["connect"]["client"]
    await client.close()

    line = await text_line(gateway, "connection closed", f"client={client_id}")
    assert " INFO wirehub.server.connection: connection closed " in line
    for field in (
        "user=bob",
        "remote=127.0.0.1",
        "code=1000",
        "closed_by=client",
        "forwarded_for=203.0.113.7",
    ):
        assert field in line.split(), line
    assert "duration_s=" in line


async def test_a_refused_origin_is_logged_with_the_setting_to_change(start_gateway: StartGateway) -> None:
    """A handshake from an origin outside server.allowed_origins: 403 and one INFO line saying why."""
    gateway = await start_gateway(
        args=["--log-format", "json"], env={"WIREHUB_SERVER_ALLOWED_ORIGINS": "https://app.example"}
    )
    with pytest.raises(InvalidStatus) as refused:
        await RawClient.open(gateway.ws_url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    entry = await json_entry(gateway, "connect refused", code=403)
    assert entry["origin"] == "https://evil.example"
    assert "server.allowed_origins" in entry["reason"]


async def test_account_events_name_the_user_and_the_address(start_gateway: StartGateway) -> None:
    """Registrations and failed logins are logged with who and from where, never the password."""
    gateway = await start_gateway(args=["--log-format", "json"])
    password = "correct horse battery staple"
    async with aiohttp.ClientSession() as session:
        credentials = {"username": "carol", "password": password}
        async with session.post(f"{gateway.http_url}/auth/register", json=credentials) as response:
            assert response.status == 201, await response.text()
            user_id = (await response.json())["user"]
        wrong = {"username": "carol", "password": "not it at all, no"}
        async with session.post(f"{gateway.http_url}/auth/login", json=wrong) as response:
            assert response.status == 401
    registered = await json_entry(gateway, "account registered", username="carol")
    assert (registered["user"], registered["remote"]) == (user_id, "127.0.0.1")
    failed = await json_entry(gateway, "login failed", username="carol")
    assert (failed["remote"], failed["reason"]) == ("127.0.0.1", "wrong password")
    assert password not in gateway.log()
