"""Unit tests for ``wirehub.config``: defaults, TOML files, ``WIREHUB_*`` overrides, validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from wirehub.config import NamespaceOptions, Settings, default_namespaces, load_settings
from wirehub.errors import ConfigError

SECRET = "s3cr3t-hmac-value-that-must-not-leak"


def write_toml(tmp_path: Path, text: str, name: str = "wirehub.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env=env or {})
    return excinfo.value.problems


def has_problem(problems: list[str], key: str) -> bool:
    return any(problem.startswith(f"{key}:") for problem in problems)


# --------------------------------------------------------------------------- defaults


def test_load_settings_returns_defaults_when_no_file_and_no_env() -> None:
    """Without a file or environment the settings equal the dataclass defaults."""
    settings = load_settings(env={})

    assert settings == Settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8000
    assert settings.server.ws_path == "/connection/websocket"
    assert settings.server.compression is False
    assert settings.http.port == 8001
    assert settings.client.ping_interval_s == 25
    assert settings.client.pong_timeout_s == 8
    assert settings.client.channel_max_length == 255
    assert settings.client.allow_anonymous_connect_without_token is False
    assert settings.auth.token_hmac_secret == ""
    assert settings.broker.url == "memory://"
    assert settings.store.url == "sqlite:///wirehub.db"
    assert settings.channel_defaults == NamespaceOptions()


def test_load_settings_includes_chat_namespace_when_no_file() -> None:
    """The built-in ``chat`` namespace is the only namespace by default."""
    settings = load_settings(env={})

    assert set(settings.namespaces) == {"chat"}
    assert settings.namespaces["chat"] == default_namespaces()["chat"]


def test_default_namespaces_chat_enables_history_presence_and_client_access() -> None:
    """The default ``chat`` namespace has history, presence, join/leave and subscriber rights on."""
    chat = default_namespaces()["chat"]

    assert chat.history_size == 100
    assert chat.history_ttl_s == 86400.0
    assert chat.history_enabled is True
    assert chat.presence is True
    assert chat.join_leave is True
    assert chat.force_push_join_leave is True
    assert chat.force_recovery is True
    assert chat.force_positioning is False
    assert chat.allow_subscribe_for_client is True
    assert chat.allow_subscribe_for_anonymous is False
    assert chat.allow_publish_for_subscriber is True
    assert chat.allow_publish_for_client is False
    assert chat.allow_publish_for_anonymous is False
    assert chat.allow_history_for_subscriber is True
    assert chat.allow_presence_for_subscriber is True
    assert chat.allow_user_limited_channels is False


def test_default_namespaces_returns_fresh_dict_when_called_twice() -> None:
    """Each call builds a new mapping so callers cannot mutate a shared default."""
    assert default_namespaces() is not default_namespaces()


def test_namespace_options_history_enabled_when_size_and_ttl_are_positive() -> None:
    """History is on only when both its size and its TTL are positive."""
    assert NamespaceOptions().history_enabled is False
    assert NamespaceOptions(history_size=10).history_enabled is False
    assert NamespaceOptions(history_ttl_s=60.0).history_enabled is False
    assert NamespaceOptions(history_size=10, history_ttl_s=60.0).history_enabled is True


def test_settings_is_frozen() -> None:
    """Settings cannot be modified after they are built."""
    settings = load_settings(env={})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.server.port = 9000  # type: ignore[misc]


# --------------------------------------------------------------------------- TOML files


def test_load_settings_reads_values_from_toml_file(tmp_path: Path) -> None:
    """Keys set in the TOML file replace the defaults of their section."""
    path = write_toml(
        tmp_path,
        """
        [server]
        host = "10.1.2.3"
        port = 9000
        compression = true

        [client]
        ping_interval_s = 30
        pong_timeout_s = 10
        allow_anonymous_connect_without_token = true

        [auth]
        token_issuer = "me"

        [store]
        url = "memory://"

        [channel_defaults]
        presence = true
        allow_subscribe_for_client = true
        """,
    )

    settings = load_settings(path, env={})

    assert settings.server.host == "10.1.2.3"
    assert settings.server.port == 9000
    assert settings.server.compression is True
    assert settings.server.ws_path == "/connection/websocket"
    assert settings.client.ping_interval_s == 30
    assert settings.client.pong_timeout_s == 10
    assert settings.client.allow_anonymous_connect_without_token is True
    assert settings.auth.token_issuer == "me"
    assert settings.store.url == "memory://"
    assert settings.channel_defaults.presence is True
    assert settings.channel_defaults.allow_subscribe_for_client is True


def test_load_settings_accepts_str_path(tmp_path: Path) -> None:
    """The file may be given as a plain string path."""
    path = write_toml(tmp_path, "[server]\nport = 9001\n")

    assert load_settings(str(path), env={}).server.port == 9001


def test_load_settings_converts_integer_to_float_when_key_is_float(tmp_path: Path) -> None:
    """An integer in the file is accepted for a float key and stored as a float."""
    path = write_toml(tmp_path, "[client]\nstale_timeout_s = 20\n")

    value = load_settings(path, env={}).client.stale_timeout_s

    assert value == 20.0
    assert isinstance(value, float)


def test_load_settings_keeps_chat_namespace_when_file_has_no_namespaces_table(tmp_path: Path) -> None:
    """A file without ``[namespaces]`` keeps the built-in ``chat`` namespace."""
    path = write_toml(tmp_path, "[server]\nport = 9000\n")

    assert load_settings(path, env={}).namespaces == default_namespaces()


def test_load_settings_replaces_chat_namespace_when_file_has_namespaces(tmp_path: Path) -> None:
    """A file with ``[namespaces]`` defines exactly its own namespaces, dropping ``chat``."""
    path = write_toml(
        tmp_path,
        """
        [namespaces.news]
        history_size = 10
        history_ttl_s = 300
        allow_subscribe_for_client = true

        [namespaces.private-dm]
        allow_user_limited_channels = true
        """,
    )

    namespaces = load_settings(path, env={}).namespaces

    assert set(namespaces) == {"news", "private-dm"}
    assert namespaces["news"] == NamespaceOptions(
        history_size=10, history_ttl_s=300.0, allow_subscribe_for_client=True
    )
    assert namespaces["private-dm"] == NamespaceOptions(allow_user_limited_channels=True)


def test_load_settings_has_no_namespaces_when_file_namespaces_table_is_empty(tmp_path: Path) -> None:
    """An empty ``[namespaces]`` table removes every namespace, including ``chat``."""
    path = write_toml(tmp_path, "[namespaces]\n")

    assert dict(load_settings(path, env={}).namespaces) == {}


# --------------------------------------------------------------------------- environment


def test_load_settings_overrides_server_port_when_env_set() -> None:
    """``WIREHUB_SERVER_PORT`` sets ``server.port``."""
    settings = load_settings(env={"WIREHUB_SERVER_PORT": "9100"})

    assert settings.server.port == 9100


def test_load_settings_overrides_ping_interval_when_env_set() -> None:
    """``WIREHUB_CLIENT_PING_INTERVAL_S`` sets ``client.ping_interval_s``."""
    settings = load_settings(env={"WIREHUB_CLIENT_PING_INTERVAL_S": "40"})

    assert settings.client.ping_interval_s == 40


def test_load_settings_overrides_file_value_when_env_set(tmp_path: Path) -> None:
    """An environment variable wins over the same key in the file."""
    path = write_toml(tmp_path, '[server]\nport = 9000\nhost = "10.1.2.3"\n')

    settings = load_settings(path, env={"WIREHUB_SERVER_PORT": "9200"})

    assert settings.server.port == 9200
    assert settings.server.host == "10.1.2.3"


def test_load_settings_overrides_chat_presence_when_env_false() -> None:
    """``WIREHUB_NAMESPACES_CHAT_PRESENCE=false`` turns presence off in the default chat namespace."""
    settings = load_settings(env={"WIREHUB_NAMESPACES_CHAT_PRESENCE": "false"})

    chat = settings.namespaces["chat"]
    assert chat.presence is False
    assert chat.join_leave is True
    assert chat.history_size == 100


def test_load_settings_overrides_file_namespace_when_env_set(tmp_path: Path) -> None:
    """Environment variables also reach namespaces defined in the file."""
    path = write_toml(tmp_path, "[namespaces.news]\npresence = false\n")

    settings = load_settings(path, env={"WIREHUB_NAMESPACES_NEWS_PRESENCE": "true"})

    assert settings.namespaces["news"].presence is True


def test_load_settings_overrides_channel_defaults_presence_when_env_true() -> None:
    """``WIREHUB_CHANNEL_DEFAULTS_PRESENCE=true`` turns presence on for channels without a namespace."""
    settings = load_settings(env={"WIREHUB_CHANNEL_DEFAULTS_PRESENCE": "true"})

    assert settings.channel_defaults.presence is True


def test_load_settings_overrides_string_key_when_env_set() -> None:
    """String keys take the environment value verbatim."""
    settings = load_settings(env={"WIREHUB_STORE_URL": "memory://", "WIREHUB_SERVER_HOST": "::"})

    assert settings.store.url == "memory://"
    assert settings.server.host == "::"


def test_load_settings_overrides_float_key_when_env_set() -> None:
    """Float keys parse their environment value as a number."""
    settings = load_settings(env={"WIREHUB_CLIENT_STALE_TIMEOUT_S": "2.5"})

    assert settings.client.stale_timeout_s == 2.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        (" On ", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_load_settings_parses_bool_when_env_uses_common_spelling(text: str, expected: bool) -> None:
    """Boolean environment values accept 1/0, true/false, yes/no and on/off in any case."""
    settings = load_settings(env={"WIREHUB_SERVER_COMPRESSION": text})

    assert settings.server.compression is expected


def test_load_settings_ignores_unrelated_env_vars() -> None:
    """Variables that do not name a known key leave the settings untouched."""
    settings = load_settings(env={"WIREHUB_SERVER_NOPE": "1", "PATH": "/bin", "SERVER_PORT": "1"})

    assert settings == Settings()


def test_load_settings_reads_os_environ_when_env_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit ``env`` the overrides come from the process environment."""
    monkeypatch.setenv("WIREHUB_SERVER_PORT", "9300")

    assert load_settings().server.port == 9300


