"""Three Schedulers on one store, each listening at an address of its own; a Pool and a
client given all three addresses follow the one that leads.

Every role is a real process (``python -m actorwork scheduler`` three times, ``... pool``
once) over TCP on 127.0.0.1; the test process is the client. The leader is SIGKILLed
with jobs running: the jobs submitted before and after the kill all complete, each with
one committed result (I1-I4 checked over the recorded history), and the Pool and the
client reach the Scheduler that took over. On PostgreSQL, and on SQLite (three
Schedulers on one file of one host).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.errors import TransportError
from actorwork.messages import NotLeaderReply, Ping
from actorwork.node import system_from_settings
from actorwork.runtime import RemoteRef
from actorwork.stores import open_store
from actorwork.testing.stores import TemporaryPostgres
from tests.jobs.history import History, Recorded
from tests.jobs.test_faults import eventually
from tests.jobs.works import Step

REPO = Path(__file__).resolve().parents[2]
SECRET = "leader-following-test-secret"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(args: list[str], log: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """``python -m actorwork ARGS`` in a session of its own, its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "actorwork", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


@dataclass
class Fleet:
    """Three Scheduler processes and a Pool process on one config in ``tmp``."""

    tmp: Path
    store: str
    store_lines: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.addresses = [f"tcp://127.0.0.1:{free_port()}" for _ in range(3)]
        self.config = self.tmp / "aw.toml"
        listed = ", ".join(f'"{a}"' for a in self.addresses)
        self.config.write_text(
            f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]
connect_timeout = 60.0

[system]
secret = "{SECRET}"

[scheduler]
address = [{listed}]
store = "{self.store}"
{self.store_lines}
lease = 10.0
leader_lease = 2.0
retry_base = 0.05
retry_cap = 0.2

[pools.p]
kind = "local"
size = 4
outbox = "{self.tmp / "outbox"}"
heartbeat = 0.5
"""
        )

    def start(self, name: str, *, listen: str = "") -> None:
        role = "pool" if name == "pool" else "scheduler"
        env = {**os.environ, "ACTORWORK_SCHEDULER__LISTEN": listen} if listen else None
        self.procs[name] = launch(
            ["--config", str(self.config), role], self.tmp / f"{name}.log", env
        )

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.procs):
            try:
                self.procs[name].wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(name)
        self.procs.clear()

    def scheduler_of(self, pid: int) -> str:
        return next(n for n, p in self.procs.items() if p.pid == pid and n != "pool")


def _leader_holder(fleet: Fleet, server: TemporaryPostgres | None, database: str) -> str:
    """The holder string of the store's leader row, read beside the running Schedulers."""
    if server is not None:
        return server.psql("SELECT holder FROM leader", database).strip()
    with sqlite3.connect(f"file:{fleet.store}?mode=ro", uri=True, timeout=10) as db:
        (holder,) = db.execute("SELECT holder FROM leader").fetchone()
    return str(holder)


@pytest.fixture(params=["postgresql", "sqlite"])
def fleet(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Fleet, tuple[TemporaryPostgres | None, str]]]:
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


async def test_pool_and_client_follow_the_leader_when_it_is_killed(
    fleet: tuple[Fleet, tuple[TemporaryPostgres | None, str]],
) -> None:
    cluster, (server, database) = fleet
    history = History(cluster.tmp / "history")
    for i, address in enumerate(cluster.addresses):
        cluster.start(f"scheduler-{i}", listen=address)
    cluster.start("pool")
    config = load_config(cluster.config)
    async with AsyncExitStack() as stack:
        system = await stack.enter_async_context(
            system_from_settings(config.system, name="test-client")
        )
        client = await stack.enter_async_context(Client(system, config.scheduler.address))
        await client.ping(timeout=60)

        async def submit(job_id: str) -> None:
            history.submitted(job_id, acknowledged=False)
            step = Step(history=str(history.path), seconds=0.3)
            handle = await client.submit("traced", step, job_id=job_id)
            history.submitted(handle.id, acknowledged=True)

        for n in range(12):
            await submit(f"before-{n}")
        await eventually(lambda: len(history.executions()) >= 2, "jobs running")
        holder = _leader_holder(cluster, server, database)
        first = cluster.scheduler_of(int(holder.split(":")[1]))
        assert holder.endswith(cluster.addresses[int(first[-1])]), holder

        # Standbys answer with where the leader is, once they listen: on a loaded
        # machine a standby's process may still be starting when the leader serves.
        standby = next(a for a in cluster.addresses if not holder.endswith(a))

        async def standby_answer() -> object:
            try:
                return await (await system.remote(standby, "scheduler")).ask(Ping(), timeout=30)
            except TransportError:
                return None

        reply = await eventually(standby_answer, f"the standby at {standby} to listen")
        assert reply == NotLeaderReply(leader=cluster.addresses[int(first[-1])])

        cluster.kill(first)
        for n in range(12):
            await submit(f"after-{n}")
        final = {job_id: await client.wait(job_id, timeout=120) for job_id in history.submits}
        history.final = final

        holder = _leader_holder(cluster, server, database)
        second = cluster.scheduler_of(int(holder.split(":")[1]))
        assert second != first
        ref = client._ref  # the client followed the new leader
        assert isinstance(ref, RemoteRef)
        assert ref.address == cluster.addresses[int(second[-1])]
        pool_log = cluster.log("pool")
        assert pool_log.count("scheduler_connected") >= 2, pool_log
    cluster.stop_all()

    assert {view.status for view in final.values()} == {"succeeded"}
    store = open_store(cluster.store if server is None else server.url(database))
    await store.open()
    try:
        for job_id in history.submits:
            history.recorded[job_id] = [Recorded(*row) for row in await store.attempts(job_id)]
    finally:
        await store.aclose()
    history.check()
