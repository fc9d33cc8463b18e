"""Unit tests for ``wirehub.protocol.session`` (docs/protocol.md, "Connection state")."""

from __future__ import annotations

import pytest

from wirehub.errors import DisconnectBadRequest
from wirehub.protocol.frames import (
    Command,
    ConnectRequest,
    Pong,
    PublishRequest,
    SendRequest,
    SubscribeRequest,
    UnknownMethod,
)
from wirehub.protocol.session import Session, State

BAD_REQUEST_CODE = 3501

CONNECT = Command(1, "connect", ConnectRequest())
SUBSCRIBE = Command(2, "subscribe", SubscribeRequest("chat:1"))
PONG = Command(0, "", Pong())

NON_CONNECT_COMMANDS = [
    SUBSCRIBE,
    Command(3, "publish", PublishRequest("chat:1", 1)),
    Command(0, "send", SendRequest(1)),
    Command(4, "", UnknownMethod()),
]


def _rejected(session: Session, command: Command) -> None:
    with pytest.raises(DisconnectBadRequest) as info:
        session.admit(command)
    assert info.value.code == BAD_REQUEST_CODE


def _connected() -> Session:
    session = Session()
    session.admit(CONNECT)
    session.connect_succeeded()
    return session


def test_session_starts_connecting_without_outstanding_ping() -> None:
    """A new session waits for connect and has no ping outstanding."""
    session = Session()
    assert session.state is State.CONNECTING
    assert not session.ping_outstanding


def test_session_admits_connect_when_first() -> None:
    """Connect is the one command allowed first."""
    session = Session()
    session.admit(CONNECT)
    assert session.state is State.CONNECTING


@pytest.mark.parametrize("command", NON_CONNECT_COMMANDS, ids=lambda c: c.method or "unknown")
def test_session_rejects_command_when_before_connect(command: Command) -> None:
    """Any other command before connect closes with 3501."""
    _rejected(Session(), command)


def test_session_admits_commands_when_connected() -> None:
    """After a successful connect every non-connect command is admitted."""
    session = _connected()
    assert session.state is State.CONNECTED
    for command in NON_CONNECT_COMMANDS:
        session.admit(command)


def test_session_rejects_second_connect_when_connected() -> None:
    """A second connect on an authenticated connection closes with 3501."""
    _rejected(_connected(), Command(5, "connect", ConnectRequest()))


def test_session_admits_subscribe_in_same_frame_when_connect_succeeded_first() -> None:
    """A subscribe right after a successful connect in the same frame sees an authenticated connection."""
    session = Session()
    session.admit(CONNECT)
    session.connect_succeeded()
    session.admit(SUBSCRIBE)


@pytest.mark.parametrize(
    "command",
    [*NON_CONNECT_COMMANDS, Command(5, "connect", ConnectRequest())],
    ids=lambda c: c.method or "unknown",
)
def test_session_rejects_any_command_when_connect_failed(command: Command) -> None:
    """After a failed connect the next command, even a retried connect, closes with 3501."""
    session = Session()
    session.admit(CONNECT)
    session.connect_failed()
    assert session.state is State.FAILED
    _rejected(session, command)


def test_session_rejects_pong_when_no_ping_outstanding() -> None:
    """A stray ``{}`` closes with 3501 (docs/protocol.md, "Ping and pong")."""
    _rejected(_connected(), PONG)


def test_session_rejects_pong_when_before_connect() -> None:
    """A ``{}`` as the first command is a stray pong."""
    _rejected(Session(), PONG)


def test_session_admits_pong_when_ping_outstanding() -> None:
    """A pong answers the outstanding ping and clears it."""
    session = _connected()
    assert session.ping_sent()
    session.admit(PONG)
    assert not session.ping_outstanding


def test_session_rejects_second_pong_when_one_ping_sent() -> None:
    """Each ping is answered by exactly one pong; a second one is stray."""
    session = _connected()
    session.ping_sent()
    session.admit(PONG)
    _rejected(session, PONG)


def test_session_ping_sent_returns_false_when_ping_outstanding() -> None:
    """A ping while the previous one is unanswered reports the pong as late."""
    session = _connected()
    assert session.ping_sent()
    assert not session.ping_sent()
    assert session.ping_outstanding


def test_session_ping_sent_returns_true_when_previous_ping_answered() -> None:
    """Once the pong arrived, the next ping is a fresh one."""
    session = _connected()
    assert session.ping_sent()
    session.admit(PONG)
    assert session.ping_sent()
    assert session.ping_outstanding


def test_session_keeps_state_when_pong_admitted() -> None:
    """A pong changes only the ping bookkeeping, not the connection state."""
    session = _connected()
    session.ping_sent()
    session.admit(PONG)
    assert session.state is State.CONNECTED
    session.admit(SUBSCRIBE)
