"""A real ``wirehub serve`` process for integration tests, on free loopback ports.

The process binds port 0 and prints the ports it got; tests wait for that line under a
deadline, never on a sleep. Its log goes to a file that a failing test can show.

Each gateway is a process of its own running ``wirehub.cli.main``, as ``python -m wirehub.cli
serve`` does. In a test run (``tests/conftest.py`` turns ``warm_pythons`` on) the imports come
first: the process is one of the ``WarmPythons`` that imported ``wirehub.cli`` while the tests
did something else, and is then told which command to run (``tests/warm_gateway.py``; the CLI
tests' ``run_cli`` uses them too). Elsewhere (the benchmarks), and for a subclass that changes
``command()``, the command itself is run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from wirehub.auth.jwt import issue_subscription_token, issue_token
from wirehub.types import JSON

__all__ = ["SECRET", "GatewayProcess", "WarmPythons", "warm_pythons"]

SECRET = "integration-test-secret-0123456789abcdef"
START_TIMEOUT_S = 15.0
LISTENING = re.compile(rb"listening on (ws://\S+) and (http://\S+)")
REPOSITORY = Path(__file__).parent.parent


def _base_env() -> dict[str, str]:
    """The environment of every gateway: the test run's, less its WIREHUB_ variables, with the
    repository importable (``--app tests.apps...``, ``examples.chat.server``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPOSITORY), env.get("PYTHONPATH", "")])
    return env


class WarmPythons:
    """Python processes that have imported ``wirehub.cli`` and wait on stdin for a command to run.

    ``launch()`` hands one out, tells it the command, and starts another, so that the next
    command finds one ready. A spare's own output (only ever an import error) goes to a file
    of its own, which ``launch()`` returns with the process.
    """

    def __init__(self, spares: int = 2) -> None:
        self.spares = spares
        self.enabled = False
        """Whether commands run in warm processes; the test run's conftest turns it on."""
        self._ready: list[tuple[subprocess.Popen[bytes], Path]] = []
        self._dir: Path | None = None
        self._spawned = 0
        self._lock = threading.Lock()  # tests run the CLI from threads too

    def launch(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, stderr: Path
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Run ``wirehub ARGV`` in a warm process: the process (its stdout a pipe) and the file
        its import errors went to."""
        with self._lock:
            if not self._ready:
                self._spawn()
            proc, import_errors = self._ready.pop(0)
            while len(self._ready) < self.spares:
                self._spawn()
        spec = {"argv": list(argv), "env": dict(env), "cwd": str(cwd), "stderr": str(stderr)}
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(spec).encode() + b"\n")
            proc.stdin.close()
            proc.stdin = None  # told: nothing more to say to it
        except BrokenPipeError:
            proc.wait()
            _close_pipes(proc)
            raise RuntimeError(f"warm process died:\n{import_errors.read_text()}") from None
        return proc, import_errors

    def scratch(self, name: str) -> Path:
        """A path of its own for ``name`` in the pool's folder, removed by ``close()``."""
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="wirehub-warm-"))
            self._spawned += 1
            return self._dir / f"{self._spawned}-{name}"

    def close(self) -> None:
        """End the spares (an empty line tells each to exit) and remove their files."""
        with self._lock:
            self.enabled = False
            for proc, _ in self._ready:
                assert proc.stdin is not None
                try:
                    proc.stdin.close()
                    proc.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
                _close_pipes(proc)
            self._ready.clear()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    def _spawn(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="wirehub-warm-"))
        self._spawned += 1
        errors = self._dir / f"{self._spawned}-warm.log"
        # No PYTHONPATH: the import path is set from the command's own environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_") and k != "PYTHONPATH"}
        with errors.open("wb") as err:
            proc = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
                [sys.executable, str(Path(__file__).with_name("warm_gateway.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=REPOSITORY,
            )
        self._ready.append((proc, errors))


warm_pythons = WarmPythons()
"""The test run's warm processes: ``tests/conftest.py`` turns them on, and ends the spares when
the run ends."""


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
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws_url = ""
        self.http_url = ""
        self.listening_line = ""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "wirehub.cli", *self.arguments()]

    def arguments(self) -> list[str]:
        """The command line after ``wirehub``."""
        argv = ["serve"]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        if self.app is not None:
            argv += ["--app", self.app]
        return argv + self.args

    def environment(self) -> dict[str, str]:
        env = _base_env()
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
        )
        env.update(self.env)
        return env

    async def start(self) -> None:
        if warm_pythons.enabled and type(self).command is GatewayProcess.command:
            proc, import_errors = warm_pythons.launch(
                self.arguments(), env=self.environment(), cwd=self.workdir, stderr=self.log_path
            )
            self.proc = proc
        else:
            import_errors = None
            with self.log_path.open("ab") as log:
                # A plain Popen, like the warm processes: waited on in a thread, from whichever
                # event loop stops the gateway.
                self.proc = proc = subprocess.Popen(  # noqa: S603, ASYNC220 - the gateway's own command
                    self.command(),
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=self.environment(),
                    cwd=self.workdir,
                )
        await self._wait_listening(proc, import_errors)

    async def _wait_listening(self, proc: subprocess.Popen[bytes], import_errors: Path | None) -> None:
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    line = await asyncio.to_thread(proc.stdout.readline)
                    if not line:
                        before = import_errors.read_text() if import_errors else ""  # noqa: ASYNC240 - failing anyway
                        raise RuntimeError(f"gateway exited before listening:\n{before}{self.log()}")
                    match = LISTENING.search(line)
                    if match:
                        self.ws_url, self.http_url = (g.decode() for g in match.groups())
                        self.listening_line = line.decode().strip()
                        return
        except BaseException:
            await self.kill()
            raise

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        """Signal the process and wait for it to exit; returns its exit code."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return await asyncio.to_thread(proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"gateway did not exit within {timeout_s} s of signal {sig}") from None
        finally:
            if proc.returncode is not None:
                _close_pipes(proc)

    async def kill(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
            _close_pipes(proc)

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


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()
