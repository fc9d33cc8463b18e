"""What the figures were measured on: the machine, the software versions and the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def commit() -> str:
    """The checked-out commit, with ``+changes`` if the work tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed git commands
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head}+changes" if git("status", "--porcelain", "--untracked-files=no") else head


def describe(generator_versions: dict[str, str]) -> dict[str, str]:
    return {
        "cpu": f"{os.cpu_count()} x {cpu_model()}",
        "memory": f"{memory_gib():.0f} GiB",
        "kernel": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "websockets": metadata.version("websockets"),
        "wirehub": f"{metadata.version('wirehub')} at commit {commit()}",
        **generator_versions,
    }
