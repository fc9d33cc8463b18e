"""The rules across keys that no single key's type can express.

Each problem names its key first (``client.channel_limit: cannot be negative ...``), so that an
operator finds it in the file or the environment.
"""

import ipaddress
from collections.abc import Iterable
from pathlib import Path

from wirehub.config.settings import AccountsSettings, AuthSettings, Settings, StoreSettings
from wirehub.config.urls import BROKER_SCHEMES, STORE_SCHEMES

__all__ = ["READ_PREFERENCE_NAMES", "validate"]

READ_PREFERENCE_NAMES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")
_READ_PREFERENCES = frozenset(name.lower() for name in READ_PREFERENCE_NAMES)
_DISABLES = "0 disables the limit"


class _Problems(list[str]):
    """The problems found so far, with the checks most keys share."""

    def positive(self, section: str, values: object, *keys: str) -> None:
        for key in keys:
            if getattr(values, key) <= 0:
                self.append(f"{section}.{key}: must be positive")

    def not_negative(self, section: str, values: object, *keys: str, zero: str = "") -> None:
        """``zero`` says what 0 means, when it means something (it disables the limit...)."""
        for key in keys:
            if getattr(values, key) < 0:
                self.append(f"{section}.{key}: cannot be negative" + (f" ({zero})" if zero else ""))

    def port(self, key: str, port: int) -> None:
        if not 0 <= port < 65536:
            self.append(f"{key}: must be between 0 (any free port) and 65535")

    def switched_limits(
        self, section: str, values: object, pairs: Iterable[tuple[str, str]], need: str
    ) -> None:
        """Limits that 0 turns off, each with a companion key that must be set (``need``) when it is on."""
        for limit, companion in pairs:
            if getattr(values, limit) < 0:
                self.append(f"{section}.{limit}: cannot be negative ({_DISABLES})")
            elif getattr(values, limit) > 0 and getattr(values, companion) <= 0:
                self.append(f"{section}.{companion}: must be {need} when {section}.{limit} is set")


def validate(settings: Settings) -> list[str]:
    """Every problem of ``settings``, each naming its key (an empty list: none)."""
    problems = _Problems()
    c = settings.client
    problems.port("server.port", settings.server.port)
    problems.port("http.port", settings.http.port)
    problems.port("http.internal_port", settings.http.internal_port)
    if settings.http.static_dir and not Path(settings.http.static_dir).is_dir():
        problems.append(f"http.static_dir: {settings.http.static_dir}: not a directory")
    if not settings.server.ws_path.startswith("/"):
        problems.append("server.ws_path: must start with '/'")
    if c.ping_interval_s < 0 or c.pong_timeout_s < 0:
        problems.append("client.ping_interval_s: intervals cannot be negative")
    if c.ping_interval_s and c.pong_timeout_s >= c.ping_interval_s:
        problems.append("client.pong_timeout_s: must be shorter than client.ping_interval_s")
    problems.positive(
        "client",
        c,
        "stale_timeout_s",
        "max_message_bytes",
        "channel_max_length",
        "history_max_publication_limit",
        "recovery_max_publication_limit",
        "write_queue_max_bytes",
        "slow_client_timeout_s",
    )
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
    problems.positive("broker", settings.broker, "max_connections")
    if not settings.store.url.startswith(STORE_SCHEMES):
        problems.append(f"store.url: unsupported scheme (expected one of {', '.join(STORE_SCHEMES)})")
    _validate_store(settings.store, problems)
    _validate_limits(settings, problems)
    _validate_auth(settings.auth, problems)
    _validate_accounts(settings.accounts, problems)
    if settings.node.heartbeat_interval_s <= 0 or settings.node.survey_timeout_s <= 0:
        problems.append(
            "node.heartbeat_interval_s: node.heartbeat_interval_s and survey_timeout_s must be positive"
        )
    problems.positive("api", settings.api, "max_body_bytes")
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
    return list(problems)


