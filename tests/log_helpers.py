"""Reading a gateway process's log: its JSON entries and text lines, polled until written.

A line is written a moment after the client sees what caused it: these poll the log file under a
deadline.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.gateway_process import GatewayProcess

WAIT_S = 10.0


def json_lines(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]


async def json_entry(gateway: GatewayProcess, message: str, **fields: Any) -> dict[str, Any]:
    """The first JSON log entry with ``message`` and ``fields``, once it is written."""
    async with asyncio.timeout(WAIT_S):
        while True:
            for entry in json_lines(gateway):
                if entry["message"] == message and all(entry.get(k) == v for k, v in fields.items()):
                    return entry
            await asyncio.sleep(0.05)


async def text_line(gateway: GatewayProcess, *parts: str) -> str:
    async with asyncio.timeout(WAIT_S):
        while True:
            for line in gateway.log().splitlines():
                if all(part in line for part in parts):
                    return line
            await asyncio.sleep(0.05)
