"""The URL settings (``broker.url``, ``store.url``): the schemes accepted, and how a URL is logged."""

import re

__all__ = ["BROKER_SCHEMES", "STORE_SCHEMES", "redacted_url"]

BROKER_SCHEMES = ("memory://", "redis://", "rediss://", "unix://")
STORE_SCHEMES = ("sqlite:///", "memory://", "mongodb://", "mongodb+srv://")


def redacted_url(url: str) -> str:
    """``url`` with the password of its userinfo (``scheme://user:password@host``) masked."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)[^@/]*@", r"\1***@", url, flags=re.IGNORECASE)