def test_load_settings_reads_hmac_secret_from_file_when_env_names_file(tmp_path: Path) -> None:
    """``WIREHUB_AUTH_TOKEN_HMAC_SECRET_FILE`` loads the secret from that file, stripped."""
    secret_file = tmp_path / "hmac.secret"
    secret_file.write_text(f"{SECRET}\n", encoding="utf-8")

    settings = load_settings(env={"WIREHUB_AUTH_TOKEN_HMAC_SECRET_FILE": str(secret_file)})

    assert settings.auth.token_hmac_secret == SECRET


def test_load_settings_prefers_direct_env_when_secret_given_twice(tmp_path: Path) -> None:
    """A directly set variable wins over the ``_FILE`` variant."""
    secret_file = tmp_path / "hmac.secret"
    secret_file.write_text("from-file", encoding="utf-8")

    settings = load_settings(
        env={
            "WIREHUB_AUTH_TOKEN_HMAC_SECRET": "from-env",
            "WIREHUB_AUTH_TOKEN_HMAC_SECRET_FILE": str(secret_file),
        }
    )

    assert settings.auth.token_hmac_secret == "from-env"


def test_load_settings_reports_problem_when_secret_file_missing(tmp_path: Path) -> None:
    """An unreadable secret file is reported under the secret's key."""
    problems = problems_of(env={"WIREHUB_AUTH_TOKEN_HMAC_SECRET_FILE": str(tmp_path / "absent")})

    assert has_problem(problems, "auth.token_hmac_secret")


