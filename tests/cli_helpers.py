"""Running the ``wirehub`` command line as a subprocess, as an operator would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.gateway_process import SECRET

__all__ = ["AUTH_ENV", "cli_token", "run_cli"]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``wirehub ARGS`` in ``cwd``, with ``env`` but none of the test run's own WIREHUB_ variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_")}
    return subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "wirehub.cli", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=30,
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
