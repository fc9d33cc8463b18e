"""Fixtures of the integration tests that drive gateways with raw clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.helpers import Clients


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[Clients]:
    """Raw clients for one test, on the module's event loop; closed when the test ends."""
    opened = Clients()
    yield opened
    await opened.close_all()
