"""TLS to PostgreSQL, chosen in the store URL (libpq's ``sslmode`` and ``sslrootcert``).

A real server started with ``ssl=on`` and a certificate from a throwaway CA (trustme),
allowing TCP connections over TLS only: the store opens and writes through TLS with
the server verified, a URL that turns TLS off is refused by the server, and a server
certificate from another CA is refused by the store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actorwork.errors import StoreError
from actorwork.stores import open_store
from actorwork.stores.base import Persist
from actorwork.testing.stores import TemporaryPostgres, job

pytestmark = pytest.mark.slow

trustme = pytest.importorskip("trustme")


def _url(server: TemporaryPostgres, database: str, **query: str) -> str:
    return server.url(database) + "?" + "&".join(f"{k}={v}" for k, v in query.items())


async def test_the_store_writes_over_tls_with_the_server_verified(
    tls_server: TemporaryPostgres, ca: trustme.CA, tmp_path: Path
) -> None:
    root = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(root))
    database = tls_server.create_database("tls")
    store = open_store(_url(tls_server, database, sslmode="verify-full", sslrootcert=str(root)))
    await store.open()
    try:
        await store.apply([Persist(job("over-tls", 0))])
        found = await store.get("over-tls")
        assert found is not None
    finally:
        await store.aclose()


async def test_a_connection_without_tls_is_refused(tls_server: TemporaryPostgres) -> None:
    database = tls_server.create_database("plain")
    store = open_store(_url(tls_server, database, sslmode="disable"))
    with pytest.raises(StoreError, match=r"no encryption|pg_hba"):
        await store.open()


async def test_a_server_certificate_of_another_ca_is_refused(
    tls_server: TemporaryPostgres, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    database = tls_server.create_database("other")
    store = open_store(_url(tls_server, database, sslmode="verify-full", sslrootcert=str(other)))
    with pytest.raises(StoreError, match="certificate verify failed"):
        await store.open()
