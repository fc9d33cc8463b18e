"""The account endpoints of a real ``wirehub serve`` process, over real HTTP (aiohttp client),
with the real centrifuge-python SDK connecting on the tokens they hand out.

bcrypt runs at cost 4 here (the default of 12 is checked in ``tests/unit/test_accounts.py``).
Tests on the out-of-the-box account settings share the module's gateway, each with usernames of
its own; tests of other settings, limits spanning replicas and MongoDB start gateways of their own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from centrifuge import SubscriptionState

from tests.cli_helpers import AUTH_ENV, cli_token
from tests.conftest import StartGateway
from tests.gateway_process import SECRET, GatewayProcess
from tests.helpers import unique
from tests.sdk import ClientEvents, Clients, SubEvents, next_event, subscribed

CONFIG = """
[accounts]
bcrypt_cost = 4
login_attempts_per_username = 3
login_username_window_s = 600
login_attempts_per_address = 100
login_address_window_s = 600
"""

VAULT_CONFIG = (
    CONFIG
    + """
[namespaces.chat]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true

[namespaces.vault]
"""
)

PASSWORD = "correct horse battery"


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def error_code(self) -> str:
        assert isinstance(self.body, dict), self.body
        code: str = self.body["error"]["code"]
        return code


@dataclass
class Api:
    http: aiohttp.ClientSession
    gateway: GatewayProcess

    async def post(
        self,
        path: str,
        json_body: Any = None,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        url = self.gateway.http_url + path
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if data is not None:
            kwargs["data"] = data
        else:
            kwargs["json"] = json_body
        async with asyncio.timeout(10), self.http.post(url, **kwargs) as response:
            text = await response.text()
            body = json.loads(text) if response.content_type == "application/json" else text
            return Reply(response.status, body, response.headers)

    async def register(self, username: str, password: str = PASSWORD) -> Reply:
        return await self.post("/auth/register", {"username": username, "password": password})

    async def login(self, username: str, password: str = PASSWORD) -> Reply:
        return await self.post("/auth/login", {"username": username, "password": password})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


@pytest.fixture(scope="module")
async def accounts_gateway(start_module_gateway: StartGateway) -> GatewayProcess:
    """The module's gateway on ``CONFIG``. Its tests' registrations and failed logins all come
    from 127.0.0.1: some 30 of the 100 attempts per address that ``CONFIG`` allows."""
    return await start_module_gateway(config=CONFIG)


@pytest.fixture(scope="module")
async def vault_gateway(start_module_gateway: StartGateway) -> GatewayProcess:
    """The module's gateway on ``VAULT_CONFIG`` with the subscription-token handler of account_rules."""
    return await start_module_gateway(config=VAULT_CONFIG, app="tests.apps.account_rules:app")


@pytest.fixture
def api(accounts_gateway: GatewayProcess, http: aiohttp.ClientSession) -> Api:
    return Api(http, accounts_gateway)


# --------------------------------------------------------------------------- happy paths


async def test_register_returns_session_whose_token_the_sdk_connects_with(api: Api) -> None:
    """Registering answers 201 with a token the SDK connects on; publications carry the account id."""
    reply = await api.register("alice")

    assert reply.status == 201
    assert set(reply.body) >= {"token", "expires_at", "refresh_token", "user"}
    assert reply.headers["Cache-Control"] == "no-store"
    clients = Clients()
    try:
        client = clients.new(api.gateway.ws_url, reply.body["token"])
        events = SubEvents()
        sub = client.new_subscription("chat:lobby", events=events)
        await client.connect()
        await subscribed(sub, events)
        await sub.publish({"text": "hi"})
        pub = (await next_event(events.publications)).pub
        assert pub.info is not None
        assert pub.info.user == reply.body["user"]
        assert pub.info.conn_info == {"username": "alice"}
    finally:
        await clients.close()


async def test_login_returns_token_the_sdk_connects_with_when_password_right(api: Api) -> None:
    """Logging in with another case of the username answers 200 with a token the SDK accepts."""
    registered = await api.register("Bob")

    reply = await api.login("bob")

    assert reply.status == 200
    assert reply.body["user"] == registered.body["user"]
    assert reply.body["refresh_token"] != registered.body["refresh_token"]
    clients = Clients()
    try:
        events = ClientEvents()
        client = clients.new(api.gateway.ws_url, reply.body["token"], events=events)
        await client.connect()
        connected = await next_event(events.connected)
        assert connected.client
    finally:
        await clients.close()


