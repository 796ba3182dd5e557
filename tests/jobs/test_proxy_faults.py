"""Faults a proxy between the Pool and the Scheduler makes (RELIABILITY.md, F7).

The Scheduler and the Pool run in actor systems of their own in this process, the
Pool reaching the Scheduler through :class:`~tests.jobs.fault_proxy.FaultProxy` over
TCP on loopback; the client talks to the Scheduler directly.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from actorwork import JobSystem
from actorwork.config import load_config
from actorwork.messages import Message, ResultsAcknowledged
from actorwork.pool.actor import Pool
from actorwork.topology import start_pools, start_scheduler
from tests.jobs import works
from tests.jobs.fault_proxy import Direction, FaultProxy
from tests.jobs.harness import eventually


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def through_proxy(tmp_path: Path) -> AsyncIterator[tuple[JobSystem, FaultProxy, Pool]]:
    port = _free_port()
    path = tmp_path / "aw.toml"
    path.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]

[scheduler]
address = "tcp://127.0.0.1:{port}"
store = "{tmp_path}/jobs.db"
lease = 1.5

[pools.p]
kind = "local"
size = 2
outbox = "{tmp_path}/outbox"
"""
    )
    config = load_config(path, env={})
    async with AsyncExitStack() as stack:
        await start_scheduler(stack, config)
        proxy = await stack.enter_async_context(FaultProxy(port).running())
        pool_config = load_config(
            path, env={"ACTORWORK_SCHEDULER__ADDRESS": f"tcp://127.0.0.1:{proxy.port}"}
        )
        pools = await start_pools(stack, pool_config)
        pool = pools.ref("p")._cell.actor
        assert isinstance(pool, Pool)
        jobs = await stack.enter_async_context(JobSystem(config))
        yield jobs, proxy, pool


def _results(store: Path, job_id: str) -> list[tuple[int, int, str]]:
    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT attempt, committed, outcome FROM results WHERE job_id = ?", (job_id,)
        ).fetchall()


async def test_f7_an_acknowledgement_lost_after_the_commit_is_asked_for_again(
    tmp_path: Path,
) -> None:
    """The ack of a committed result never reaches the Pool: the Pool reports the result
    again, the Scheduler acknowledges it again without storing it twice, and the Pool
    forgets it. One terminal result, one execution."""

    def drop_first_ack(direction: Direction, message: Message) -> bool:
        return isinstance(message, ResultsAcknowledged) and not proxy.dropped

    async with through_proxy(tmp_path) as (jobs, proxy, pool):
        proxy.drop = drop_first_ack
        handle = await jobs.submit(works.add, works.Pair(2, 3))
        assert await handle.result(timeout=60) == 5
        await eventually(lambda: proxy.dropped, "the acknowledgement dropped")
        assert pool.state.unacked  # the Pool still holds the result
        await eventually(lambda: not pool.state.unacked, "the result acknowledged after all")
        view = await handle.wait()
    assert proxy.dropped == [("to_pool", "ResultsAcknowledged")]
    assert (view.status, view.attempt) == ("succeeded", 1)
    assert _results(tmp_path / "jobs.db", handle.id) == [(1, 1, "succeeded")]


async def test_f12_a_half_open_connection_is_noticed_and_replaced(tmp_path: Path) -> None:
    """The connection stays open but forwards nothing: the Pool notices by its
    heartbeats going unanswered, connects again, and the work goes on; no hang."""
    async with through_proxy(tmp_path) as (jobs, proxy, pool):
        first = await jobs.submit(works.add, works.Pair(1, 1))
        assert await first.result(timeout=60) == 2
        proxy.freeze()
        during = await jobs.submit(works.add, works.Pair(2, 2))  # dispatched into the void
        assert await during.result(timeout=60) == 4
        assert proxy.connections >= 2
        view = await during.wait()
    assert view.status == "succeeded"
    assert not pool.state.unacked


async def test_f11_a_partition_heals_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    """Both directions black-holed for a while (new connections too), then healed: the
    jobs submitted meanwhile finish, each with one committed result (I1, I3, I4)."""
    async with through_proxy(tmp_path) as (jobs, proxy, pool):
        running = await jobs.submit(works.sleep, 1.0)
        await eventually(lambda: pool.state.running, "the first job running")
        proxy.partitioned = True
        handles = [running] + [await jobs.submit(works.add, works.Pair(i, 1)) for i in range(5)]
        await eventually(lambda: proxy.connections >= 2, "the Pool trying again")
        proxy.partitioned = False
        views = [await handle.wait(timeout=60) for handle in handles]
    assert [v.status for v in views] == ["succeeded"] * 6
    for view in views:
        committed = [row for row in _results(tmp_path / "jobs.db", view.id) if row[1]]
        assert committed == [(view.attempt, 1, "succeeded")], (view.id, committed)
