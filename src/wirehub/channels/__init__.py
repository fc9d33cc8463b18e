"""Channels: name rules, namespace resolution, and the handler API app developers write."""
