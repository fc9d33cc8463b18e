"""A Python process that has imported ``wirehub.cli`` and waits to be told which command to run.

Run as ``python tests/warm_gateway.py`` by ``tests.gateway_process``, which keeps a few ready: a
gateway (or a ``wirehub`` command of ``tests/cli_helpers.py``) then starts without first paying
for Python's imports of the product and its libraries, a third of a CPU second each, a hundred
and more times a run. Told its command line, environment, working directory and stderr file on
stdin (one JSON line), the process becomes what ``python -m wirehub.cli`` started there would
be: it takes that environment, directory and import path, writes its stderr to the file, and
runs ``wirehub.cli.main``. That is the same program because the product reads its settings, its
secret and its ``--app`` when ``main`` runs, never at import time; the process is started
without PYTHONPATH, so that its import path can be the one the command's environment gives.
"""

from __future__ import annotations

import json
import os
import sys

import wirehub.cli

__all__ = ["become_command"]


def become_command(line: str) -> int:
    """Run the command ``line`` describes; 0 at once for an empty line (a spare not used)."""
    if not line.strip():
        return 0
    spec = json.loads(line)
    cwd, env = spec["cwd"], spec["env"]
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # ``python -m`` puts its working directory first, then PYTHONPATH's entries.
    extra = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:1] = [cwd, *extra]
    sys.argv = [wirehub.cli.__file__, *spec["argv"]]
    stderr = os.open(spec["stderr"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(stderr, 2)
    os.close(stderr)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    return wirehub.cli.main(spec["argv"])


if __name__ == "__main__":
    sys.exit(become_command(sys.stdin.readline()))
