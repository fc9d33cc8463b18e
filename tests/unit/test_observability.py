"""Log formats, the latency histogram, URL redaction, and the configuration helpers of the CLI."""

from __future__ import annotations

import io
import json
import logging
import tomllib
from pathlib import Path

import pytest

from wirehub.config import Settings, default_config_toml, load_settings, redacted_url, unknown_env_keys
from wirehub.logs import JsonFormatter, TextFormatter, configure_logging
from wirehub.server.metrics import Histogram, NodeMetrics


def record(message: str, **fields: object) -> logging.LogRecord:
    entry = logging.LogRecord("wirehub.test", logging.INFO, __file__, 1, message, None, None)
    entry.__dict__.update(fields)
    return entry


def test_text_lines_carry_every_field_and_stay_one_line() -> None:
    line = TextFormatter().format(
        record("connection closed", client="c1", code=1000, reason='bye "now"\nevil=1', nested={"a": 1})
    )
    assert "\n" not in line
    assert line.endswith(
        ' INFO wirehub.test: connection closed client=c1 code=1000 reason="bye \\"now\\"\\nevil=1"'
        ' nested="{\\"a\\": 1}"'
    )
    assert line[:24].endswith("Z")  # UTC, millisecond ISO time


def test_json_lines_are_objects_with_fields_as_keys() -> None:
    entry = json.loads(JsonFormatter().format(record("login failed", remote="10.0.0.1", message_x=1)))
    assert entry["level"] == "INFO"
    assert entry["logger"] == "wirehub.test"
    assert entry["message"] == "login failed"
    assert (entry["remote"], entry["message_x"]) == ("10.0.0.1", 1)


def test_a_field_never_replaces_the_json_envelope() -> None:
    entry = json.loads(JsonFormatter().format(record("hello", level="spoofed", logger="x")))
    assert (entry["level"], entry["field_level"], entry["logger"], entry["field_logger"]) == (
        "INFO",
        "spoofed",
        "wirehub.test",
        "x",
    )


def test_configure_logging_replaces_the_handlers_and_sets_the_level() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("warning", "json", stream)
        logging.getLogger("wirehub.test").info("hidden")
        logging.getLogger("wirehub.test").warning("shown", extra={"n": 2})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["n"] == 2


def test_histogram_buckets_are_cumulative_and_inclusive_of_their_bound() -> None:
    histogram = Histogram((0.01, 0.1))
    for value in (0.005, 0.01, 0.05, 3.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.01", 2), ("0.1", 3), ("+Inf", 4)]
    assert histogram.total == pytest.approx(3.065)


def test_close_codes_of_clients_are_bounded_labels() -> None:
    metrics = NodeMetrics()
    metrics.disconnected(1000, by_server=False)
    metrics.disconnected(4999, by_server=False)  # any code a client makes up
    metrics.disconnected(4001, by_server=True)  # the server's own codes are few
    assert metrics.disconnects == {"1000": 1, "other": 1, "4001": 1}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("mongodb://app:p%40ss@m1,m2/db?replicaSet=rs0", "mongodb://app:***@m1,m2/db?replicaSet=rs0"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("sqlite:///data/wirehub.db", "sqlite:///data/wirehub.db"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_unknown_environment_variables_are_named() -> None:
    env = {
        "WIREHUB_SERVER_PORT": "1",
        "WIREHUB_API_KEY_FILE": "/run/key",
        "WIREHUB_NAMESPACES_GAME_PRESENCE": "true",
        "WIREHUB_SERVR_PORT": "1",
        "WIREHUB_NAMESPACES_GAME_PRESENSE": "true",
        "HOME": "/root",
    }
    assert unknown_env_keys(env) == ["WIREHUB_NAMESPACES_GAME_PRESENSE", "WIREHUB_SERVR_PORT"]


def test_the_generated_configuration_loads_back_to_the_defaults(tmp_path: Path) -> None:
    text = default_config_toml()
    tables = tomllib.loads(text)
    assert {name for name, table in tables.items() if table} == {"namespaces"}  # the rest commented
    uncommented = "\n".join(
        line.removeprefix("# ") if " = " in line and line.startswith("# ") and "WIREHUB" not in line else line
        for line in text.splitlines()
    )
    path = tmp_path / "wirehub.toml"
    path.write_text(uncommented, encoding="utf-8")
    assert load_settings(path, env={}) == Settings()
