"""This node among the gateway replicas: who else is alive, and questions put to all of them.

Every node announces itself on the broker's control channel when it starts (asking the others
to answer at once, so that a new node knows its peers within one round trip), then every
``heartbeat_interval_s``, and says goodbye when it shuts down. A peer not heard of for three
intervals counts as gone.

A *survey* asks every node the same question (``op`` and ``args``) and gathers their answers:
this node answers itself without the broker, and the survey waits for every live peer, or until
``timeout_s``, whichever comes first. The server API's ``info`` and ``channels`` are surveys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from wirehub.broker.base import Broker
from wirehub.errors import BrokerUnavailable
from wirehub.tasks import cancel_all, cancel_and_wait
from wirehub.types import JSON, ControlMessage, NodeAlive, NodeGone, Survey, SurveyReply

__all__ = ["Replicas"]

logger = logging.getLogger(__name__)

MISSED_HEARTBEATS = 3
"""A peer not heard of for this many heartbeat intervals counts as gone."""

Answer = Callable[[str, JSON], JSON]
"""How this node answers a survey: ``answer(op, args)``, synchronous, on the event loop."""


class _Survey:
    __slots__ = ("answers", "complete", "waiting_for")

    def __init__(self, waiting_for: set[str]) -> None:
        self.answers: dict[str, JSON] = {}
        self.waiting_for = waiting_for
        self.complete = asyncio.Event()
        if not waiting_for:
            self.complete.set()

    def add(self, node: str, payload: JSON) -> None:
        self.answers[node] = payload
        self.waiting_for.discard(node)
        if not self.waiting_for:
            self.complete.set()


@dataclass(eq=False)
class Replicas:
    node_id: str
    broker: Broker
    answer: Answer
    _: KW_ONLY
    heartbeat_interval_s: float
    survey_timeout_s: float
    clock: Callable[[], float] = time.monotonic
    _peers: dict[str, float] = field(default_factory=dict, init=False)
    """Other nodes, by id, with when they were last heard of."""
    _surveys: dict[str, _Survey] = field(default_factory=dict, init=False)
    _heartbeat: asyncio.Task[None] | None = field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def start(self) -> None:
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def close(self) -> None:
        await cancel_and_wait(self._heartbeat)
        self._heartbeat = None
        await cancel_all(self._tasks)
        # A goodbye spares the others a survey timeout; a node that crashes cannot say it.
        with contextlib.suppress(BrokerUnavailable, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.broker.publish_control(NodeGone(self.node_id))

    def peers(self) -> list[str]:
        """The other nodes heard of recently enough to count as alive."""
        oldest = self.clock() - MISSED_HEARTBEATS * self.heartbeat_interval_s
        for node in [node for node, seen in self._peers.items() if seen < oldest]:
            del self._peers[node]
        return list(self._peers)

    async def survey(self, op: str, args: JSON = None) -> dict[str, JSON]:
        """Every live node's answer to ``op``, by node id, this node's included.

        A peer that does not answer within the timeout is left out. Raises ``BrokerUnavailable``
        when the question cannot reach the other nodes.
        """
        survey_id = uuid.uuid4().hex
        pending = _Survey(set(self.peers()))
        self._surveys[survey_id] = pending
        try:
            await self.broker.publish_control(Survey(self.node_id, survey_id, op, args))
            pending.add(self.node_id, self.answer(op, args))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.survey_timeout_s):
                    await pending.complete.wait()
            if pending.waiting_for:
                logger.warning("survey incomplete", extra={"op": op, "missing": sorted(pending.waiting_for)})
            return pending.answers
        finally:
            del self._surveys[survey_id]

    def on_control(self, message: ControlMessage) -> None:
        """A control message about nodes (any other kind is ignored); never this node's own."""
        match message:
            case NodeAlive(origin=origin, hello=hello):
                self._peers[origin] = self.clock()
                if hello:
                    self._spawn(self.broker.publish_control(NodeAlive(self.node_id)))
            case NodeGone(origin=origin):
                self._peers.pop(origin, None)
            case Survey(origin=origin, id=survey_id, op=op, args=args):
                self._peers[origin] = self.clock()
                payload = self.answer(op, args)
                self._spawn(
                    self.broker.publish_control(SurveyReply(self.node_id, survey_id, origin, payload))
                )
            case SurveyReply(origin=origin, id=survey_id, to=to, payload=payload):
                self._peers[origin] = self.clock()
                pending = self._surveys.get(survey_id)
                if to == self.node_id and pending is not None:
                    pending.add(origin, payload)

    async def _beat(self) -> None:
        hello = True
        while True:
            try:
                await self.broker.publish_control(NodeAlive(self.node_id, hello=hello))
                hello = False
            except BrokerUnavailable:
                logger.debug("node heartbeat skipped: broker unavailable")
            await asyncio.sleep(self.heartbeat_interval_s)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await coro
            except BrokerUnavailable:
                logger.debug("control message not sent: broker unavailable")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