async def test_login_and_cli_tokens_both_connect_when_gateway_checks_audience_and_issuer(
    start_gateway: StartGateway, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Login tokens carry the configured aud and iss like ``wirehub token``'s; the SDK connects on both."""
    api = Api(http, await start_gateway(config=CONFIG, env=AUTH_ENV))
    login = await api.register("carol")
    cli = await cli_token(tmp_path, "--user", "cli-user", env=AUTH_ENV)

    claims = jwt.decode(login.body["token"], SECRET, algorithms=["HS256"], audience="chat-app")
    assert claims["iss"] == "https://auth.example"
    assert claims["sub"] == login.body["user"]
    clients = Clients()
    try:
        for token in (login.body["token"], cli):
            events = ClientEvents()
            await clients.new(api.gateway.ws_url, token, events=events).connect()
            await next_event(events.connected)
    finally:
        await clients.close()


# --------------------------------------------------------------------------- no enumeration


async def test_login_answers_identically_when_user_unknown_or_password_wrong(api: Api) -> None:
    """Unknown username and wrong password get the same 401 body: nothing tells them apart."""
    await api.register("dave")

    unknown = await api.login("nobody-here")
    wrong = await api.login("dave", "not the password")

    assert unknown.status == wrong.status == 401
    assert unknown.body == wrong.body
    assert unknown.body == {
        "error": {"code": "invalid_credentials", "message": "invalid username or password"}
    }


# --------------------------------------------------------------------------- hostile requests


@pytest.mark.parametrize(
    "username",
    [{"$ne": None}, ["alice"], {"username": "alice"}, 42, None, True],
    ids=["operator-object", "array", "nested-object", "number", "null", "bool"],
)
async def test_login_answers_400_when_username_not_a_string(api: Api, username: Any) -> None:
    """A username that is a JSON object, array or other non-string is a 400, never a lookup."""
    assert (await api.register(unique("erin"))).status == 201

    reply = await api.post("/auth/login", {"username": username, "password": PASSWORD})

    assert reply.status == 400
    assert reply.body == {"error": {"code": "bad_request", "message": "username must be a string"}}


@pytest.mark.parametrize("body", [[], "text", 1, None], ids=["array", "string", "number", "null"])
async def test_login_answers_400_when_body_not_an_object(api: Api, body: Any) -> None:
    """A JSON body that is not an object is a 400."""
    raw = json.dumps(body).encode()

    reply = await api.post("/auth/login", data=raw, headers={"Content-Type": "application/json"})

    assert reply.status == 400
    assert reply.error_code == "bad_request"


@pytest.mark.parametrize(
    "raw",
    [b"{", b"\xff\xfe{}", b"[" * 2000 + b"]" * 2000, b""],
    ids=["truncated", "bad-utf8", "deep", "empty"],
)
async def test_login_answers_400_when_body_not_json(api: Api, raw: bytes) -> None:
    """Malformed JSON, invalid UTF-8, deep nesting and an empty body are 400s."""
    reply = await api.post("/auth/login", data=raw, headers={"Content-Type": "application/json"})

    assert reply.status == 400
    assert reply.error_code == "bad_request"


async def test_login_answers_413_when_body_too_large(api: Api) -> None:
    """A body above accounts.max_body_bytes (4096) is refused with 413, announced or chunked."""
    big = b'{"username": "x", "password": "' + b"a" * 8192 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 512):
            yield big[i : i + 512]

    announced = await api.post("/auth/login", data=big, headers={"Content-Type": "application/json"})
    url = api.gateway.http_url + "/auth/login"
    headers = {"Content-Type": "application/json"}
    async with api.http.post(url, data=chunks(), headers=headers) as response:
        chunked_status = response.status
        chunked_body = await response.json()

    assert announced.status == 413
    assert announced.error_code == "body_too_large"
    assert chunked_status == 413
    assert chunked_body["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", ""]
)
async def test_login_answers_415_when_content_type_not_json(api: Api, content_type: str) -> None:
    """Anything but application/json is a 415, even when the body is valid JSON."""
    headers = {"Content-Type": content_type} if content_type else {}

    reply = await api.post("/auth/login", data=b'{"username": "a", "password": "b"}', headers=headers)

    assert reply.status == 415
    assert reply.error_code == "unsupported_media_type"


async def test_register_answers_422_when_policy_refuses(api: Api) -> None:
    """Short passwords, the username as password, and unfit usernames are 422s naming the rule family."""
    short = await api.register("frank", "short")
    same = await api.register("frank", "FRANK")
    spaced = await api.register("frank smith")
    empty = await api.register("")

    assert [r.status for r in (short, same, spaced, empty)] == [422] * 4
    assert [r.error_code for r in (short, same, spaced, empty)] == [
        "weak_password",
        "weak_password",
        "invalid_username",
        "invalid_username",
    ]
    assert (await api.login("frank", "short")).status == 401  # nothing was created


