"""Every store passes the store conformance suite (:mod:`actorwork.testing.stores`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from actorwork.testing.stores import (
    STORE_CHECKS,
    PostgreSQLHarness,
    SQLiteHarness,
    StoreHarness,
    TemporaryPostgres,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> StoreHarness:
    if request.param == "sqlite":
        return SQLiteHarness(tmp_path)
    server: TemporaryPostgres = request.getfixturevalue("postgres_server")
    return PostgreSQLHarness(server)


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_store_conformance(
    check: Callable[[StoreHarness], Awaitable[None]], harness: StoreHarness
) -> None:
    await check(harness)
