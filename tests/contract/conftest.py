"""Fixtures of the store contracts: which implementation a test runs on, and its MongoDB database."""

from __future__ import annotations

import pytest

from tests.mongo_helpers import database_url

STORE_KINDS = ["sqlite-file", "sqlite-memory", "mongo"]
"""Every store implementation: SQLite on a file and in memory, and MongoDB."""


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def mongo_url(store_kind: str, request: pytest.FixtureRequest) -> str:
    """For "mongo": the test's own database on the session's MongoDB (started on first use)."""
    if store_kind != "mongo":
        return ""
    base: str = request.getfixturevalue("mongodb_url")
    name: str = request.getfixturevalue("unique_name")
    return database_url(base, name)
