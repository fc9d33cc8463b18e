"""A JWKS endpoint for tests: a real aiohttp server on a free loopback port.

The test changes ``document`` (rotation), ``status`` (an endpoint in trouble) or closes ``gate``
(a fetch that hangs until released), and waits on ``wait_for_requests`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

TIMEOUT_S = 10.0
PATH = "/.well-known/jwks.json"


def jwk_of(
    key: RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey, kid: str, **fields: Any
) -> dict[str, Any]:
    """The public JWK of ``key`` under ``kid``, with extra members such as ``alg`` or ``use``."""
    jwk: dict[str, Any]
    if isinstance(key, RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    return jwk | {"kid": kid} | fields


class JwksServer:
    """Serves ``{"keys": [...]}`` at ``url``; counts requests."""

    def __init__(self, keys: list[dict[str, Any]] | None = None) -> None:
        self.document: Any = {"keys": list(keys or [])}
        self.status = 200
        self.gate = asyncio.Event()
        self.gate.set()
        self.requests = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{PATH}"

    async def close(self) -> None:
        self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def set_keys(self, keys: list[dict[str, Any]]) -> None:
        self.document = {"keys": keys}

    async def wait_for_requests(self, count: int) -> None:
        """Return once at least ``count`` requests have arrived in total."""
        async with asyncio.timeout(TIMEOUT_S), self._changed:
            await self._changed.wait_for(lambda: self.requests >= count)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        async with self._changed:
            self.requests += 1
            self._changed.notify_all()
        await self.gate.wait()
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        return web.json_response(self.document)
