"""The origin policy: the default rule (native, same-origin, loopback on a loopback listener) and patterns."""

from __future__ import annotations

import pytest

from wirehub.server.origins import OriginPolicy, is_loopback_host


@pytest.mark.parametrize("origin", [None, ""])
def test_requests_without_origin_always_pass(origin: str | None) -> None:
    assert OriginPolicy([]).allows(origin, "gw.example:8000")
    assert OriginPolicy(["https://app.example"]).allows(origin, "gw.example:8000")


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://chat.example", "chat.example"),
        ("https://chat.example", "chat.example:443"),
        ("http://chat.example", "CHAT.example:80"),
        ("http://chat.example:8001", "chat.example:8001"),
        ("http://[2001:db8::1]:8001", "[2001:db8::1]:8001"),
    ],
)
def test_default_admits_the_requests_own_origin(origin: str, host: str) -> None:
    assert OriginPolicy([], loopback_listener=False).allows(origin, host)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://chat.example", "chat.example:8001"),  # another port
        ("http://chat.example", "chat.example:443"),
        ("https://evil.example", "chat.example"),
        ("https://chat.example.evil.example", "chat.example"),
        ("null", "chat.example"),
        ("https://chat.example/path", "chat.example"),
        ("https://user@chat.example", "chat.example"),
        ("ftp://chat.example", "chat.example"),
        ("http://chat.example:99999", "chat.example:99999"),
        ("https://chat.example", None),
        ("https://chat.example", ""),
    ],
)
def test_default_refuses_other_origins(origin: str, host: str | None) -> None:
    assert not OriginPolicy([], loopback_listener=False).allows(origin, host)


@pytest.mark.parametrize(
    "origin", ["http://localhost:9000", "http://127.0.0.1:5173", "http://127.1.2.3", "http://[::1]:3000"]
)
def test_loopback_origins_pass_only_while_the_listener_is_on_loopback(origin: str) -> None:
    assert OriginPolicy([], loopback_listener=True).allows(origin, "127.0.0.1:8000")
    assert not OriginPolicy([], loopback_listener=False).allows(origin, "gw.example:8000")


def test_loopback_listener_still_refuses_remote_pages() -> None:
    policy = OriginPolicy([], loopback_listener=True)
    for origin in ("https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.evil.example"):
        assert not policy.allows(origin, "127.0.0.1:8000"), origin


def test_patterns_replace_the_default_rule() -> None:
    policy = OriginPolicy(["https://*.example.com"], loopback_listener=True)
    assert policy.allows("https://APP.example.com", "127.0.0.1:8000")
    assert not policy.allows("http://localhost:9000", "127.0.0.1:8000")
    assert not policy.allows("http://127.0.0.1:8000", "127.0.0.1:8000")  # same origin, not listed
    assert OriginPolicy(["*"]).allows("https://anything.example", None)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),  # noqa: S104 - a host name under test, not a bind
        ("::", False),
        ("192.168.1.2", False),
        ("gw.example", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


# --------------------------------------------------------------------------- patterns


@pytest.mark.parametrize("origin", [None, ""])
def test_origin_policy_allows_missing_origin_when_no_patterns(origin: str | None) -> None:
    """Without patterns, only handshakes without an Origin (non-browser clients) pass."""
    assert OriginPolicy(()).allows(origin)


@pytest.mark.parametrize("origin", ["https://example.com", "null", "http://127.0.0.1:8000"])
def test_origin_policy_refuses_every_origin_when_no_patterns(origin: str) -> None:
    """Without patterns, no Host to compare with and not on loopback, any browser origin is
    refused (the default rule is tested above)."""
    assert not OriginPolicy(()).allows(origin)


def test_origin_policy_allows_everything_when_star() -> None:
    """``*`` alone allows every origin."""
    policy = OriginPolicy(["*"])
    assert policy.allows("https://anything.example")
    assert policy.allows("null")
    assert policy.allows(None)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM", True),
        ("https://app.example.com.evil.net", False),
        ("https://evil.net/https://app.example.com", False),
        ("http://app.example.com", False),
        ("https://appxexample.com", False),
        ("https://eu.example.org", True),
        ("https://a.b.example.org", True),
        ("https://example.org", False),
        ("https://eu.example.org:8443", False),
    ],
)
def test_origin_policy_matches_whole_origin_with_globs(origin: str, allowed: bool) -> None:
    """Patterns match the whole origin, case-insensitively; ``*`` globs and ``.`` is literal."""
    policy = OriginPolicy(["https://app.example.com", "https://*.EXAMPLE.org"])
    assert policy.allows(origin) is allowed