# --------------------------------------------------------------------------- problems


def test_load_settings_reports_unknown_section(tmp_path: Path) -> None:
    """A top-level table that is not a known section is reported by name."""
    path = write_toml(tmp_path, "[bogus]\nx = 1\n")

    assert has_problem(problems_of(path), "bogus")


def test_load_settings_reports_unknown_key(tmp_path: Path) -> None:
    """A key unknown to its section is reported as ``section.key``."""
    path = write_toml(tmp_path, "[client]\nfoo = 1\n")

    assert has_problem(problems_of(path), "client.foo")


def test_load_settings_reports_unknown_key_in_namespace(tmp_path: Path) -> None:
    """A key unknown to a namespace is reported as ``namespaces.name.key``."""
    path = write_toml(tmp_path, "[namespaces.news]\nhistory = true\n")

    assert has_problem(problems_of(path), "namespaces.news.history")


def test_load_settings_reports_wrong_type(tmp_path: Path) -> None:
    """A value of the wrong type is reported under its key."""
    path = write_toml(tmp_path, '[server]\nport = "x"\n')

    assert has_problem(problems_of(path), "server.port")


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[server]\ncompression = 1\n", "server.compression"),
        ("[client]\nping_interval_s = true\n", "client.ping_interval_s"),
        ("[client]\nping_interval_s = 2.5\n", "client.ping_interval_s"),
        ("[client]\nstale_timeout_s = false\n", "client.stale_timeout_s"),
        ("[broker]\nurl = 1\n", "broker.url"),
        ("server = 1\n", "server"),
        ("namespaces = 1\n", "namespaces"),
        ("[namespaces]\nnews = 1\n", "namespaces.news"),
    ],
)
def test_load_settings_reports_wrong_type_when_value_mismatches_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    """Booleans are not integers, floats are not integers, and tables must be tables."""
    path = write_toml(tmp_path, toml)

    assert has_problem(problems_of(path), key)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("WIREHUB_SERVER_PORT", "x", "server.port"),
        ("WIREHUB_CLIENT_PING_INTERVAL_S", "2.5", "client.ping_interval_s"),
        ("WIREHUB_CLIENT_STALE_TIMEOUT_S", "soon", "client.stale_timeout_s"),
        ("WIREHUB_SERVER_COMPRESSION", "maybe", "server.compression"),
        ("WIREHUB_NAMESPACES_CHAT_PRESENCE", "", "namespaces.chat.presence"),
    ],
)
def test_load_settings_reports_bad_env_value(name: str, value: str, key: str) -> None:
    """An environment value that does not parse is reported under the key it overrides."""
    assert has_problem(problems_of(env={name: value}), key)


