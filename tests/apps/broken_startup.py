"""An app whose startup hook fails: the gateway must not start (``--app tests.apps.broken_startup:app``)."""

from __future__ import annotations

from wirehub import App, Server

app = App()


@app.on_startup
async def open_database(server: Server) -> None:
    raise RuntimeError("database unreachable: db.example:27017")
