"""A real PostgreSQL server for the store tests: started once per session, stopped after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actorwork.testing.stores import TemporaryPostgres, postgres_binaries


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """initdb in a temporary directory, a free port on 127.0.0.1; skipped without binaries."""
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs it")
    pytest.importorskip("asyncpg", reason="the PostgreSQL store needs asyncpg (the test extra)")
    server = TemporaryPostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()