@pytest.mark.parametrize("name", ["x", "a b", "ns.sub", "ça"])
def test_load_settings_reports_invalid_namespace_name(tmp_path: Path, name: str) -> None:
    """Namespace names must match ``^[-a-zA-Z0-9_]{2,}$``."""
    path = write_toml(tmp_path, f'[namespaces."{name}"]\npresence = true\n')

    assert has_problem(problems_of(path), f"namespaces.{name}")


@pytest.mark.parametrize(("ping", "pong"), [(10, 10), (10, 20)])
def test_load_settings_reports_problem_when_pong_timeout_not_shorter_than_ping(ping: int, pong: int) -> None:
    """``pong_timeout_s`` must be strictly shorter than ``ping_interval_s``."""
    env = {"WIREHUB_CLIENT_PING_INTERVAL_S": str(ping), "WIREHUB_CLIENT_PONG_TIMEOUT_S": str(pong)}

    assert has_problem(problems_of(env=env), "client.pong_timeout_s")


def test_load_settings_allows_any_pong_timeout_when_pings_disabled() -> None:
    """With ``ping_interval_s = 0`` pings are off and the pong timeout is not compared."""
    settings = load_settings(env={"WIREHUB_CLIENT_PING_INTERVAL_S": "0"})

    assert settings.client.ping_interval_s == 0


def test_load_settings_reports_problem_when_history_size_without_ttl(tmp_path: Path) -> None:
    """A namespace with ``history_size`` but no ``history_ttl_s`` is rejected."""
    path = write_toml(tmp_path, "[namespaces.news]\nhistory_size = 10\n")

    assert has_problem(problems_of(path), "namespaces.news.history_ttl_s")


def test_load_settings_reports_problem_when_history_ttl_without_size() -> None:
    """``history_ttl_s`` alone is rejected as well."""
    env = {"WIREHUB_CHANNEL_DEFAULTS_HISTORY_TTL_S": "60"}

    assert has_problem(problems_of(env=env), "channel_defaults.history_ttl_s")


def test_load_settings_reports_problem_when_force_recovery_without_history(tmp_path: Path) -> None:
    """``force_recovery`` needs history in the same namespace."""
    path = write_toml(tmp_path, "[channel_defaults]\nforce_recovery = true\n")

    assert has_problem(problems_of(path), "channel_defaults.force_recovery")


def test_load_settings_reports_problem_when_chat_history_removed_by_env() -> None:
    """Turning off the chat history breaks its ``force_recovery`` and is reported."""
    env = {"WIREHUB_NAMESPACES_CHAT_HISTORY_SIZE": "0"}

    problems = problems_of(env=env)

    assert has_problem(problems, "namespaces.chat.force_recovery")


