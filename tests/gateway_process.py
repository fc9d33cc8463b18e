"""A real ``wirehub serve`` process for integration tests, on free loopback ports.

The process binds port 0 and prints the ports it got; tests wait for that line under a
deadline, never on a sleep. Its log goes to a file that a failing test can show.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from wirehub.auth.jwt import issue_subscription_token, issue_token
from wirehub.types import JSON

SECRET = "integration-test-secret-0123456789abcdef"
START_TIMEOUT_S = 15.0
LISTENING = re.compile(rb"listening on (ws://\S+) and (http://\S+)")


class GatewayProcess:
    """One gateway process; ``start()`` again after ``stop()`` restarts it on the same database."""

    def __init__(
        self,
        workdir: Path,
        *,
        config: str | None = None,
        env: Mapping[str, str] | None = None,
        app: str | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.args = list(args)
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "wirehub.toml"
            self.config_path.write_text(config, encoding="utf-8")
        self.env = dict(env or {})
        self.app = app
        self.log_path = workdir / "gateway.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.ws_url = ""
        self.http_url = ""
        self.listening_line = ""

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "wirehub.cli", "serve"]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        if self.app is not None:
            cmd += ["--app", self.app]
        return cmd + self.args

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_")}
        env.update(
            WIREHUB_SERVER_PORT="0",
            WIREHUB_HTTP_PORT="0",
            WIREHUB_STORE_URL=f"sqlite:///{self.workdir / 'wirehub.db'}",
            WIREHUB_AUTH_TOKEN_HMAC_SECRET=SECRET,
            # Every test client comes from one address, faster than a real client would: the
            # per-address handshake limit is off unless a test turns it on (test_admission.py).
            WIREHUB_CLIENT_CONNECTION_RATE_PER_ADDRESS_PER_S="0",
            # Test accounts protect nothing: bcrypt at its cheapest. At the default cost (12,
            # checked in tests/unit/test_accounts.py) the dummy hash every start-up computes
            # takes a quarter of a CPU second, which the gateways of the suite pay a hundred times.
            WIREHUB_ACCOUNTS_BCRYPT_COST="4",
            PYTHONPATH=os.pathsep.join([str(Path(__file__).parent.parent), env.get("PYTHONPATH", "")]),
        )
        env.update(self.env)
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(), stdout=asyncio.subprocess.PIPE, stderr=log, env=env, cwd=self.workdir
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"gateway exited before listening:\n{self.log()}")
                    match = LISTENING.search(line)
                    if match:
                        self.ws_url, self.http_url = (g.decode() for g in match.groups())
                        self.listening_line = line.decode().strip()
                        return
        except BaseException:
            await self.kill()
            raise

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        """Signal the process and wait for it to exit; returns its exit code."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.returncode is None:
            proc.send_signal(sig)
        async with asyncio.timeout(timeout_s):
            return await proc.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------------ tokens

    @staticmethod
    def token(
        user: str = "alice",
        *,
        ttl_s: int | None = 3600,
        info: JSON = None,
        channels: Sequence[str] = (),
        **extra: JSON,
    ) -> str:
        return issue_token(SECRET, user=user, ttl_s=ttl_s, info=info, channels=channels, extra=extra or None)

    @staticmethod
    def sub_token(user: str, channel: str, *, ttl_s: int | None = 3600, **kw: JSON) -> str:
        client = kw.pop("client", "")
        assert isinstance(client, str)
        return issue_subscription_token(
            SECRET,
            user=user,
            channel=channel,
            ttl_s=ttl_s,
            client=client,
            info=kw.get("info"),
            data=kw.get("data"),
        )
