"""Settings: one frozen tree built once from a TOML file and ``WIREHUB_*`` environment variables.

Option names follow Centrifugo's where one exists. Every key of the file can be overridden by
``WIREHUB_<SECTION>_<KEY>`` (``WIREHUB_SERVER_PORT``, ``WIREHUB_NAMESPACES_CHAT_PRESENCE``);
secrets may instead come from a file named by ``WIREHUB_<SECTION>_<KEY>_FILE``. Loading collects
every problem, each naming its key, and raises one ``ConfigError``.
"""

import dataclasses
import ipaddress
import json
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wirehub.errors import ConfigError

NAMESPACE_NAME = re.compile(r"^[-a-zA-Z0-9_]{2,}$")
BROKER_SCHEMES = ("memory://", "redis://", "rediss://", "unix://")
STORE_SCHEMES = ("sqlite:///", "memory://", "mongodb://", "mongodb+srv://")
READ_PREFERENCE_NAMES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")
READ_PREFERENCES = frozenset(name.lower() for name in READ_PREFERENCE_NAMES)
STRINGS = tuple[str, ...]
"""The type of list-valued keys: a TOML array of strings, or a comma-separated environment value."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    ws_path: str = "/connection/websocket"
    shutdown_timeout_s: float = 5.0
    # permessage-deflate costs several times the CPU and memory per connection: off unless asked.
    compression: bool = False
    # Browser origins allowed to open a WebSocket (``*`` globs, case-insensitive). Empty: only
    # handshakes without an Origin header (non-browser clients), as Centrifugo does; others get 403.
    allowed_origins: tuple[str, ...] = ()
    # A client that has not completed the WebSocket handshake by then is dropped.
    handshake_timeout_s: float = 10.0
    # Load balancers or proxies in front of the gateway (addresses or CIDR networks): their
    # X-Forwarded-For names the client (logs, per-address limits), and they are not capped per address.
    trusted_proxies: tuple[str, ...] = ()
    # Open connections (both ports together) of one client address, and of the process; 0 for
    # the total: the open-files limit (raised to its hard limit at start) less a reserve.
    max_connections_per_address: int = 4096
    max_connections: int = 0
    # Listen with SO_REUSEPORT on both ports, so that several processes share them (the kernel
    # spreads new connections); ``serve --workers N`` turns it on for its workers.
    reuse_port: bool = False


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8001
    # A request whose head (then body) has not arrived by then is answered 408 and closed; an idle
    # kept-alive connection is closed after keepalive_timeout_s.
    request_timeout_s: float = 10.0
    keepalive_timeout_s: float = 15.0
    # A second HTTP listener for operators: /metrics and the server API move there (the public
    # port then answers 404 for them), /health and /ready are on both. With ``--workers N``,
    # worker i listens on internal_port + i, so that each can be scraped.
    internal_enabled: bool = False
    internal_host: str = "127.0.0.1"
    internal_port: int = 8002
    # A directory whose files the public port serves to every GET no other route takes (``/``:
    # its index.html), so a web app shares its origin with /auth/*. Relative to the working
    # directory; empty: no files served.
    static_dir: str = ""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """This replica among the others (the server API's ``info`` and ``channels`` ask them all)."""

    # Shown by ``info``; empty: the host name and process id.
    name: str = ""
    # Replicas announce themselves this often; one not heard of for three intervals is gone.
    heartbeat_interval_s: float = 3.0
    # How long ``info`` and ``channels`` wait for the other replicas' answers.
    survey_timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The server API on the HTTP port: ``POST /api/<method>``, for backends (Centrifugo's shape)."""

    # Sent as ``X-API-Key: KEY`` or ``Authorization: apikey KEY``. Empty: the API is off (404).
    key: str = field(default="", repr=False)
    # Serve the API without a key (logs a warning at start): for a private network only.
    insecure: bool = False
    # Larger request bodies are answered with 413 (a batch of 10,000 publishes is about 1 MB).
    max_body_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClientSettings:
    ping_interval_s: int = 25
    pong_timeout_s: float = 8.0
    stale_timeout_s: float = 15.0
    max_message_bytes: int = 65536
    channel_max_length: int = 255
    history_max_publication_limit: int = 300
    recovery_max_publication_limit: int = 300
    write_queue_max_bytes: int = 1_048_576
    # A client whose backlog (queued plus in the socket's buffer) stays above write_queue_max_bytes
    # this long, or grows past four times it, is closed with 3008 (slow); it recovers by offset.
    slow_client_timeout_s: float = 2.0
    allow_anonymous_connect_without_token: bool = False
    # How long after its expiry an unrefreshed connection is closed with 3005 (Centrifugo: 25 s).
    expired_close_delay_s: float = 25.0
    # How long the hub waits for a missing offset before filling the hole from the store.
    reorder_timeout_s: float = 0.05
    # Presence entries expire unless refreshed: a node that dies leaves no ghosts for long.
    presence_ttl_s: float = 60.0
    presence_update_interval_s: float = 25.0
    # Limits (0 disables each). Connections of one user on this replica, beyond which connect
    # closes with 3504; anonymous connections are not counted.
    user_connection_limit: int = 0
    # Channels one connection may be subscribed to: 106 on subscribe, 3505 at connect (Centrifugo: 128).
    channel_limit: int = 128
    # New WebSocket handshakes per second on this replica (token bucket): 503 before the upgrade.
    connection_rate_per_s: float = 500.0
    connection_burst: int = 1000
    # The same per client address (its X-Forwarded-For from a trusted proxy), so that one address
    # cannot take the whole handshake budget. Off by default: behind a proxy that is not among
    # server.trusted_proxies every client shares the proxy's address, and a replica's restart
    # would then reconnect its clients at this rate.
    connection_rate_per_address_per_s: float = 0.0
    connection_burst_per_address: int = 200
    # Commands per second per connection (token bucket): error 111 when empty, close 3013 when the
    # client keeps going until it owes another whole burst.
    command_rate_per_s: float = 200.0
    command_burst: int = 1000
    # Error replies a connection may provoke per max_errors_interval_s before it is closed with 3509.
    max_errors: int = 100
    max_errors_interval_s: float = 60.0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    token_hmac_secret: str = field(default="", repr=False)
    # Key rotation: HMAC tokens signed with the previous secret stay valid while it is set.
    token_hmac_previous_secret: str = field(default="", repr=False)
    token_rsa_public_key: str = ""
    token_ecdsa_public_key: str = ""
    token_ed25519_public_key: str = ""
    # Tokens with a ``kid`` header are checked against this JSON Web Key Set (RSA, EC, Ed25519 keys).
    token_jwks_url: str = ""
    token_jwks_refresh_interval_s: float = 300.0
    # An unknown ``kid`` refetches the set at most this often; in between such tokens fail.
    token_jwks_min_refresh_interval_s: float = 5.0
    # Below the SDKs' 5 s command timeout: a connect waiting on the fetch still gets its answer.
    token_jwks_timeout_s: float = 2.0
    token_audience: str = ""
    token_issuer: str = ""
    # Clock skew tolerated on ``exp`` and ``nbf``.
    token_leeway_s: float = 1.0


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str = field(default="memory://", repr=False)  # may carry a password
    # Several deployments can share one Redis: every key and channel starts with this prefix.
    key_prefix: str = "wirehub"
    # Redis Cluster: channels spread over the shards with sharded pub/sub (SSUBSCRIBE/SPUBLISH).
    cluster: bool = False
    max_connections: int = 64


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str = field(default="sqlite:///wirehub.db", repr=False)  # may carry a password
    # MongoDB: defaults safe for a replica set (acknowledged by a majority, journaled).
    write_concern: str = "majority"
    read_preference: str = "primary"
    # A retried publish with the same idempotency key within this window gets the original offset.
    idempotency_window_s: float = 300.0
    # How often streams whose every publication expired are removed (with what is left of them).
    sweep_interval_s: float = 60.0
    # How long start-up waits for a server store (MongoDB) to answer before giving up with an
    # error; 0 starts at once and answers /ready with 503 until it does.
    start_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class AccountsSettings:
    """The account endpoints on the HTTP port (``/auth/register``, ``/auth/login``...)."""

    enabled: bool = True
    # bcrypt work factor (4..31); each step doubles the time a hash takes.
    bcrypt_cost: int = 12
    # Hashes computed at once (threads); more requests wait, up to bcrypt_max_waiting, then get 503.
    bcrypt_max_concurrency: int = 2
    bcrypt_max_waiting: int = 64
    password_min_length: int = 8
    username_max_length: int = 64
    # Connection tokens from login and refresh; refresh tokens rotate on every use.
    token_ttl_s: int = 900
    refresh_token_ttl_s: int = 2_592_000
    # Login attempts (token buckets: this many per window, refilled evenly; 0 disables). A
    # successful login gives its attempt back. Registrations count against the address too.
    login_attempts_per_username: int = 10
    login_username_window_s: float = 300.0
    login_attempts_per_address: int = 30
    login_address_window_s: float = 60.0
    max_body_bytes: int = 4096


@dataclass(frozen=True, slots=True)
class NamespaceOptions:
    """What clients may do in the channels of one namespace (Centrifugo's option names)."""

    history_size: int = 0
    history_ttl_s: float = 0.0
    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    force_recovery: bool = False
    force_positioning: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_user_limited_channels: bool = False

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl_s > 0


def default_namespaces() -> dict[str, NamespaceOptions]:
    """The out-of-the-box ``chat`` namespace: open to authenticated clients, with everything on."""
    return {
        "chat": NamespaceOptions(
            history_size=100,
            history_ttl_s=86400.0,
            presence=True,
            join_leave=True,
            force_push_join_leave=True,
            force_recovery=True,
            allow_subscribe_for_client=True,
            allow_publish_for_subscriber=True,
            allow_history_for_subscriber=True,
            allow_presence_for_subscriber=True,
        )
    }


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    client: ClientSettings = field(default_factory=ClientSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    accounts: AccountsSettings = field(default_factory=AccountsSettings)
    node: NodeSettings = field(default_factory=NodeSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    channel_defaults: NamespaceOptions = field(default_factory=NamespaceOptions)
    namespaces: Mapping[str, NamespaceOptions] = field(default_factory=default_namespaces)


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "http": HttpSettings,
    "client": ClientSettings,
    "auth": AuthSettings,
    "broker": BrokerSettings,
    "store": StoreSettings,
    "accounts": AccountsSettings,
    "node": NodeSettings,
    "api": ApiSettings,
    "channel_defaults": NamespaceOptions,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from an optional TOML file, then apply ``WIREHUB_*`` overrides.

    The overrides come from ``env``, or from ``os.environ`` when ``env`` is None.

    Without a file the built-in defaults apply, including the ``chat`` namespace; a file that
    has a ``[namespaces]`` table replaces that default with its own namespaces.
    """
    if env is None:
        env = os.environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None

    for key in raw:
        if key not in _SECTIONS and key != "namespaces":
            problems.append(f"{key}: unknown section")

    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table")
            table = {}
        sections[name] = _build(cls, name, table, env or {}, problems)

    namespaces: dict[str, NamespaceOptions] = {}
    ns_tables = raw.get("namespaces")
    if ns_tables is None:
        ns_tables = {name: dataclasses.asdict(opts) for name, opts in default_namespaces().items()}
    if not isinstance(ns_tables, dict):
        problems.append("namespaces: expected a table of tables")
        ns_tables = {}
    for ns_name, table in ns_tables.items():
        key = f"namespaces.{ns_name}"
        if not NAMESPACE_NAME.match(ns_name):
            problems.append(f"{key}: namespace names match {NAMESPACE_NAME.pattern}")
        if not isinstance(table, dict):
            problems.append(f"{key}: expected a table")
            continue
        namespaces[ns_name] = _build(NamespaceOptions, key, table, env or {}, problems)

    settings = Settings(namespaces=namespaces, **sections)
    problems.extend(validate(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def validate(settings: Settings) -> list[str]:
    """Cross-field rules that no single key's type can express."""
    problems: list[str] = []
    c = settings.client
    if not 0 <= settings.server.port < 65536:
        problems.append("server.port: must be between 0 (any free port) and 65535")
    if not 0 <= settings.http.port < 65536:
        problems.append("http.port: must be between 0 (any free port) and 65535")
    if not 0 <= settings.http.internal_port < 65536:
        problems.append("http.internal_port: must be between 0 (any free port) and 65535")
    if settings.http.static_dir and not Path(settings.http.static_dir).is_dir():
        problems.append(f"http.static_dir: {settings.http.static_dir}: not a directory")
    if not settings.server.ws_path.startswith("/"):
        problems.append("server.ws_path: must start with '/'")
    if c.ping_interval_s < 0 or c.pong_timeout_s < 0:
        problems.append("client.ping_interval_s: intervals cannot be negative")
    if c.ping_interval_s and c.pong_timeout_s >= c.ping_interval_s:
        problems.append("client.pong_timeout_s: must be shorter than client.ping_interval_s")
    for key in (
        "stale_timeout_s",
        "max_message_bytes",
        "channel_max_length",
        "history_max_publication_limit",
        "recovery_max_publication_limit",
        "write_queue_max_bytes",
        "slow_client_timeout_s",
    ):
        if getattr(c, key) <= 0:
            problems.append(f"client.{key}: must be positive")
    if not 0 < c.presence_update_interval_s < c.presence_ttl_s:
        problems.append("client.presence_update_interval_s: must be positive and below client.presence_ttl_s")
    if c.max_message_bytes > c.write_queue_max_bytes:
        problems.append("client.write_queue_max_bytes: must be at least client.max_message_bytes")
    if not settings.broker.url.startswith(BROKER_SCHEMES):
        problems.append(f"broker.url: unsupported scheme (expected one of {', '.join(BROKER_SCHEMES)})")
    if settings.broker.cluster and not settings.broker.url.startswith(("redis://", "rediss://")):
        problems.append("broker.cluster: needs a redis:// or rediss:// url")
    if "{" in settings.broker.key_prefix or "}" in settings.broker.key_prefix:
        # Braces would become the Redis Cluster hash tag of every key, putting all on one shard.
        problems.append("broker.key_prefix: must not contain '{' or '}'")
    if settings.broker.max_connections <= 0:
        problems.append("broker.max_connections: must be positive")
    if not settings.store.url.startswith(STORE_SCHEMES):
        problems.append(f"store.url: unsupported scheme (expected one of {', '.join(STORE_SCHEMES)})")
    problems.extend(_validate_store(settings.store))
    problems.extend(_validate_limits(settings))
    problems.extend(_validate_auth(settings.auth))
    problems.extend(_validate_accounts(settings.accounts))
    if settings.node.heartbeat_interval_s <= 0 or settings.node.survey_timeout_s <= 0:
        problems.append(
            "node.heartbeat_interval_s: node.heartbeat_interval_s and survey_timeout_s must be positive"
        )
    if settings.api.max_body_bytes <= 0:
        problems.append("api.max_body_bytes: must be positive")
    if settings.api.key and settings.api.key != settings.api.key.strip():
        problems.append("api.key: must not start or end with spaces")
    everything = {"channel_defaults": settings.channel_defaults} | {
        f"namespaces.{name}": opts for name, opts in settings.namespaces.items()
    }
    for key, opts in everything.items():
        if opts.history_size < 0 or opts.history_ttl_s < 0:
            problems.append(f"{key}.history_size: history_size and history_ttl_s cannot be negative")
        if (opts.history_size > 0) != (opts.history_ttl_s > 0):
            problems.append(f"{key}.history_ttl_s: history needs both history_size and history_ttl_s")
        if (opts.force_recovery or opts.force_positioning) and not opts.history_enabled:
            problems.append(
                f"{key}.force_recovery: recovery and positioning need history_size and history_ttl_s"
            )
        if opts.force_push_join_leave and not opts.join_leave:
            problems.append(f"{key}.force_push_join_leave: needs join_leave")
    return problems


def _validate_limits(settings: Settings) -> list[str]:
    problems: list[str] = []
    c = settings.client
    if any(not origin or origin != origin.strip() for origin in settings.server.allowed_origins):
        problems.append("server.allowed_origins: origins cannot be empty or padded with spaces")
    if settings.server.handshake_timeout_s <= 0:
        problems.append("server.handshake_timeout_s: must be positive")
    for entry in settings.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"server.trusted_proxies: {entry!r} is not an address or a network (CIDR)")
    if settings.server.max_connections_per_address < 0:
        problems.append("server.max_connections_per_address: cannot be negative (0 disables the cap)")
    if settings.server.max_connections < 0:
        problems.append("server.max_connections: cannot be negative (0 follows the open-files limit)")
    for key in ("request_timeout_s", "keepalive_timeout_s"):
        if getattr(settings.http, key) <= 0:
            problems.append(f"http.{key}: must be positive")
    for key in ("user_connection_limit", "channel_limit", "max_errors"):
        if getattr(c, key) < 0:
            problems.append(f"client.{key}: cannot be negative (0 disables the limit)")
    for rate, burst in (
        ("connection_rate_per_s", "connection_burst"),
        ("connection_rate_per_address_per_s", "connection_burst_per_address"),
        ("command_rate_per_s", "command_burst"),
    ):
        if getattr(c, rate) < 0:
            problems.append(f"client.{rate}: cannot be negative (0 disables the limit)")
        elif getattr(c, rate) > 0 and getattr(c, burst) < 1:
            problems.append(f"client.{burst}: must be at least 1 when client.{rate} is set")
    if c.max_errors > 0 and c.max_errors_interval_s <= 0:
        problems.append("client.max_errors_interval_s: must be positive when client.max_errors is set")
    return problems


def _validate_auth(auth: AuthSettings) -> list[str]:
    problems: list[str] = []
    if auth.token_jwks_url and not auth.token_jwks_url.startswith(("http://", "https://")):
        problems.append("auth.token_jwks_url: must be an http:// or https:// URL")
    for key in ("token_jwks_refresh_interval_s", "token_jwks_timeout_s"):
        if getattr(auth, key) <= 0:
            problems.append(f"auth.{key}: must be positive")
    if auth.token_jwks_min_refresh_interval_s < 0:
        problems.append("auth.token_jwks_min_refresh_interval_s: cannot be negative")
    if not 0 <= auth.token_leeway_s <= 300:
        problems.append("auth.token_leeway_s: must be between 0 and 300 seconds")
    if auth.token_hmac_previous_secret and not auth.token_hmac_secret:
        problems.append("auth.token_hmac_previous_secret: needs auth.token_hmac_secret (the new secret)")
    return problems


def _validate_accounts(accounts: AccountsSettings) -> list[str]:
    problems: list[str] = []
    if not 4 <= accounts.bcrypt_cost <= 31:
        problems.append("accounts.bcrypt_cost: must be between 4 and 31")
    if accounts.bcrypt_max_concurrency < 1:
        problems.append("accounts.bcrypt_max_concurrency: must be at least 1")
    if accounts.bcrypt_max_waiting < 0:
        problems.append("accounts.bcrypt_max_waiting: cannot be negative")
    if not 1 <= accounts.password_min_length <= 72:
        # bcrypt reads at most 72 bytes, the longest password accepted.
        problems.append("accounts.password_min_length: must be between 1 and 72")
    if accounts.username_max_length < 1:
        problems.append("accounts.username_max_length: must be positive")
    for key in ("token_ttl_s", "refresh_token_ttl_s", "max_body_bytes"):
        if getattr(accounts, key) <= 0:
            problems.append(f"accounts.{key}: must be positive")
    for attempts, window in (
        ("login_attempts_per_username", "login_username_window_s"),
        ("login_attempts_per_address", "login_address_window_s"),
    ):
        if getattr(accounts, attempts) < 0:
            problems.append(f"accounts.{attempts}: cannot be negative (0 disables the limit)")
        elif getattr(accounts, attempts) > 0 and getattr(accounts, window) <= 0:
            problems.append(f"accounts.{window}: must be positive when accounts.{attempts} is set")
    return problems


def _validate_store(store: StoreSettings) -> list[str]:
    """MongoDB's write concern and read preference (SQLite ignores them), and the idempotency window."""
    problems: list[str] = []
    wc = store.write_concern
    if not wc or wc.strip() != wc or (wc.lstrip("-").isdigit() and int(wc) < 1):
        problems.append(
            "store.write_concern: 'majority', a number of members (1 or more) or a replica set tag name"
        )
    if store.read_preference.lower() not in READ_PREFERENCES:
        problems.append(f"store.read_preference: one of {', '.join(READ_PREFERENCE_NAMES)}")
    if store.idempotency_window_s < 0:
        problems.append("store.idempotency_window_s: cannot be negative")
    if store.sweep_interval_s <= 0:
        problems.append("store.sweep_interval_s: must be positive")
    if store.start_timeout_s < 0:
        problems.append("store.start_timeout_s: cannot be negative")
    return problems


def redacted_url(url: str) -> str:
    """``url`` with the password of its userinfo (``scheme://user:password@host``) masked."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)[^@/]*@", r"\1***@", url, flags=re.IGNORECASE)


def _env_name(full_key: str) -> str:
    return "WIREHUB_" + re.sub(r"[^A-Za-z0-9]", "_", full_key).upper()


def unknown_env_keys(env: Mapping[str, str]) -> list[str]:
    """The ``WIREHUB_*`` variables in ``env`` that name no setting (a typo is otherwise silent)."""
    known = {
        _env_name(f"{section}.{f.name}")
        for section, cls in _SECTIONS.items()
        for f in dataclasses.fields(cls)
    }
    namespace_keys = tuple("_" + f.name.upper() for f in dataclasses.fields(NamespaceOptions))
    unknown = []
    for name in env:
        if not name.startswith("WIREHUB_"):
            continue
        base = name.removesuffix("_FILE")
        if base in known or (base.startswith("WIREHUB_NAMESPACES_") and base.endswith(namespace_keys)):
            continue
        unknown.append(name)
    return sorted(unknown)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def default_config_toml() -> str:
    """A configuration file with every setting, commented out at its default (``genconfig``)."""
    defaults = Settings()
    lines = [
        "# wirehub configuration: every setting at its default, commented out.",
        "# Uncomment what you change. Each key can also be set from the environment as",
        "# WIREHUB_<SECTION>_<KEY> (e.g. WIREHUB_SERVER_PORT), or read from a file named by",
        "# WIREHUB_<SECTION>_<KEY>_FILE. `wirehub check --config FILE` validates a file.",
    ]
    for section in _SECTIONS:
        lines += ["", f"[{section}]"]
        for f in dataclasses.fields(_SECTIONS[section]):
            lines.append(f"# {f.name} = {_toml_value(getattr(getattr(defaults, section), f.name))}")
    lines += ["", "# The built-in namespaces: a file with a [namespaces] table has only its own."]
    for name, options in defaults.namespaces.items():
        lines += ["", f"[namespaces.{name}]"]
        for f in dataclasses.fields(options):
            lines.append(f"{f.name} = {_toml_value(getattr(options, f.name))}")
    return "\n".join(lines) + "\n"


def _build(
    cls: type[Any], section: str, table: Mapping[str, Any], env: Mapping[str, str], problems: list[str]
) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in known:
            problems.append(f"{section}.{key}: unknown key")
    for f in dataclasses.fields(cls):
        full_key = f"{section}.{f.name}"
        env_name = _env_name(full_key)
        kind = hints[f.name]
        if env_name in env:
            value: Any = _from_env(env[env_name], kind, full_key, problems)
        elif env_name + "_FILE" in env:
            value = _read_secret_file(env[env_name + "_FILE"], full_key, problems)
            if value is not None and kind is not str:
                # A file may hold any key's value; it reads like the environment form.
                value = _from_env(value, kind, full_key, problems)
        elif f.name in table:
            value = _check_type(table[f.name], kind, full_key, problems)
        else:
            continue
        if value is not None:
            values[f.name] = value
    return cls(**values)


def _check_type(value: Any, kind: Any, key: str, problems: list[str]) -> Any:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == STRINGS:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        problems.append(f"{key}: expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
        return None
    return value


def _from_env(text: str, kind: Any, key: str, problems: list[str]) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(text)
            return lowered in _TRUE
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind == STRINGS:
            return tuple(item.strip() for item in text.split(",") if item.strip())
    except ValueError:
        problems.append(f"{key}: expected {_kind_name(kind)} from the environment, got {text!r}")
        return None
    return text


def _read_secret_file(path: str, key: str, problems: list[str]) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{key}: cannot read {path}: {exc.strerror}")
        return None


def _kind_name(kind: Any) -> str:
    if kind == STRINGS:
        return "a list of strings"
    return {bool: "a boolean", int: "an integer", float: "a number"}.get(kind, "a string")