def test_load_settings_reports_problem_when_force_push_join_leave_without_join_leave(tmp_path: Path) -> None:
    """``force_push_join_leave`` needs ``join_leave``."""
    path = write_toml(tmp_path, "[namespaces.news]\nforce_push_join_leave = true\n")

    assert has_problem(problems_of(path), "namespaces.news.force_push_join_leave")


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("WIREHUB_BROKER_URL", "amqp://localhost:5672", "broker.url"),
        ("WIREHUB_STORE_URL", "postgres://localhost/db", "store.url"),
    ],
)
def test_load_settings_reports_unsupported_url_scheme(name: str, value: str, key: str) -> None:
    """Only ``memory://`` brokers and ``sqlite:///`` or ``memory://`` stores are supported."""
    assert has_problem(problems_of(env={name: value}), key)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("WIREHUB_SERVER_PORT", "-1", "server.port"),
        ("WIREHUB_SERVER_PORT", "65536", "server.port"),
        ("WIREHUB_HTTP_PORT", "-1", "http.port"),
        ("WIREHUB_SERVER_WS_PATH", "connection", "server.ws_path"),
        ("WIREHUB_CLIENT_MAX_MESSAGE_BYTES", "0", "client.max_message_bytes"),
        ("WIREHUB_CLIENT_MAX_MESSAGE_BYTES", "2000000", "client.write_queue_max_bytes"),
    ],
)
def test_load_settings_reports_out_of_range_value(name: str, value: str, key: str) -> None:
    """Ports, paths and sizes outside their range are reported under their key."""
    assert has_problem(problems_of(env={name: value}), key)


def test_load_settings_reports_missing_file(tmp_path: Path) -> None:
    """A config file that does not exist is reported by its path."""
    path = tmp_path / "absent.toml"

    problems = problems_of(path)

    assert has_problem(problems, str(path))
    assert "no such file" in problems[0]


def test_load_settings_reports_unreadable_file_when_path_is_directory(tmp_path: Path) -> None:
    """A path that cannot be read is reported as a ConfigError, not a raw OSError."""
    assert has_problem(problems_of(tmp_path), str(tmp_path))


@pytest.mark.parametrize("text", ["[server\nport = 1\n", "[server]\nport = \n", "a = 1\na = 2\n"])
def test_load_settings_reports_invalid_toml(tmp_path: Path, text: str) -> None:
    """A file that is not valid TOML is reported by its path."""
    path = write_toml(tmp_path, text)

    problems = problems_of(path)

    assert has_problem(problems, str(path))
    assert "not valid TOML" in problems[0]


def test_load_settings_reports_invalid_utf8_as_invalid_toml(tmp_path: Path) -> None:
    """A file that is not UTF-8 is reported like invalid TOML."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nhost = "\xe9"\n')

    assert has_problem(problems_of(path), str(path))


def test_load_settings_reports_all_problems_at_once(tmp_path: Path) -> None:
    """Every problem in the file and the environment is collected into one ConfigError."""
    path = write_toml(
        tmp_path,
        """
        [bogus]
        [server]
        port = "x"
        [client]
        foo = 1
        [namespaces.x]
        presence = true
        """,
    )

    problems = problems_of(path, env={"WIREHUB_BROKER_URL": "nats://", "WIREHUB_HTTP_PORT": "nope"})

    for key in ("bogus", "server.port", "client.foo", "namespaces.x", "broker.url", "http.port"):
        assert has_problem(problems, key), key
    assert len(problems) >= 6


def test_config_error_message_joins_problems() -> None:
    """ConfigError's message lists every problem."""
    error = ConfigError(["a.b: bad", "c.d: worse"])

    assert error.problems == ["a.b: bad", "c.d: worse"]
    assert str(error) == "a.b: bad; c.d: worse"


# --------------------------------------------------------------------------- secrets