def _validate_limits(settings: Settings, problems: _Problems) -> None:
    c = settings.client
    if any(not origin or origin != origin.strip() for origin in settings.server.allowed_origins):
        problems.append("server.allowed_origins: origins cannot be empty or padded with spaces")
    problems.positive("server", settings.server, "handshake_timeout_s")
    for entry in settings.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"server.trusted_proxies: {entry!r} is not an address or a network (CIDR)")
    problems.not_negative("server", settings.server, "max_connections_per_address", zero="0 disables the cap")
    problems.not_negative("server", settings.server, "max_connections", zero="0 follows the open-files limit")
    problems.positive("http", settings.http, "request_timeout_s", "keepalive_timeout_s")
    problems.not_negative("client", c, "user_connection_limit", "channel_limit", "max_errors", zero=_DISABLES)
    # A burst is a whole number of tokens: "at least 1" is "positive".
    problems.switched_limits(
        "client",
        c,
        (
            ("connection_rate_per_s", "connection_burst"),
            ("connection_rate_per_address_per_s", "connection_burst_per_address"),
            ("command_rate_per_s", "command_burst"),
        ),
        need="at least 1",
    )
    if c.max_errors > 0 and c.max_errors_interval_s <= 0:
        problems.append("client.max_errors_interval_s: must be positive when client.max_errors is set")


def _validate_auth(auth: AuthSettings, problems: _Problems) -> None:
    if auth.token_jwks_url and not auth.token_jwks_url.startswith(("http://", "https://")):
        problems.append("auth.token_jwks_url: must be an http:// or https:// URL")
    problems.positive("auth", auth, "token_jwks_refresh_interval_s", "token_jwks_timeout_s")
    problems.not_negative("auth", auth, "token_jwks_min_refresh_interval_s")
    if not 0 <= auth.token_leeway_s <= 300:
        problems.append("auth.token_leeway_s: must be between 0 and 300 seconds")
    if auth.token_hmac_previous_secret and not auth.token_hmac_secret:
        problems.append("auth.token_hmac_previous_secret: needs auth.token_hmac_secret (the new secret)")


def _validate_accounts(accounts: AccountsSettings, problems: _Problems) -> None:
    if not 4 <= accounts.bcrypt_cost <= 31:
        problems.append("accounts.bcrypt_cost: must be between 4 and 31")
    if accounts.bcrypt_max_concurrency < 1:
        problems.append("accounts.bcrypt_max_concurrency: must be at least 1")
    problems.not_negative("accounts", accounts, "bcrypt_max_waiting")
    if not 1 <= accounts.password_min_length <= 72:
        # bcrypt reads at most 72 bytes, the longest password accepted.
        problems.append("accounts.password_min_length: must be between 1 and 72")
    problems.positive(
        "accounts", accounts, "username_max_length", "token_ttl_s", "refresh_token_ttl_s", "max_body_bytes"
    )
    problems.switched_limits(
        "accounts",
        accounts,
        (
            ("login_attempts_per_username", "login_username_window_s"),
            ("login_attempts_per_address", "login_address_window_s"),
        ),
        need="positive",
    )


def _validate_store(store: StoreSettings, problems: _Problems) -> None:
    """MongoDB's write concern and read preference (SQLite ignores them), and the store's timers."""
    wc = store.write_concern
    if not wc or wc.strip() != wc or (wc.lstrip("-").isdigit() and int(wc) < 1):
        problems.append(
            "store.write_concern: 'majority', a number of members (1 or more) or a replica set tag name"
        )
    if store.read_preference.lower() not in _READ_PREFERENCES:
        problems.append(f"store.read_preference: one of {', '.join(READ_PREFERENCE_NAMES)}")
    problems.not_negative("store", store, "idempotency_window_s")
    problems.positive("store", store, "sweep_interval_s")
    problems.not_negative("store", store, "start_timeout_s")