async def test_register_answers_409_when_username_taken_in_any_case(api: Api) -> None:
    """A second registration of a username, in another case, is a 409; the first password still works."""
    await api.register("grace")

    taken = await api.register("GRACE", "another password")

    assert taken.status == 409
    assert taken.error_code == "username_taken"
    assert (await api.login("grace")).status == 200


# --------------------------------------------------------------------------- limits


async def test_login_answers_429_with_retry_after_when_username_attempts_exhausted(api: Api) -> None:
    """Three wrong passwords exhaust the username: the fourth try, right password or not, is a 429."""
    await api.register("heidi")
    for _ in range(3):
        assert (await api.login("heidi", "guess")).status == 401

    limited = await api.login("HEIDI")
    other_user = await api.login("ivan-unknown", "guess")

    assert limited.status == 429
    assert limited.error_code == "too_many_requests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 600
    assert other_user.status == 401


async def test_login_answers_429_when_address_attempts_exhausted(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """Brute force over many usernames from one address hits the per-address limit."""
    config = CONFIG.replace("login_attempts_per_address = 100", "login_attempts_per_address = 4")
    api = Api(http, await start_gateway(config=config))

    statuses = [(await api.login(f"user{n}", "guess")).status for n in range(6)]

    assert statuses == [401, 401, 401, 401, 429, 429]


async def test_login_limits_are_shared_when_replicas_use_redis(
    start_gateway: StartGateway, http: aiohttp.ClientSession, redis_url: str, unique_name: str
) -> None:
    """Two replicas on one Redis count a username's attempts together."""
    env = {"WIREHUB_BROKER_URL": redis_url, "WIREHUB_BROKER_KEY_PREFIX": unique_name}
    first = Api(http, await start_gateway(config=CONFIG, env=env))
    second = Api(http, await start_gateway(config=CONFIG, env=env))

    statuses = [
        (await first.login("judy", "guess")).status,
        (await second.login("judy", "guess")).status,
        (await first.login("judy", "guess")).status,
        (await second.login("judy", "guess")).status,
    ]

    assert statuses == [401, 401, 401, 429]


# --------------------------------------------------------------------------- refresh and logout


async def test_refresh_rotates_tokens_and_returns_working_session(api: Api) -> None:
    """A refresh answers a new token pair; the new connection token connects the SDK."""
    login = await api.register("karl")

    refreshed = await api.post("/auth/refresh", {"refresh_token": login.body["refresh_token"]})

    assert refreshed.status == 200
    assert refreshed.body["refresh_token"] != login.body["refresh_token"]
    assert refreshed.body["user"] == login.body["user"]
    clients = Clients()
    try:
        events = ClientEvents()
        await clients.new(api.gateway.ws_url, refreshed.body["token"], events=events).connect()
        await next_event(events.connected)
    finally:
        await clients.close()


async def test_refresh_revokes_whole_family_when_used_token_replayed(api: Api) -> None:
    """Replaying a used refresh token fails, and so does the newest token of that family."""
    login = await api.register("lena")
    first = login.body["refresh_token"]
    second = (await api.post("/auth/refresh", {"refresh_token": first})).body["refresh_token"]

    replay = await api.post("/auth/refresh", {"refresh_token": first})
    successor = await api.post("/auth/refresh", {"refresh_token": second})
    other_session = await api.login("lena")
    other_refresh = await api.post("/auth/refresh", {"refresh_token": other_session.body["refresh_token"]})

    assert replay.status == successor.status == 401
    assert replay.error_code == successor.error_code == "invalid_refresh_token"
    assert other_refresh.status == 200  # another login's family is untouched


async def test_logout_revokes_refresh_token(api: Api) -> None:
    """After logout the refresh token no longer works; logout answers 204, also for unknown tokens."""
    login = await api.register("mike")

    logout = await api.post("/auth/logout", {"refresh_token": login.body["refresh_token"]})
    unknown = await api.post("/auth/logout", {"refresh_token": "never-issued"})
    refresh = await api.post("/auth/refresh", {"refresh_token": login.body["refresh_token"]})

    assert logout.status == unknown.status == 204
    assert refresh.status == 401


@pytest.mark.parametrize(
    "token", [{"a": 1}, ["x"], 5, "", "x" * 1000], ids=["object", "array", "number", "empty", "huge"]
)
async def test_refresh_refuses_token_when_malformed(api: Api, token: Any) -> None:
    """Non-string refresh tokens are 400s; empty or oversized strings are invalid (401)."""
    reply = await api.post("/auth/refresh", {"refresh_token": token})

    assert reply.status == (401 if isinstance(token, str) else 400)


# --------------------------------------------------------------------------- subscription tokens


async def test_subscription_token_lets_sdk_join_private_channel_when_handler_allows(
    vault_gateway: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """The SDK's get_token fetches a subscription token for $vault:plans; the handler admits boss."""
    api = Api(http, vault_gateway)
    token = (await api.register("boss")).body["token"]

    async def fetch_token(channel: str) -> str:
        reply = await api.post(
            "/auth/subscription-token", {"channel": channel}, headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status == 200, reply.body
        sub_token: str = reply.body["token"]
        return sub_token

    clients = Clients()
    try:
        client = clients.new(api.gateway.ws_url, token)
        events = SubEvents()
        sub = client.new_subscription("$vault:plans", events=events, get_token=fetch_token)
        await client.connect()
        ctx = await subscribed(sub, events)
        assert sub.state == SubscriptionState.SUBSCRIBED
        assert ctx.data == {"welcome": "boss"}
    finally:
        await clients.close()


async def test_subscription_token_answers_403_when_handler_refuses(
    vault_gateway: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    """Another user gets 403 with the handler's message, for $ and plain vault channels alike."""
    api = Api(http, vault_gateway)
    token = (await api.register("intern")).body["token"]
    bearer = {"Authorization": f"Bearer {token}"}

    private = await api.post("/auth/subscription-token", {"channel": "$vault:plans"}, headers=bearer)
    plain = await api.post("/auth/subscription-token", {"channel": "vault:plans"}, headers=bearer)
    chat = await api.post("/auth/subscription-token", {"channel": "chat:lobby"}, headers=bearer)

    assert private.status == plain.status == 403
    assert private.body == {"error": {"code": "forbidden", "message": "bosses only"}}
    assert chat.status == 200  # the default handler follows the chat options


async def test_subscription_token_refuses_private_channel_when_default_handler(api: Api) -> None:
    """Without a handler of its own, a $ channel gets no subscription token."""
    token = (await api.register("nina")).body["token"]

    reply = await api.post(
        "/auth/subscription-token", {"channel": "$chat:secret"}, headers={"Authorization": f"Bearer {token}"}
    )

    assert reply.status == 403


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt"],
    ids=["missing", "empty-bearer", "basic", "garbage"],
)
async def test_subscription_token_answers_401_when_bearer_missing_or_invalid(
    api: Api, authorization: str
) -> None:
    """Without a valid connection token the endpoint answers 401 with WWW-Authenticate."""
    headers = {"Authorization": authorization} if authorization else {}

    reply = await api.post("/auth/subscription-token", {"channel": "chat:lobby"}, headers=headers)

    assert reply.status == 401
    assert reply.error_code == "invalid_token"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


async def test_subscription_token_answers_401_token_expired_when_bearer_expired(api: Api) -> None:
    """An expired connection token is told apart (token_expired) so the client refreshes first."""
    expired = api.gateway.token("olga", ttl_s=-60)

    reply = await api.post(
        "/auth/subscription-token", {"channel": "chat:lobby"}, headers={"Authorization": f"Bearer {expired}"}
    )

    assert reply.status == 401
    assert reply.error_code == "token_expired"


async def test_subscription_token_answers_422_when_namespace_unknown(api: Api) -> None:
    """A channel in an undefined namespace is a 422."""
    token = api.gateway.token("paul")

    reply = await api.post(
        "/auth/subscription-token", {"channel": "nowhere:x"}, headers={"Authorization": f"Bearer {token}"}
    )

    assert reply.status == 422
    assert reply.error_code == "unknown_channel"


async def test_accounts_endpoints_absent_when_disabled(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """With accounts.enabled = false the /auth routes do not exist (404)."""
    api = Api(http, await start_gateway(config=CONFIG.replace("[accounts]", "[accounts]\nenabled = false")))

    reply = await api.login("anyone")

    assert reply.status == 404


# --------------------------------------------------------------------------- MongoDB


async def test_accounts_shared_when_replicas_use_one_mongodb(
    start_gateway: StartGateway, http: aiohttp.ClientSession, mongo_db: str
) -> None:
    """Register on one replica, log in and rotate on another: accounts and refresh tokens live in MongoDB."""
    env = {"WIREHUB_STORE_URL": mongo_db}
    first = Api(http, await start_gateway(config=CONFIG, env=env))
    second = Api(http, await start_gateway(config=CONFIG, env=env))

    registered = await first.register("quinn")
    login = await second.login("QUINN")
    rotated = await second.post("/auth/refresh", {"refresh_token": login.body["refresh_token"]})
    replay = await first.post("/auth/refresh", {"refresh_token": login.body["refresh_token"]})
    successor = await first.post("/auth/refresh", {"refresh_token": rotated.body["refresh_token"]})

    assert (registered.status, login.status, rotated.status) == (201, 200, 200)
    assert login.body["user"] == registered.body["user"]
    assert (replay.status, successor.status) == (401, 401)