def test_settings_repr_hides_hmac_secret_when_set_by_env() -> None:
    """The HMAC secret never appears in the repr of the settings or their auth section."""
    settings = load_settings(env={"WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET})

    assert settings.auth.token_hmac_secret == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in repr(settings.auth)


def test_settings_repr_hides_hmac_secret_when_set_by_file(tmp_path: Path) -> None:
    """A secret loaded from the TOML file is hidden from the repr as well."""
    path = write_toml(tmp_path, f'[auth]\ntoken_hmac_secret = "{SECRET}"\n')

    settings = load_settings(path, env={})

    assert settings.auth.token_hmac_secret == SECRET
    assert SECRET not in repr(settings)


# --------------------------------------------------------------------------- limits and token keys


def test_load_settings_has_centrifugo_like_limit_defaults() -> None:
    """Limits Centrifugo enables keep its defaults; the others are on but generous."""
    settings = load_settings(env={})

    assert settings.server.allowed_origins == ()
    assert settings.server.handshake_timeout_s == 10.0
    assert settings.client.channel_limit == 128
    assert settings.client.user_connection_limit == 0
    assert settings.client.connection_rate_per_s == 500.0
    assert settings.client.connection_burst == 1000
    # Off: behind an untrusted proxy every client has the proxy's address.
    assert settings.client.connection_rate_per_address_per_s == 0
    assert settings.client.command_rate_per_s == 200.0
    assert settings.client.command_burst == 1000
    assert settings.client.max_errors == 100
    assert settings.client.max_errors_interval_s == 60.0
    assert settings.auth.token_jwks_url == ""
    assert settings.auth.token_leeway_s == 1.0


def test_load_settings_reads_allowed_origins_list_from_toml(tmp_path: Path) -> None:
    """A TOML array of strings becomes a tuple, in order."""
    path = write_toml(tmp_path, '[server]\nallowed_origins = ["https://a.example", "https://*.b.example"]\n')

    settings = load_settings(path, env={})

    assert settings.server.allowed_origins == ("https://a.example", "https://*.b.example")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://a.example,https://*.b.example", ("https://a.example", "https://*.b.example")),
        (" https://a.example , https://b.example ", ("https://a.example", "https://b.example")),
        ("*", ("*",)),
        ("https://a.example,,", ("https://a.example",)),
        ("", ()),
    ],
)
def test_load_settings_reads_allowed_origins_comma_separated_from_env(
    text: str, expected: tuple[str, ...]
) -> None:
    """The environment form is comma-separated; blanks around and between items are dropped."""
    settings = load_settings(env={"WIREHUB_SERVER_ALLOWED_ORIGINS": text})

    assert settings.server.allowed_origins == expected


def test_load_settings_env_replaces_allowed_origins_of_file(tmp_path: Path) -> None:
    """An environment value replaces the file's list, it does not extend it."""
    path = write_toml(tmp_path, '[server]\nallowed_origins = ["https://a.example"]\n')

    settings = load_settings(path, env={"WIREHUB_SERVER_ALLOWED_ORIGINS": "https://b.example"})

    assert settings.server.allowed_origins == ("https://b.example",)


@pytest.mark.parametrize(
    "toml",
    [
        'allowed_origins = "https://a.example"\n',
        'allowed_origins = ["https://a.example", 1]\n',
        "allowed_origins = true\n",
        'allowed_origins = [["https://a.example"]]\n',
    ],
)
def test_load_settings_reports_allowed_origins_that_are_not_a_list_of_strings(
    tmp_path: Path, toml: str
) -> None:
    """Only an array of strings is a list of origins."""
    path = write_toml(tmp_path, "[server]\n" + toml)

    problems = problems_of(path)

    assert has_problem(problems, "server.allowed_origins")
    assert any("a list of strings" in p for p in problems)


def test_load_settings_reports_empty_or_padded_origin(tmp_path: Path) -> None:
    """An empty origin, or one with spaces around it, can never match and is reported."""
    path = write_toml(tmp_path, '[server]\nallowed_origins = ["", " https://a.example"]\n')

    assert has_problem(problems_of(path), "server.allowed_origins")


