"""The Node load generator (``bench/node``): installed once with ``npm ci``, run once per measurement.

``node_modules`` goes into ``bench/node/node_modules`` (git-ignored). ``npm ci`` runs again only
when ``package-lock.json`` changed since the last install, which a stamp file records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from typing import Any

from bench.suite.servers import NODE_DIR, Server, Target, WirehubServer

STAMP = NODE_DIR / "node_modules" / ".installed-from-lock"
GENERATOR_TIMEOUT_S = 150.0
"""The generator's --timeout-s: no run of the default sizes comes near it."""
SLACK_S = 30.0
"""How much longer than the generator's own --timeout-s the suite waits before killing it."""


def lock_digest() -> str:
    return hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()


def ensure_installed() -> None:
    """``npm ci`` in bench/node unless node_modules already matches the lock file."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: the load generator needs Node.js 18 or newer")
    digest = lock_digest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    print("installing the load generator (npm ci in bench/node) ...", flush=True)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S607 - npm from PATH
        cwd=NODE_DIR,
        check=True,
    )
    STAMP.write_text(digest + "\n")


def package_version(name: str) -> str | None:
    manifest = NODE_DIR / "node_modules" / name / "package.json"
    return str(json.loads(manifest.read_text())["version"]) if manifest.exists() else None


def versions() -> dict[str, str]:
    """Node's version and the installed ``ws`` and ``socket.io`` packages', for the report."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)  # noqa: S607
    found = {name: package_version(name) for name in ("ws", "socket.io")}
    return {"node": node.stdout.strip(), **{name: v for name, v in found.items() if v is not None}}


async def run_generator(target: Target, server: Server, options: dict[str, str | float]) -> dict[str, Any]:
    """One generator run against ``server``; the generator's JSON result."""
    timeout_s = GENERATOR_TIMEOUT_S
    argv = [
        "node", str(NODE_DIR / "loadgen.js"),
        "--url", server.url,
        "--protocol", target.protocol,
        "--namespace", target.namespace,
        "--server-pid", str(server.pid),
        "--timeout-s", str(timeout_s),
    ]  # fmt: skip
    if server.aux_pids:
        argv += ["--aux-pids", ",".join(str(pid) for pid in server.aux_pids)]
    for name, value in options.items():
        argv += [f"--{name}", str(value)]
    env = dict(os.environ, WIREHUB_BENCH_TOKEN=WirehubServer.token())
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        async with asyncio.timeout(timeout_s + SLACK_S):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the load generator did not finish within {timeout_s + SLACK_S:.0f} s") from None
    lines = stdout.decode().strip().splitlines()
    if proc.returncode not in (0, 3) or not lines:
        raise RuntimeError(f"the load generator failed ({proc.returncode}): {stderr.decode()[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
