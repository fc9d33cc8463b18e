"""A JSON Web Key Set fetched over HTTP: token keys by ``kid``, refreshed without blocking the loop.

``JwksKeySet`` owns the keys of one JWKS URL. ``start()`` runs a background task that fetches the
set at once and then every ``refresh_interval_s`` (with capped, jittered backoff while the
endpoint fails). A token naming a ``kid`` the set does not hold triggers one awaited refetch, so
a key the issuer just added works on its first use; such refetches happen at most once per
``min_refresh_interval_s``, so tokens with made-up ``kid`` values cannot turn the gateway into a
flood of requests to the key server. Concurrent lookups share one fetch.

A failed fetch keeps the keys of the last good one. While the set cannot be fetched, a token
whose key is unknown fails with ``KeysUnavailable`` (temporary: the client retries), never with
an invalid-token error that would stop it for good.

Only signing keys of kty ``RSA``, ``EC`` (P-256, P-384, P-521) and ``OKP`` (Ed25519) are kept:
a symmetric (``oct``) key in a public key set would let anyone who reads the set sign tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final, TypeAlias

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from wirehub.errors import KeysUnavailable, TokenError
from wirehub.tasks import cancel_and_wait

__all__ = ["Jwk", "JwksKeySet", "PublicKey", "parse_jwks"]

logger = logging.getLogger(__name__)

PublicKey: TypeAlias = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey

MAX_JWKS_BYTES: Final = 1_048_576
"""A key set larger than this is refused: no honest one comes near it."""

_BACKOFF_START_S: Final = 1.0
_BACKOFF_CAP_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Jwk:
    """One public signing key of the set."""

    kid: str
    key: PublicKey
    algorithm: str | None = None
    """The JWK's ``alg`` when it names one; a token must then use exactly that algorithm."""


@dataclass(eq=False)
class JwksKeySet:
    """The keys published at one JWKS URL, by ``kid`` (see the module docstring)."""

    url: str
    _: KW_ONLY
    refresh_interval_s: float = 300.0
    min_refresh_interval_s: float = 5.0
    timeout_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    fetches: int = field(default=0, init=False)
    """How many fetches were started (for tests and metrics)."""
    _keys: Mapping[str, Jwk] = field(default_factory=dict, init=False)
    _fetch: asyncio.Task[None] | None = field(default=None, init=False)
    _last_fetch_started: float = field(default=-float("inf"), init=False)
    _last_fetch_failed: bool = field(default=False, init=False)
    _loop_task: asyncio.Task[None] | None = field(default=None, init=False)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Fetch the set in the background now, then every ``refresh_interval_s``."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._refresh_loop(), name="jwks-refresh")

    async def close(self) -> None:
        for task in (self._loop_task, self._fetch):
            await cancel_and_wait(task, ignore=(Exception,))
        self._loop_task = None
        self._fetch = None

    # ------------------------------------------------------------------ lookups

    def get(self, kid: str) -> Jwk | None:
        """The key named ``kid`` if the set already holds it; never fetches."""
        return self._keys.get(kid)

    async def key(self, kid: str) -> Jwk:
        """The key named ``kid``, refetching the set once if it is unknown.

        Raises ``TokenError`` when the set (freshly fetched, or fetched less than
        ``min_refresh_interval_s`` ago) has no such key, ``KeysUnavailable`` when it cannot be
        fetched.
        """
        jwk = self._keys.get(kid)
        if jwk is not None:
            return jwk
        recently = self.clock() - self._last_fetch_started < self.min_refresh_interval_s
        if self._fetch is None and recently:
            if self._last_fetch_failed:
                raise KeysUnavailable("token keys cannot be fetched")
            raise TokenError("unknown key id")
        await self.refresh()
        jwk = self._keys.get(kid)
        if jwk is None:
            raise TokenError("unknown key id")
        return jwk

    async def refresh(self) -> None:
        """Fetch the set now, or wait for the fetch already under way; ``KeysUnavailable`` if it fails."""
        fetch = self._fetch
        if fetch is None:
            self._last_fetch_started = self.clock()
            self.fetches += 1
            fetch = self._fetch = asyncio.create_task(self._fetch_once(), name="jwks-fetch")
            fetch.add_done_callback(self._fetch_done)
        # A waiter that is cancelled (its client went away) must not cancel the shared fetch.
        await asyncio.shield(fetch)

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._fetch is task:
            self._fetch = None
        if not task.cancelled():
            task.exception()  # retrieved here, so a fetch nobody waits for any more is not reported

    # ------------------------------------------------------------------ fetching

    async def _refresh_loop(self) -> None:
        backoff = _BACKOFF_START_S
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, KeysUnavailable):
                    logger.exception("jwks refresh failed", extra={"url": self.url})
                delay = min(backoff, self.refresh_interval_s) * random.uniform(0.5, 1.0)  # noqa: S311
                backoff = min(backoff * 2, _BACKOFF_CAP_S)
            else:
                delay = self.refresh_interval_s
                backoff = _BACKOFF_START_S
            await asyncio.sleep(delay)

    async def _fetch_once(self) -> None:
        try:
            body = await self._download()
            keys = parse_jwks(json.loads(body))
        except KeysUnavailable as exc:
            self._last_fetch_failed = True
            logger.warning("jwks fetch failed", extra={"url": self.url, "error": exc.message})
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, UnicodeDecodeError) as exc:
            self._last_fetch_failed = True
            logger.warning("jwks fetch failed", extra={"url": self.url, "error": type(exc).__name__})
            raise KeysUnavailable("token keys cannot be fetched") from exc
        self._last_fetch_failed = False
        if set(keys) != set(self._keys):
            logger.info("jwks keys loaded", extra={"url": self.url, "kids": sorted(keys)})
        self._keys = keys

    async def _download(self) -> bytes:
        async with (
            asyncio.timeout(self.timeout_s),
            aiohttp.ClientSession() as session,
            session.get(self.url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise KeysUnavailable(f"the JWKS endpoint answered {response.status}")
            body = await response.content.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise KeysUnavailable("the JWKS document is too large")
        return body


# --------------------------------------------------------------------------- parsing

_CURVES: Final = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}


def parse_jwks(document: Any) -> dict[str, Jwk]:
    """The usable signing keys of a JWKS document, by ``kid``; unusable entries are skipped.

    Raises ``KeysUnavailable`` when the document is not a key set at all.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeysUnavailable("the JWKS document has no keys list")
    keys: dict[str, Jwk] = {}
    for entry in document["keys"]:
        jwk = _parse_jwk(entry)
        if jwk is not None and jwk.kid not in keys:
            keys[jwk.kid] = jwk
    return keys


def _parse_jwk(entry: Any) -> Jwk | None:
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    kty = entry.get("kty")
    alg = entry.get("alg")
    if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
        return None
    if alg is not None and not isinstance(alg, str):
        return None
    if kty not in ("RSA", "EC", "OKP") or "d" in entry:
        # No symmetric keys, and no private keys: a key set that publishes them is broken.
        return None
    if kty == "EC" and entry.get("crv") not in _CURVES:
        return None
    if kty == "OKP" and entry.get("crv") != "Ed25519":
        return None
    try:
        key = jwt.PyJWK(entry).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey):
        return None
    return Jwk(kid=kid, key=key, algorithm=alg)
