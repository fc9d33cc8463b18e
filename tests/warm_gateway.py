"""A Python process that has imported ``wirehub.cli`` and waits to be told which gateway to be.

Run as ``python -m tests.warm_gateway`` by ``tests.gateway_process``, which keeps a few ready: a
gateway then starts without first paying for Python's imports of the product and its libraries
(a third of a CPU second, a hundred times a run). Told its command line, environment, working
directory and log file on stdin (one JSON line), the process becomes what ``python -m wirehub.cli``
started there would be: it takes that environment and directory, writes its stderr to the log,
and runs ``wirehub.cli.main``. That is the same gateway because the product reads its settings,
its secret and its ``--app`` when ``main`` runs, never at import time.
"""

from __future__ import annotations

import json
import os
import sys

import wirehub.cli

__all__ = ["become_gateway"]


def become_gateway(line: str) -> int:
    """Run the gateway that ``line`` describes; 0 at once for an empty line (a spare not used)."""
    if not line.strip():
        return 0
    spec = json.loads(line)
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    sys.path[0] = spec["cwd"]  # where ``python -m`` puts its working directory
    sys.argv = [wirehub.cli.__file__, *spec["argv"]]
    log = os.open(spec["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 2)
    os.close(log)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    return wirehub.cli.main(spec["argv"])


if __name__ == "__main__":
    sys.exit(become_gateway(sys.stdin.readline()))
