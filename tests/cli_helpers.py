"""Running the ``wirehub`` command line as a subprocess, as an operator would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.gateway_process import SECRET, warm_pythons

__all__ = ["AUTH_ENV", "cli_token", "run_cli", "run_cold"]

TIMEOUT_S = 30.0


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``wirehub ARGS`` in ``cwd``, with ``env`` but none of the test run's own WIREHUB_ variables.

    In a test run the command runs in one of the warm processes (``tests/warm_gateway.py``);
    ``run_cold`` runs ``python -m wirehub.cli`` itself.
    """
    if not warm_pythons.enabled:
        return run_cold(*args, cwd=cwd, env=env)
    clean = _without_wirehub_variables(env)
    stderr = warm_pythons.scratch("cli.stderr")
    proc, import_errors = warm_pythons.launch(args, env=clean, cwd=cwd, stderr=stderr)
    try:
        stdout, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    errors = import_errors.read_text() + (stderr.read_text() if stderr.exists() else "")
    return subprocess.CompletedProcess(
        [sys.executable, "-m", "wirehub.cli", *args], proc.returncode, stdout.decode(), errors
    )


def run_cold(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``run_cli`` as ``python -m wirehub.cli ARGS`` started afresh, imports and all."""
    return subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "wirehub.cli", *args],
        cwd=cwd,
        env=_without_wirehub_variables(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


AUTH_ENV = {
    "WIREHUB_AUTH_TOKEN_HMAC_SECRET": SECRET,
    "WIREHUB_AUTH_TOKEN_AUDIENCE": "chat-app",
    "WIREHUB_AUTH_TOKEN_ISSUER": "https://auth.example",
}


async def cli_token(cwd: Path, *args: str, env: dict[str, str]) -> str:
    result = await asyncio.to_thread(run_cli, "token", *args, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _without_wirehub_variables(env: dict[str, str] | None) -> dict[str, str]:
    """The test run's environment less its WIREHUB_ variables, with ``env`` on top."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_")} | (env or {})
