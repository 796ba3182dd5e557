"""Three Scheduler processes and a Pool process on one store, for the tests of following
the leader: each Scheduler listens at a TCP address of its own on 127.0.0.1, and every
role is a real ``python -m actorwork`` process in a session of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from actorwork.testing.stores import TemporaryPostgres
from tests.jobs.harness import kill_group

REPO = Path(__file__).resolve().parents[2]
SECRET = "leader-following-test-secret"


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
    #: The loopback IP address each Scheduler listens at, all on one port (the way one
    #: name of several hosts is written); by default 127.0.0.1, each on a port of its own.
    hosts: tuple[str, ...] = ()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hosts:
            port = free_port()
            self.addresses = [f"tcp://{host}:{port}" for host in self.hosts]
        else:
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

    def start_all(self) -> None:
        """The three Schedulers, each listening at its address, and the Pool."""
        for i, address in enumerate(self.addresses):
            self.start(f"scheduler-{i}", listen=address)
        self.start("pool")

    def leader(self, server: TemporaryPostgres | None, database: str) -> str:
        """The name of the Scheduler process the store says leads."""
        holder = leader_holder(self, server, database)
        name = self.scheduler_of(int(holder.split(":")[1]))
        assert holder.endswith(self.addresses[int(name[-1])]), holder
        return name

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        kill_group(proc)

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


def leader_holder(fleet: Fleet, server: TemporaryPostgres | None, database: str) -> str:
    """The holder string of the store's leader row, read beside the running Schedulers."""
    if server is not None:
        return server.psql("SELECT holder FROM leader", database).strip()
    with sqlite3.connect(f"file:{fleet.store}?mode=ro", uri=True, timeout=10) as db:
        (holder,) = db.execute("SELECT holder FROM leader").fetchone()
    return str(holder)
