"""A raw WebSocket client speaking the JSON protocol line by line, for tests of exact frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT_S = 10.0


class RawClient:
    """Send commands, read replies and pushes, and observe the close code."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []
        """Messages that arrived while ``reply`` waited for another id."""
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RawClient:
        ws = await connect(url, compression=None, max_size=None, **kwargs)
        return cls(ws)

    async def close(self) -> None:
        await self.ws.close()

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        """Send one command; return its id."""
        cmd_id = self.next_id()
        await self.ws.send(json.dumps({"id": cmd_id, method: params or {}}))
        return cmd_id

    async def receive(self) -> dict[str, Any]:
        """The next message (reply, push or ping), splitting batched frames."""
        while not self.inbox:
            async with asyncio.timeout(TIMEOUT_S):
                frame = await self.ws.recv()
            text = frame.decode() if isinstance(frame, bytes) else frame
            self.inbox.extend(json.loads(line) for line in text.split("\n") if line.strip())
        return self.inbox.pop(0)

    async def reply(self, cmd_id: int) -> dict[str, Any]:
        """Wait for the reply to ``cmd_id``; pushes and pings before it are kept in ``seen``."""
        while True:
            message = await self.receive()
            if message.get("id") == cmd_id:
                return message
            self.seen.append(message)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.reply(await self.send(method, params))

    async def connect(self, token: str, **params: Any) -> dict[str, Any]:
        return await self.call("connect", {"token": token, **params})

    async def push(self) -> dict[str, Any]:
        """The next push, skipping pings."""
        while self.seen:
            message = self.seen.pop(0)
            if "push" in message:
                return dict(message["push"])
        while True:
            message = await self.receive()
            if "push" in message:
                return dict(message["push"])

    async def closed(self) -> tuple[int, str]:
        """Wait until the server closes the connection; return (code, reason)."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is None:
                return 1006, ""
            return exc.rcvd.code, exc.rcvd.reason
        raise AssertionError("unreachable")
