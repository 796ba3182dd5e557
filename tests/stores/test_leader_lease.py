"""The leader's lease is judged on one clock every contender shares.

On PostgreSQL that is the database server's: the times a Scheduler passes are read on
its own host's monotonic clock, which means nothing on another host, so only their
difference (the lease's length) is used. On SQLite (one host) a holder's process is
looked for only when the holder names this host: a holder on another host keeps its
lease until it runs out.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from actorwork.scheduler.leadership import boot_id, holder_name, leader_address
from actorwork.stores import open_store
from actorwork.testing.stores import TemporaryPostgres
from tests.jobs.test_faults import eventually

#: A process id no process of this host has (above the kernel's limit).
GONE = 2**23


@pytest.mark.slow
async def test_a_lease_taken_on_one_hosts_clock_holds_against_another_hosts_clock(
    postgres_server: TemporaryPostgres,
) -> None:
    url = postgres_server.url(postgres_server.create_database("lease"))
    first, second = open_store(url), open_store(url)
    await first.open()
    await second.open()
    try:
        # Host A's monotonic clock reads a million seconds, host B's a billion: were the
        # readings compared, B would see A's lease long over.
        assert await first.acquire(f"host-a:{GONE}:t tcp://a:7400", 1e6 + 2.0, 1e6, "a") == 1
        assert await second.acquire("host-b:1:u tcp://b:7400", 1e9 + 2.0, 1e9, "b") is None
        assert leader_address(await second.leader()) == "tcp://a:7400"

        async def taken() -> bool:
            now = 1e9 + time.monotonic()
            return await second.acquire("host-b:1:u tcp://b:7400", now + 2.0, now, "b") == 2

        await eventually(taken, "host B to take over once A's two seconds ran out")
        assert leader_address(await first.leader()) == "tcp://b:7400"
        assert not await first.renew(1, 1e6 + 10.0)
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_sqlite_holder_on_another_host_keeps_its_lease(tmp_path: Path) -> None:
    now, boot = time.monotonic(), boot_id()
    for holder, taken in (
        (f"not-{socket.gethostname()}:{GONE}:t", False),  # no process GONE here: says nothing
        (f"{socket.gethostname()}:{GONE}:t", True),  # this host's, its process gone
    ):
        path = str(tmp_path / f"{taken}.db")
        first, second = open_store(path), open_store(path)
        await first.open()
        await second.open()
        try:
            assert await first.acquire(holder, now + 600.0, now, boot) == 1
            epoch = await second.acquire(holder_name(), now + 600.0, now, boot)
            assert epoch == (2 if taken else None), holder
        finally:
            await first.aclose()
            await second.aclose()


def test_the_holder_string_carries_the_advertised_address() -> None:
    holder = holder_name("tcp://10.0.0.5:7400")
    host, pid, _ = holder.split(":", 2)
    assert host == socket.gethostname()
    assert pid.isdigit()
    assert leader_address(holder) == "tcp://10.0.0.5:7400"
    assert leader_address(holder_name()) is None
    assert leader_address(None) is None
