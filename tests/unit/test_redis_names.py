"""Unit tests for the Redis names of ``wirehub.broker.redis``: prefixes and Redis Cluster hash tags."""

from __future__ import annotations

import pytest

from wirehub.broker.redis import KeySpace, channel_slot, hash_tag, slot_of

CHANNELS = ["chat:room", "news", "$private:x", "dialog#alice,bob", "a{b}c", "}x", "{", "x}{y", "{}"]


@pytest.mark.parametrize("channel", CHANNELS)
def test_keyspace_puts_channel_and_presence_keys_in_one_slot(channel: str) -> None:
    """A channel's pub/sub channel and its four presence keys hash to one slot: channel_slot."""
    keys = KeySpace("app")
    names = [keys.channel(channel), *keys.presence(channel)]
    assert {slot_of(name) for name in names} == {channel_slot(channel)}
    assert all(name.startswith("app:") for name in names)
    assert len(set(names)) == 5


def test_keyspace_spreads_channels_over_slots() -> None:
    """Different channels land on different slots (the channel is the hash tag, not the prefix)."""
    slots = {channel_slot(f"chat:{i}") for i in range(100)}
    assert len(slots) > 90


def test_hash_tag_replaces_channel_with_digest_when_it_holds_a_brace() -> None:
    """Braces would end or empty the tag: such channels get '/' and a digest, distinct per channel."""
    assert hash_tag("chat:room") == "chat:room"
    tags = {hash_tag(channel) for channel in ["a{b}c", "}x", "{", "x}{y", "{}"]}
    assert len(tags) == 5
    assert all(tag.startswith("/") and "{" not in tag and "}" not in tag for tag in tags)


def test_keyspace_keeps_deployments_and_control_apart() -> None:
    """Prefixes separate deployments; the control channel is none of the channels' names."""
    assert KeySpace("a").channel("x") != KeySpace("b").channel("x")
    keys = KeySpace("app")
    assert keys.control not in {keys.channel(c) for c in [*CHANNELS, "control", "app:control"]}
