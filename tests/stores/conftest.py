"""Real PostgreSQL servers for the store tests, started once per session, stopped after:
one plain, and one that takes TCP connections over TLS only (a trustme CA's certificate)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
