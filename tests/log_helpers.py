"""Reading a gateway process's log: its JSON entries and text lines, polled until written.

A line is written a moment after the client sees what caused it: these poll the log file under a
deadline.
"""

from __future__ import annotations

import json
from typing import Any

from tests.gateway_process import GatewayProcess
from tests.helpers import eventually

WAIT_S = 10.0


def json_lines(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]


async def json_entry(gateway: GatewayProcess, message: str, **fields: Any) -> dict[str, Any]:
    """The first JSON log entry with ``message`` and ``fields``, once it is written."""

    async def entry() -> dict[str, Any] | None:
        for candidate in json_lines(gateway):
            if candidate["message"] == message and all(candidate.get(k) == v for k, v in fields.items()):
                return candidate
        return None

    found: dict[str, Any] = await eventually(entry, timeout_s=WAIT_S)
    return found


async def text_line(gateway: GatewayProcess, *parts: str) -> str:
    """The first text log line holding every one of ``parts``, once it is written."""

    async def line() -> str | None:
        return next((text for text in gateway.log().splitlines() if all(p in text for p in parts)), None)

    found: str = await eventually(line, timeout_s=WAIT_S)
    return found