def test_load_settings_reads_limits_from_toml(tmp_path: Path) -> None:
    """Every limit key is read from its section with its type."""
    path = write_toml(
        tmp_path,
        "[server]\nhandshake_timeout_s = 3\n"
        "[client]\nuser_connection_limit = 5\nchannel_limit = 16\nconnection_rate_per_s = 20\n"
        "connection_burst = 40\ncommand_rate_per_s = 2.5\ncommand_burst = 10\nmax_errors = 7\n"
        "max_errors_interval_s = 30\n",
    )

    settings = load_settings(path, env={})

    assert settings.server.handshake_timeout_s == 3.0
    c = settings.client
    assert (c.user_connection_limit, c.channel_limit) == (5, 16)
    assert (c.connection_rate_per_s, c.connection_burst) == (20.0, 40)
    assert (c.command_rate_per_s, c.command_burst) == (2.5, 10)
    assert (c.max_errors, c.max_errors_interval_s) == (7, 30.0)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("WIREHUB_CLIENT_USER_CONNECTION_LIMIT", "-1", "client.user_connection_limit"),
        ("WIREHUB_CLIENT_CHANNEL_LIMIT", "-1", "client.channel_limit"),
        ("WIREHUB_CLIENT_MAX_ERRORS", "-1", "client.max_errors"),
        ("WIREHUB_CLIENT_CONNECTION_RATE_PER_S", "-1", "client.connection_rate_per_s"),
        ("WIREHUB_CLIENT_CONNECTION_BURST", "0", "client.connection_burst"),
        ("WIREHUB_CLIENT_COMMAND_RATE_PER_S", "-0.5", "client.command_rate_per_s"),
        ("WIREHUB_CLIENT_COMMAND_BURST", "0", "client.command_burst"),
        ("WIREHUB_CLIENT_MAX_ERRORS_INTERVAL_S", "0", "client.max_errors_interval_s"),
        ("WIREHUB_SERVER_HANDSHAKE_TIMEOUT_S", "0", "server.handshake_timeout_s"),
        ("WIREHUB_AUTH_TOKEN_JWKS_URL", "ftp://keys.example/jwks", "auth.token_jwks_url"),
        ("WIREHUB_AUTH_TOKEN_JWKS_REFRESH_INTERVAL_S", "0", "auth.token_jwks_refresh_interval_s"),
        ("WIREHUB_AUTH_TOKEN_JWKS_TIMEOUT_S", "0", "auth.token_jwks_timeout_s"),
        ("WIREHUB_AUTH_TOKEN_JWKS_MIN_REFRESH_INTERVAL_S", "-1", "auth.token_jwks_min_refresh_interval_s"),
        ("WIREHUB_AUTH_TOKEN_LEEWAY_S", "-1", "auth.token_leeway_s"),
        ("WIREHUB_AUTH_TOKEN_LEEWAY_S", "3600", "auth.token_leeway_s"),
        ("WIREHUB_AUTH_TOKEN_HMAC_PREVIOUS_SECRET", "old", "auth.token_hmac_previous_secret"),
    ],
)
def test_load_settings_reports_out_of_range_limit(name: str, value: str, key: str) -> None:
    """Negative limits, empty buckets, bad JWKS URLs and a lone previous secret are reported by key."""
    assert has_problem(problems_of(env={name: value}), key)


def test_load_settings_allows_zero_rates_and_bursts_when_limits_disabled() -> None:
    """A rate of 0 disables its bucket, so its burst no longer matters."""
    env = {
        "WIREHUB_CLIENT_CONNECTION_RATE_PER_S": "0",
        "WIREHUB_CLIENT_CONNECTION_BURST": "0",
        "WIREHUB_CLIENT_COMMAND_RATE_PER_S": "0",
        "WIREHUB_CLIENT_COMMAND_BURST": "0",
        "WIREHUB_CLIENT_MAX_ERRORS": "0",
        "WIREHUB_CLIENT_MAX_ERRORS_INTERVAL_S": "0",
        "WIREHUB_CLIENT_CHANNEL_LIMIT": "0",
    }

    settings = load_settings(env=env)

    assert settings.client.command_rate_per_s == 0.0
    assert settings.client.channel_limit == 0


def test_load_settings_reads_previous_hmac_secret_and_jwks_url_from_env() -> None:
    """Rotation and JWKS keys come from the environment like any other key."""
    env = {
        "WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET,
        "WIREHUB_AUTH_TOKEN_HMAC_PREVIOUS_SECRET": SECRET + "-old",
        "WIREHUB_AUTH_TOKEN_JWKS_URL": "https://keys.example/.well-known/jwks.json",
    }

    auth = load_settings(env=env).auth

    assert auth.token_hmac_previous_secret == SECRET + "-old"
    assert auth.token_jwks_url == "https://keys.example/.well-known/jwks.json"


