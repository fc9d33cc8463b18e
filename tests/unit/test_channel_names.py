"""Unit tests for ``wirehub.channels.names.parse_channel`` (docs/protocol.md, "Channel names")."""

from __future__ import annotations

import pytest

from wirehub.channels.names import ChannelName, parse_channel
from wirehub.errors import Invalid, LimitExceeded

MAX = 255


def test_parse_channel_has_no_namespace_when_name_is_plain() -> None:
    """A channel without ``:`` belongs to no namespace and is neither private nor user-limited."""
    parsed = parse_channel("news", max_length=MAX)

    assert parsed == ChannelName(full="news", namespace="", private=False, allowed_users=None)


def test_parse_channel_splits_namespace_when_name_has_colon() -> None:
    """``ns:rest`` belongs to namespace ``ns`` and keeps its full name."""
    parsed = parse_channel("chat:room", max_length=MAX)

    assert parsed.full == "chat:room"
    assert parsed.namespace == "chat"
    assert parsed.private is False
    assert parsed.allowed_users is None


def test_parse_channel_uses_first_colon_when_name_has_several() -> None:
    """The namespace is the part before the first ``:``."""
    parsed = parse_channel("chat:room:sub:topic", max_length=MAX)

    assert parsed.namespace == "chat"
    assert parsed.full == "chat:room:sub:topic"


def test_parse_channel_has_empty_namespace_when_name_starts_with_colon() -> None:
    """``:x`` has an empty namespace part, the same as a channel without namespace."""
    assert parse_channel(":x", max_length=MAX).namespace == ""


def test_parse_channel_marks_private_when_name_starts_with_dollar() -> None:
    """``$ns:x`` is private and belongs to namespace ``ns``."""
    parsed = parse_channel("$ns:x", max_length=MAX)

    assert parsed.private is True
    assert parsed.namespace == "ns"
    assert parsed.full == "$ns:x"
    assert parsed.allowed_users is None


def test_parse_channel_has_no_namespace_when_private_name_has_no_colon() -> None:
    """``$chan`` is private and has no namespace."""
    parsed = parse_channel("$chan", max_length=MAX)

    assert parsed.private is True
    assert parsed.namespace == ""


def test_parse_channel_is_not_private_when_dollar_is_not_first() -> None:
    """Only a leading ``$`` makes a channel private."""
    parsed = parse_channel("ns:$x", max_length=MAX)

    assert parsed.private is False
    assert parsed.namespace == "ns"


def test_parse_channel_lists_users_when_name_is_user_limited() -> None:
    """``dialog#42,43`` is limited to users 42 and 43 and has no namespace."""
    parsed = parse_channel("dialog#42,43", max_length=MAX)

    assert parsed.allowed_users == frozenset({"42", "43"})
    assert parsed.namespace == ""
    assert parsed.private is False


def test_parse_channel_lists_user_when_namespaced_channel_is_user_limited() -> None:
    """``ns:room#alice`` belongs to ``ns`` and is limited to ``alice``."""
    parsed = parse_channel("ns:room#alice", max_length=MAX)

    assert parsed.namespace == "ns"
    assert parsed.allowed_users == frozenset({"alice"})


def test_parse_channel_keeps_full_name_when_user_order_differs() -> None:
    """``dialog#42,43`` and ``dialog#43,42`` allow the same users but are different channels."""
    first = parse_channel("dialog#42,43", max_length=MAX)
    second = parse_channel("dialog#43,42", max_length=MAX)

    assert first.allowed_users == second.allowed_users
    assert first.full != second.full
    assert first != second


def test_parse_channel_uses_last_hash_when_name_has_several() -> None:
    """The user list is what follows the last ``#``."""
    assert parse_channel("ns:a#b#1,2", max_length=MAX).allowed_users == frozenset({"1", "2"})


def test_parse_channel_skips_empty_users_when_list_has_extra_commas() -> None:
    """Empty entries in the user list are ignored."""
    assert parse_channel("dialog#,42,,43,", max_length=MAX).allowed_users == frozenset({"42", "43"})


def test_parse_channel_allows_nobody_when_user_list_is_empty() -> None:
    """``dialog#`` is user-limited with an empty list, not an open channel."""
    assert parse_channel("dialog#", max_length=MAX).allowed_users == frozenset()


def test_parse_channel_combines_private_namespace_and_users() -> None:
    """``$ns:room#7`` is private, in namespace ``ns``, and limited to user 7."""
    parsed = parse_channel("$ns:room#7", max_length=MAX)

    assert parsed == ChannelName(
        full="$ns:room#7", namespace="ns", private=True, allowed_users=frozenset({"7"})
    )


def test_parse_channel_accepts_name_when_exactly_max_length() -> None:
    """A name of exactly ``max_length`` characters is accepted."""
    name = "a" * MAX

    assert parse_channel(name, max_length=MAX).full == name


def test_parse_channel_raises_limit_exceeded_when_too_long() -> None:
    """A name longer than ``max_length`` fails with 106."""
    with pytest.raises(LimitExceeded) as excinfo:
        parse_channel("a" * (MAX + 1), max_length=MAX)

    assert excinfo.value.code == 106


def test_parse_channel_raises_limit_exceeded_when_longer_than_custom_max() -> None:
    """The limit is the one passed by the caller."""
    assert parse_channel("abcde", max_length=5).full == "abcde"
    with pytest.raises(LimitExceeded):
        parse_channel("abcdef", max_length=5)


@pytest.mark.parametrize(
    "name",
    [
        "café",
        "chat:ünïcode",
        "news\u00a0today",
        "chat:😀",
        "a b",
        "chat: room",
        " leading",
        "tab\there",
        "new\nline",
        "nul\x00byte",
        "bell\x07",
        "del\x7f",
        "star*",
        "amp&ersand",
        "slash/path",
        "ns:a/b",
        "$ns:*",
    ],
)
def test_parse_channel_raises_invalid_when_name_has_forbidden_characters(name: str) -> None:
    """Non-ASCII, spaces, control characters and the reserved ``*&/`` fail with 107."""
    with pytest.raises(Invalid) as excinfo:
        parse_channel(name, max_length=MAX)

    assert excinfo.value.code == 107


@pytest.mark.parametrize("name", ["a-b_c.d", "ns:room-1", "x!~@%^()+=[]{}|;'\"<>?`"])
def test_parse_channel_accepts_printable_ascii_punctuation(name: str) -> None:
    """Printable ASCII other than space and ``*&/`` is allowed."""
    assert parse_channel(name, max_length=MAX).full == name
