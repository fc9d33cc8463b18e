"""Unit tests for the store settings: validation, MongoDB option parsing, and ``build_store``."""

from __future__ import annotations

import pytest
from pymongo import ReadPreference

from wirehub.app import build_store
from wirehub.cli import main
from wirehub.config import load_settings
from wirehub.errors import ConfigError
from wirehub.storage.mongo import MongoStore, read_preference_for, write_concern_for
from wirehub.storage.sqlite import SqliteStore


def store_problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    return [p for p in caught.value.problems if p.startswith("store.")]


def test_write_concern_for_returns_journaled_count_when_numeric() -> None:
    """A number of members is acknowledged by that many and journaled; majority and tags pass through."""
    assert write_concern_for("2").document == {"w": 2, "j": True}
    assert write_concern_for("majority").document == {"w": "majority"}
    assert write_concern_for("dc-east").document == {"w": "dc-east"}


@pytest.mark.parametrize("value", ["0", ""])
def test_write_concern_for_rejects_unacknowledged_or_empty(value: str) -> None:
    """w=0 would acknowledge publishes MongoDB never confirmed, so it is refused."""
    with pytest.raises(ValueError, match="write_concern"):
        write_concern_for(value)


def test_read_preference_for_accepts_mode_names_in_any_case() -> None:
    """MongoDB's mode names are accepted case-insensitively; anything else is refused."""
    assert read_preference_for("primary") == ReadPreference.PRIMARY
    assert read_preference_for("secondaryPreferred") == ReadPreference.SECONDARY_PREFERRED
    assert read_preference_for("NEAREST") == ReadPreference.NEAREST
    with pytest.raises(ValueError, match="read_preference"):
        read_preference_for("fastest")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WIREHUB_STORE_WRITE_CONCERN", "0"),
        ("WIREHUB_STORE_WRITE_CONCERN", "-1"),
        ("WIREHUB_STORE_WRITE_CONCERN", " majority"),
        ("WIREHUB_STORE_READ_PREFERENCE", "fastest"),
        ("WIREHUB_STORE_IDEMPOTENCY_WINDOW_S", "-5"),
    ],
)
def test_load_settings_reports_problem_when_store_option_invalid(key: str, value: str) -> None:
    """Invalid MongoDB options are configuration problems named by their key, found before start-up."""
    problems = store_problems({key: value})

    option = key.removeprefix("WIREHUB_STORE_").lower()
    assert any(p.startswith(f"store.{option}:") for p in problems)


def test_load_settings_accepts_mongodb_options_when_valid() -> None:
    """A MongoDB URL with a tag write concern and a secondary read preference loads."""
    settings = load_settings(
        env={
            "WIREHUB_STORE_URL": "mongodb+srv://user:pw@cluster.example.com/chat?retryWrites=true",
            "WIREHUB_STORE_WRITE_CONCERN": "3",
            "WIREHUB_STORE_READ_PREFERENCE": "secondaryPreferred",
        }
    )

    assert settings.store.write_concern == "3"


@pytest.mark.parametrize("url", ["mongodb://127.0.0.1:1/db", "mongodb+srv://cluster.example.com/db"])
def test_build_store_returns_mongo_store_when_url_is_mongodb(url: str) -> None:
    """Both MongoDB schemes select MongoStore, which does no I/O until started."""
    store = build_store(load_settings(env={"WIREHUB_STORE_URL": url}))

    assert isinstance(store, MongoStore)
    assert store.ready is False


def test_build_store_returns_sqlite_store_when_url_is_sqlite() -> None:
    """sqlite:/// and memory:// select SqliteStore."""
    assert isinstance(build_store(load_settings(env={"WIREHUB_STORE_URL": "memory://"})), SqliteStore)
    assert isinstance(build_store(load_settings(env={"WIREHUB_STORE_URL": "sqlite:///x.db"})), SqliteStore)


def test_serve_exits_with_problem_when_mongodb_url_malformed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A MongoDB URL PyMongo cannot parse stops ``wirehub serve`` with exit 2, never echoing the password."""
    monkeypatch.setenv("WIREHUB_STORE_URL", "mongodb://user:sekret@db:notaport/chat")
    monkeypatch.setenv("WIREHUB_AUTH_TOKEN_HMAC_SECRET", "x" * 32)
    monkeypatch.setenv("WIREHUB_SERVER_PORT", "0")
    monkeypatch.setenv("WIREHUB_HTTP_PORT", "0")

    assert main(["serve"]) == 2

    err = capsys.readouterr().err
    assert "error: store.url: not a usable MongoDB URL" in err
    assert "sekret" not in err
