"""Which Pool gets which job, and what happens when a Pool or a dispatch goes missing
(RELIABILITY.md F28, F26, F8).

F28 runs a Scheduler and two Pools of a rolling deploy as ``actorwork`` processes, the
older Pool without the newer work; F26 SIGKILLs and restarts a real Pool process under
a lease far longer than the test waits; F8 drops a RunJob frame in the fault proxy
between a Pool of one worker and its Scheduler. Every wait polls up to a generous
deadline; nothing asserts on speed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from actorwork import JobSystem
from actorwork.client import Client
from actorwork.config import load_config
from actorwork.messages import Message, RunJob, RunJobs
from actorwork.pool.actor import Pool
from actorwork.topology import start_pools, start_scheduler
from tests.jobs import works
from tests.jobs.fault_proxy import Direction, FaultProxy
from tests.jobs.harness import connected, eventually, kill_group
from tests.jobs.test_faults import REPO, Cluster

pytestmark = pytest.mark.slow


# --- F28: a rolling deploy --------------------------------------------------------------


class Deploy:
    """``actorwork`` processes on configs that differ in their modules, one store."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.socket = tmp / "s.sock"
        assert len(str(self.socket)) < 100, f"unix socket path too long: {self.socket}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def config(self, pool: str, modules: list[str]) -> Path:
        path = self.tmp / f"{pool}.toml"
        path.write_text(
            f"""
[jobs]
topology = "distributed"
modules = {modules!r}

[scheduler]
address = "unix://{self.socket}"
store = "{self.tmp}/jobs.db"
lease = 2.0

[pools.{pool}]
kind = "local"
size = 2
outbox = "{self.tmp}/outbox-{pool}"
"""
        )
        return path

    def start(self, name: str, config: Path, *arguments: str) -> None:
        command = [sys.executable, "-m", "actorwork", "--config", str(config), *arguments]
        with open(self.tmp / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                command,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def run(self, config: Path, *arguments: str) -> str:
        """Run one ``actorwork`` command to its end; its standard output."""
        command = [sys.executable, "-m", "actorwork", "--config", str(config), *arguments]
        done = subprocess.run(command, cwd=REPO, capture_output=True, timeout=60, check=True)
        return done.stdout.decode()

    def cleanup(self) -> None:
        for proc in self.procs.values():
            kill_group(proc)

    def connected(self, config: Path) -> AbstractAsyncContextManager[Client]:
        return connected(config)


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Deploy]:
    made = Deploy(tmp_path)
    yield made
    made.cleanup()


async def test_f28_a_new_work_runs_on_the_pool_that_has_it_and_waits_visibly_until_then(
    deploy: Deploy,
) -> None:
    """The older Pool never gets the new work (it would fail it as unknown); the job
    waits, saying for what, while the older Pool goes on with the work it has; the
    newer Pool, once up, runs it."""
    old = deploy.config("old", ["tests.jobs.works"])
    new = deploy.config("new", ["tests.jobs.works", "tests.jobs.works_v2"])
    deploy.start("scheduler", new, "scheduler")
    deploy.start("old", old, "pool")
    async with deploy.connected(new) as client:
        first = await client.submit("add", works.Pair(1, 2))
        assert await first.result(timeout=60) == 3  # the older Pool is up and taking work
        greet = await client.submit("greet_v2", "ada")
        view = await greet.view()
        assert (view.status, view.attempt) == ("queued", 0), view
        assert view.waiting == "waits for a pool with work 'greet_v2' on queue 'default'"
        behind = await client.submit("add", works.Pair(2, 3))
        assert await behind.result(timeout=60) == 5  # not held up behind the new work
        assert (await greet.view()).status == "queued"
        listed = deploy.run(new, "status")
        [line] = [line for line in listed.splitlines() if greet.id in line]
        assert "(waits for a pool with work 'greet_v2' on queue 'default')" in line

        deploy.start("new", new, "pool")
        assert await greet.result(timeout=60) == "hello ada"
        view = await greet.view()
        attempts = await client.attempts(greet.id)
    assert (view.status, view.attempt, view.waiting) == ("succeeded", 1, "")
    assert view.result is not None
    assert view.result.pool == "new"
    assert [(a.result.attempt, a.result.outcome, a.committed) for a in attempts] == [
        (1, "succeeded", True)
    ]


# --- F26: a Pool restarted --------------------------------------------------------------


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(**options: Any) -> Cluster:
        cluster = Cluster(tmp_path, **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.cleanup()


async def test_f26_a_restarted_pool_ends_its_previous_attempts_at_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """SIGKILL the Pool with an attempt running and start it again: the attempt is lost
    and retried at once. The lease is far longer than any wait here, so without the
    Pool's incarnation the job would still be running when the test gives up."""
    cluster = cluster_factory(lease=600.0)
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        job = await cluster.submit("f26", cluster.step(seconds=600.0, attempts=[1]), retries=2)
        await eventually(lambda: cluster.history.started(job, 1), "attempt 1")
        cluster.kill("pool")
        cluster.start("pool")  # the same outbox, a new process
        history = await cluster.finish()
    final = history.final[job]
    assert (final.status, final.attempt) == ("succeeded", 2)
    assert [(e.event, e.attempt) for e in history.executions() if e.job_id == job] == [
        ("start", 1),
        ("start", 2),
        ("end", 2),
    ]
    assert "pool_restarted" in cluster.log("scheduler")


# --- F8: a dispatch lost on a live link ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def one_worker_through_proxy(
    tmp_path: Path,
) -> AsyncIterator[tuple[JobSystem, FaultProxy, Pool]]:
    """A Scheduler, and a Pool of one worker reaching it through the fault proxy."""
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
retry_base = 0.2
retry_cap = 0.5

[pools.p]
kind = "local"
size = 1
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


async def test_f8_a_dispatch_lost_on_a_live_link_is_redispatched_and_the_pool_fed_on(
    tmp_path: Path,
) -> None:
    """The one RunJob frame for the Pool's only worker is dropped while the connection
    stays up: the job runs again after its lease, and the Pool, whose one slot the
    Scheduler gives back, keeps receiving work."""

    def drop_first_dispatch(direction: Direction, message: Message) -> bool:
        return isinstance(message, RunJob | RunJobs) and not proxy.dropped

    async with one_worker_through_proxy(tmp_path) as (jobs, proxy, pool):
        proxy.drop = drop_first_dispatch
        lost = await jobs.submit(works.add, works.Pair(2, 3))
        assert await lost.result(timeout=60) == 5
        after = [await jobs.submit(works.add, works.Pair(n, n)) for n in range(3)]
        assert [await handle.result(timeout=60) for handle in after] == [0, 2, 4]
        view = await lost.wait()
        attempts = await jobs.client.attempts(lost.id)  # type: ignore[union-attr]
    assert proxy.dropped == [("to_pool", "RunJobs")]
    assert proxy.connections == 1  # the link stayed up throughout
    assert (view.status, view.attempt) == ("succeeded", 2)
    assert [(a.result.attempt, a.result.outcome, a.committed) for a in attempts] == [
        (2, "succeeded", True)
    ]
    assert not pool.state.running
