"""The MongoDB URL and driver options the store reads: write concern, read preference, URL query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from pymongo import ReadPreference, WriteConcern
from pymongo.read_preferences import _ServerMode

__all__ = ["read_preference_for", "url_options", "write_concern_for"]

READ_PREFERENCES: dict[str, _ServerMode] = {
    "primary": ReadPreference.PRIMARY,
    "primarypreferred": ReadPreference.PRIMARY_PREFERRED,
    "secondary": ReadPreference.SECONDARY,
    "secondarypreferred": ReadPreference.SECONDARY_PREFERRED,
    "nearest": ReadPreference.NEAREST,
}


def write_concern_for(value: str) -> WriteConcern:
    """``majority`` (the default), a number of members (journaled), or a tag set name."""
    if value.isdigit():
        members = int(value)
        if members < 1:
            raise ValueError("store.write_concern: 0 would not acknowledge writes; use 1 or more")
        return WriteConcern(w=members, j=True)
    if not value:
        raise ValueError("store.write_concern: must not be empty")
    return WriteConcern(w=value)


def read_preference_for(value: str) -> _ServerMode:
    """One of MongoDB's read preference modes, case-insensitively."""
    try:
        return READ_PREFERENCES[value.lower()]
    except KeyError:
        raise ValueError(f"store.read_preference: unknown mode {value!r}") from None


def url_options(url: str) -> dict[str, str]:
    """The URL's query options with lower-cased names (no DNS lookups, unlike pymongo's parser)."""
    return {name.lower(): value for name, value in parse_qsl(urlsplit(url).query)}
