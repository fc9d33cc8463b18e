"""The settings tree: one frozen dataclass per section of the configuration file, with its defaults.

Option names follow Centrifugo's where one exists. How a tree is built from a file and the
environment is ``loading.py``; the rules across keys are ``validation.py``.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SECTIONS",
    "AccountsSettings",
    "ApiSettings",
    "AuthSettings",
    "BrokerSettings",
    "ClientSettings",
    "HttpSettings",
    "NamespaceOptions",
    "NodeSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "default_namespaces",
]


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


SECTIONS: dict[str, type[Any]] = {
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
"""The tables of a configuration file (besides ``[namespaces]``), in the order ``genconfig`` writes them."""
