"""The bare baseline of the benchmark suite: the least a Python room server on ``websockets`` does.

Rooms of connections and ``websockets.broadcast()`` (each payload framed once, written to every
member's transport), on the new asyncio API, without compression or keepalive pings. wirehub
does far more (authentication, channels, ordering, limits); this shows what the same library
costs at the minimum, so the suite reports wirehub's figures as ratios to it.

Protocol, text frames (``bench/node/lib/protocols.js`` speaks it)::

    join ROOM          -> joined ROOM
    pub ROOM PAYLOAD   -> PAYLOAD to every member of ROOM (the sender too, if it is a member)

Run: ``python -m bench.bare_server --port PORT``; it prints ``listening on ws://HOST:PORT`` once ready.
"""

from __future__ import annotations

import argparse
import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


class Rooms:
    def __init__(self) -> None:
        self.members: dict[str, set[ServerConnection]] = {}

    async def serve(self, ws: ServerConnection) -> None:
        joined: list[str] = []
        try:
            async for message in ws:
                if not isinstance(message, str):
                    continue  # the generator sends text frames only
                command, _, rest = message.partition(" ")
                if command == "pub":
                    room, _, payload = rest.partition(" ")
                    members = self.members.get(room)
                    if members:
                        broadcast(members, payload)
                elif command == "join":
                    self.members.setdefault(rest, set()).add(ws)
                    joined.append(rest)
                    await ws.send(f"joined {rest}")
        except ConnectionClosed:
            pass
        finally:
            for room in joined:
                members = self.members[room]
                members.discard(ws)
                if not members:
                    del self.members[room]


async def main(host: str, port: int) -> None:
    rooms = Rooms()
    async with serve(rooms.serve, host, port, compression=None, ping_interval=None) as server:
        print(f"listening on ws://{host}:{port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