def test_settings_repr_hides_previous_hmac_secret() -> None:
    """The previous HMAC secret is as secret as the current one."""
    env = {"WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET, "WIREHUB_AUTH_TOKEN_HMAC_PREVIOUS_SECRET": "pr3v-s3cr3t"}

    text = repr(load_settings(env=env))

    assert SECRET not in text
    assert "pr3v-s3cr3t" not in text


def test_load_settings_reads_allowed_origins_from_file_when_env_names_file(tmp_path: Path) -> None:
    """A ``_FILE`` value of a list key is read like the comma-separated environment form."""
    origins = tmp_path / "origins"
    origins.write_text("https://a.example,https://b.example\n", encoding="utf-8")

    settings = load_settings(env={"WIREHUB_SERVER_ALLOWED_ORIGINS_FILE": str(origins)})

    assert settings.server.allowed_origins == ("https://a.example", "https://b.example")


# --------------------------------------------------------------------------- accounts


def test_load_settings_accounts_defaults_enable_endpoints_with_bcrypt_cost_12() -> None:
    """Accounts are on by default with bcrypt cost 12 and both login limits set."""
    accounts = load_settings(env={}).accounts

    assert accounts.enabled is True
    assert accounts.bcrypt_cost == 12
    assert accounts.password_min_length == 8
    assert accounts.login_attempts_per_username > 0
    assert accounts.login_attempts_per_address > 0


def test_load_settings_reads_accounts_from_toml_and_env(tmp_path: Path) -> None:
    """The [accounts] table is read from the file, and WIREHUB_ACCOUNTS_* overrides it."""
    path = write_toml(
        tmp_path,
        "[accounts]\nbcrypt_cost = 4\nlogin_attempts_per_username = 3\nlogin_username_window_s = 60\n",
    )

    settings = load_settings(
        path, env={"WIREHUB_ACCOUNTS_ENABLED": "false", "WIREHUB_ACCOUNTS_TOKEN_TTL_S": "60"}
    )

    assert settings.accounts.bcrypt_cost == 4
    assert settings.accounts.login_attempts_per_username == 3
    assert settings.accounts.login_username_window_s == 60.0
    assert settings.accounts.enabled is False
    assert settings.accounts.token_ttl_s == 60


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bcrypt_cost", "3"),
        ("bcrypt_cost", "32"),
        ("bcrypt_max_concurrency", "0"),
        ("password_min_length", "0"),
        ("password_min_length", "73"),
        ("token_ttl_s", "0"),
        ("refresh_token_ttl_s", "-1"),
        ("max_body_bytes", "0"),
        ("login_attempts_per_address", "-1"),
    ],
)
def test_load_settings_reports_problem_when_accounts_value_out_of_range(key: str, value: str) -> None:
    """Out-of-range account settings are reported under their own key."""
    problems = problems_of(env={f"WIREHUB_ACCOUNTS_{key.upper()}": value})

    assert has_problem(problems, f"accounts.{key}")


def test_load_settings_reports_problem_when_login_window_not_positive() -> None:
    """A login limit needs a positive window; a disabled limit (0 attempts) does not."""
    problems = problems_of(env={"WIREHUB_ACCOUNTS_LOGIN_USERNAME_WINDOW_S": "0"})
    settings = load_settings(
        env={
            "WIREHUB_ACCOUNTS_LOGIN_ATTEMPTS_PER_USERNAME": "0",
            "WIREHUB_ACCOUNTS_LOGIN_USERNAME_WINDOW_S": "0",
        }
    )

    assert has_problem(problems, "accounts.login_username_window_s")
    assert settings.accounts.login_attempts_per_username == 0


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("WIREHUB_BROKER_KEY_PREFIX", "app{1}", "broker.key_prefix"),
        ("WIREHUB_BROKER_KEY_PREFIX", "app}", "broker.key_prefix"),
        ("WIREHUB_BROKER_MAX_CONNECTIONS", "0", "broker.max_connections"),
    ],
)
def test_load_settings_reports_problem_when_broker_value_invalid(name: str, value: str, key: str) -> None:
    """A brace in key_prefix (it would be every key's hash tag) or no command connections is refused."""
    assert has_problem(problems_of(env={"WIREHUB_BROKER_URL": "redis://127.0.0.1:6379/0", name: value}), key)


def test_load_settings_reads_redis_broker_settings_from_env() -> None:
    """A Redis Cluster broker is configured with url, key_prefix, cluster and max_connections."""
    settings = load_settings(
        env={
            "WIREHUB_BROKER_URL": "rediss://:pw@redis.internal:6380/0",
            "WIREHUB_BROKER_KEY_PREFIX": "chat-prod",
            "WIREHUB_BROKER_CLUSTER": "true",
            "WIREHUB_BROKER_MAX_CONNECTIONS": "16",
        }
    )
    broker = settings.broker
    assert (broker.url, broker.key_prefix, broker.cluster, broker.max_connections) == (
        "rediss://:pw@redis.internal:6380/0",
        "chat-prod",
        True,
        16,
    )
    assert "pw" not in repr(settings)
