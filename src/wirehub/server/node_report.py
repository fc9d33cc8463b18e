"""What a node reports of itself when the replicas survey it: its figures and its channels.

The server API's ``info`` and ``channels`` ask every replica (this one included) through a
survey; each answers from here.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from typing import TYPE_CHECKING

from wirehub.api import NodeStats
from wirehub.types import JSON
from wirehub.version import __version__

if TYPE_CHECKING:
    from wirehub.server.hub import Hub
    from wirehub.server.node import Node

__all__ = ["answer_survey", "channel_counts", "node_stats"]

# The node's own logger: an unknown survey is the node's to report.
logger = logging.getLogger("wirehub.server.node")


def answer_survey(node: Node, op: str, args: JSON) -> JSON:
    match op:
        case "info":
            return node_stats(node).to_wire()
        case "channels":
            pattern = args.get("pattern", "") if isinstance(args, dict) else ""
            if not isinstance(pattern, str):
                pattern = ""
            counts: dict[str, JSON] = dict(channel_counts(node.hub, pattern))
            return counts
    logger.warning("unknown survey", extra={"op": op})
    return None


def node_stats(node: Node) -> NodeStats:
    """This node's figures, as the server API's ``info`` lists them."""
    return NodeStats(
        uid=node.id,
        name=node.name,
        version=__version__,
        num_clients=node.client_count,
        num_users=node.user_count,
        num_subs=node.hub.subscription_total,
        num_channels=node.hub.channel_count,
        uptime_s=int(time.monotonic() - node.started_at),
        pid=os.getpid(),
        rss_bytes=_rss_bytes(),
    )


def channel_counts(hub: Hub, pattern: str = "") -> dict[str, int]:
    """Channels with subscribers on this node, and how many, optionally matching a glob."""
    counts: dict[str, int] = {}
    for channel in hub.channels:
        if pattern and not fnmatch.fnmatchcase(channel, pattern):
            continue
        count = hub.subscriber_count(channel)
        if count:
            counts[channel] = count
    return counts


def _rss_bytes() -> int:
    """The process's resident memory now (Linux), or its peak where /proc is not there."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
