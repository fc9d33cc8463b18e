"""Static files on the public HTTP port (``http.static_dir``), so a web app and the ``/auth/*``
endpoints it calls share one origin.

Only ``GET`` and ``HEAD`` of files inside the directory: ``/`` and a directory serve their
``index.html``; a path that leaves the directory (``..``, a symbolic link pointing out, an
encoded slash) or names nothing is 404, the same answer as a missing file, so nothing outside is
revealed. Files are sent with ``Cache-Control: no-cache`` (the browser revalidates with the
modification time each time: a redeployed app is picked up at once).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["StaticFiles"]

# The system's MIME table may lack these or name an old type; module scripts need a JavaScript one.
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
}


class StaticFiles:
    def __init__(self, directory: str) -> None:
        self.root = Path(directory).resolve()

    def install(self, app: web.Application) -> None:
        """Add the catch-all route; call it after every other route, which take precedence."""
        app.router.add_get("/{path:.*}", self._serve)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        file = self._resolve(request.match_info["path"])
        if file is None:
            raise web.HTTPNotFound(text="not found\n")
        headers = {"Cache-Control": "no-cache"}
        content_type = CONTENT_TYPES.get(file.suffix.lower())
        if content_type is not None:
            headers["Content-Type"] = content_type
        return web.FileResponse(file, headers=headers)

    def _resolve(self, path: str) -> Path | None:
        if "\\" in path or "\0" in path:
            return None
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None
