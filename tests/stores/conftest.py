"""Real PostgreSQL servers for the store tests, started once per session, stopped after:
one plain, and one that takes TCP connections over TLS only (a trustme CA's certificate)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actorwork.testing.stores import TemporaryPostgres, postgres_binaries
from tests.stores.fleet import Fleet


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


@pytest.fixture(scope="session")
def ca() -> Any:
    """A throwaway certificate authority (trustme)."""
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server(ca: Any) -> Iterator[TemporaryPostgres]:
    """A server with ``ssl=on`` and a certificate ``ca`` issued for 127.0.0.1, refusing
    TCP without TLS; skipped without binaries."""
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs it")
    pytest.importorskip("asyncpg", reason="the PostgreSQL store needs asyncpg (the test extra)")
    issued = ca.issue_cert("127.0.0.1", "localhost")
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    server = TemporaryPostgres(tls=(chain, issued.private_key_pem.bytes()))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["postgresql", "sqlite"])
def fleet(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Fleet, tuple[TemporaryPostgres | None, str]]]:
    """A :class:`~tests.stores.fleet.Fleet` (not started) on PostgreSQL (its password in a
    file) and on SQLite, with the server and database name the store lives in."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        database = server.create_database("follow")
        secret = tmp_path / "store-password"
        secret.write_text(server.password)
        secret.chmod(0o600)
        made = Fleet(
            tmp_path,
            server.url(database, password=False),
            f'store_password_file = "{secret}"',
        )
        yield made, (server, database)
    else:
        made = Fleet(tmp_path, str(tmp_path / "jobs.db"))
        yield made, (None, "")
    made.stop_all()
