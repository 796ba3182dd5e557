"""Run on a test host: lead the store, then hold a write transaction open for ever.

``python -m tests.hosts.dying_leader URL READY``: takes the lease of the PostgreSQL
store at ``URL`` for two seconds, opens a transaction on one of the store's own
connections that reads the ``leader`` row ``FOR SHARE`` (as every write of a leader
does first), writes its epoch to the file ``READY`` and waits inside that transaction,
so that the host can be killed in the middle of a write.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio

from actorwork.stores.postgresql import PostgreSQLStore


async def main(url: str, ready: str) -> None:
    store = PostgreSQLStore(url)
    await store.open()
    now = time.monotonic()
    epoch = await store.acquire("dying:1:x", now + 2.0, now, "boot")

    async def hold(conn: Any) -> None:
        async with conn.transaction():
            await conn.fetchrow("SELECT epoch FROM leader WHERE id = 1 FOR SHARE")
            await anyio.Path(ready).write_text(str(epoch))
            await anyio.sleep(3600)

    await store._run(hold)


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:])
