"""What an operator sees when ``wirehub serve`` cannot start: exit code 2 and one line saying why.

Each case is a mistake made for real (a busy port, a wrong ``--app``, an unreachable backend), run
through the command itself.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.services import free_port

SECRET = {"WIREHUB_AUTH_TOKEN_HMAC_SECRET": "startup-test-secret-0123456789abcdef"}


def serve_fails(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``serve`` expecting it to fail; return its one error line."""
    base = SECRET | {
        "WIREHUB_STORE_URL": f"sqlite:///{tmp_path / 'wirehub.db'}",
        "WIREHUB_SERVER_PORT": "0",
        "WIREHUB_HTTP_PORT": "0",
    }
    result = run_cli("serve", *args, cwd=tmp_path, env=base | (env or {}))
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    """A loopback port another listener holds."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_a_busy_port_names_the_setting_and_the_address(tmp_path: Path) -> None:
    with busy_port() as port:
        line = serve_fails(tmp_path, env={"WIREHUB_SERVER_PORT": str(port)})
    assert line.startswith(f"error: server.port: cannot listen on 127.0.0.1:{port}: "), line
    assert "in use" in line


def test_a_busy_http_port_names_the_http_setting(tmp_path: Path) -> None:
    with busy_port() as port:
        line = serve_fails(tmp_path, env={"WIREHUB_HTTP_PORT": str(port)})
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "http.port" in line


@pytest.mark.parametrize(
    ("files", "spec", "expected"),
    [
        ({}, "nosuch.realtime:app", "no module named 'nosuch' (looked in "),
        ({"broken.py": "import json\nraise RuntimeError('boom')\n"}, "broken:app", "RuntimeError: boom"),
        ({"empty.py": "x = 1\n"}, "empty:app", "module empty has no attribute 'app'"),
        ({"number.py": "app = 3\n"}, "number", "app is a int, not a wirehub App or Router"),
        ({}, ":app", "expected module:attribute"),
    ],
)
def test_a_bad_app_says_what_is_wrong_with_it(
    tmp_path: Path, files: dict[str, str], spec: str, expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    line = serve_fails(tmp_path, "--app", spec)
    assert line.startswith(f"error: --app {spec}: "), line
    assert expected in line


def test_a_broken_import_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import json\nraise RuntimeError('boom')\n")
    line = serve_fails(tmp_path, "--app", "broken:app")
    assert "broken.py:2)" in line, line


def test_a_data_directory_that_cannot_be_written_names_the_path(tmp_path: Path) -> None:
    """No secret configured and the data directory is not a directory: say where, and what to set."""
    (tmp_path / "file").write_text("")
    result = run_cli(
        "serve",
        cwd=tmp_path,
        env={"WIREHUB_STORE_URL": f"sqlite:///{tmp_path / 'file' / 'wirehub.db'}"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: cannot write a generated token secret to {tmp_path / 'file'}/"), line
    assert "auth.token_hmac_secret" in line


def test_an_unknown_log_level_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = run_cli("serve", "--log-level", "verbose", cwd=tmp_path, env=SECRET)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument --log-level: invalid choice: 'VERBOSE'" in result.stderr
    assert not (tmp_path / "wirehub.db").exists()


def test_an_unreachable_redis_names_the_broker_url_without_its_password(tmp_path: Path) -> None:
    port = free_port()
    line = serve_fails(tmp_path, env={"WIREHUB_BROKER_URL": f"redis://:hunter2@127.0.0.1:{port}/0"})
    assert line.startswith(f"error: broker.url redis://:***@127.0.0.1:{port}/0: "), line
    assert "hunter2" not in line


def test_an_unreachable_mongodb_names_the_store_url(tmp_path: Path) -> None:
    port = free_port()
    line = serve_fails(
        tmp_path,
        env={
            "WIREHUB_STORE_URL": f"mongodb://app:s3cret@127.0.0.1:{port}/chat",
            "WIREHUB_STORE_START_TIMEOUT_S": "0.5",
        },
    )
    assert line.startswith(f"error: store.url mongodb://app:***@127.0.0.1:{port}/chat: "), line
    assert "s3cret" not in line
