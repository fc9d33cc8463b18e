"""OriginPolicy: which browser origins may open a WebSocket or call ``/auth/*`` from a page.

Pure code: the ``Origin`` and ``Host`` headers in, a verdict out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PORTS", "OriginPolicy", "is_loopback_host"]


class OriginPolicy:
    """Which browser ``Origin`` headers may open a WebSocket or call ``/auth/*`` from a page.

    A request without an ``Origin`` (a native client; an empty header counts as none) always
    passes: the policy exists to stop a page on another site from using a visitor's browser
    against this server (cross-site WebSocket hijacking), and only browsers send the header.

    With no patterns configured (the default), a browser origin passes when it is the request's
    own (the origin's host and port equal the ``Host`` header), or when it is a loopback origin
    (``localhost``, ``127.0.0.0/8``, ``[::1]``, any port) and the listener itself is on a loopback
    address only, so that only pages on this machine could reach it anyway. Patterns replace that
    rule: ``*`` matches any run of characters, so ``*`` alone allows every origin and
    ``https://*.example.com`` every subdomain. Matching ignores case.
    """

    __slots__ = ("_allow_all", "_loopback_listener", "_pattern", "_patterns_set")

    def __init__(self, patterns: Iterable[str], *, loopback_listener: bool = False) -> None:
        patterns = [p.lower() for p in patterns]
        self._patterns_set = bool(patterns)
        self._allow_all = "*" in patterns
        self._loopback_listener = loopback_listener
        self._pattern: re.Pattern[str] | None = None
        if patterns:
            alternatives = ("(?:" + ".*".join(map(re.escape, p.split("*"))) + ")" for p in patterns)
            self._pattern = re.compile("|".join(alternatives), re.DOTALL)

    def allows(self, origin: str | None, host: str | None = None) -> bool:
        """Whether a request with this ``Origin`` (None: none) to this ``Host`` may go on."""
        if not origin or self._allow_all:
            return True
        if self._patterns_set:
            return self._pattern is not None and self._pattern.fullmatch(origin.lower()) is not None
        parsed = _origin_address(origin)
        if parsed is None:
            return False
        scheme, origin_host, origin_port = parsed
        if host and _host_address(host, DEFAULT_PORTS[scheme]) == (origin_host, origin_port):
            return True
        return self._loopback_listener and is_loopback_host(origin_host)


DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(host: str) -> bool:
    """``localhost`` (and its subdomains), or an IP address in 127.0.0.0/8 or ``::1``."""
    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin_address(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a serialized origin (``scheme://host[:port]``); None if it is not one."""
    try:
        parts = urlsplit(origin.lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return parts.scheme, _bracketed(parts.hostname), port if port is not None else DEFAULT_PORTS[parts.scheme]


def _host_address(host: str, default_port: int) -> tuple[str, int] | None:
    """``(host, port)`` of a ``Host`` header; the port defaults to the origin scheme's."""
    try:
        parts = urlsplit("//" + host.lower())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return _bracketed(parts.hostname), port if port is not None else default_port


def _bracketed(hostname: str) -> str:
    # urlsplit drops the brackets of an IPv6 literal: put them back so both sides compare alike.
    return f"[{hostname}]" if ":" in hostname else hostname
