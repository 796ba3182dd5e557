"""A job system spread over the hosts of a test network (:mod:`tests.hosts.network`).

PostgreSQL runs on a host of its own (:class:`HostPostgres`); each Scheduler and each
Pool on another, as ``python -m actorwork --config FILE scheduler|pool`` started with
``ip netns exec``, each with its own config file; the test process is the client, on
this host. Every TCP listener is authenticated with one shared secret.

The store's tables carry audit triggers (:data:`AUDIT`): each row written is logged with
the client address it came from, the leader epoch at the time and the database clock,
in the same transaction, so a test can tell that a host wrote nothing after a moment.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from actorwork.client import Client
from actorwork.stores.postgresql import PostgreSQLStore
from actorwork.testing._postgres import TemporaryPostgres
from tests.hosts.network import Host, Network
from tests.jobs.harness import Driver, eventually
from tests.jobs.history import History

REPO = Path(__file__).resolve().parents[2]
PORT = 7400  # every Scheduler's: each host has its own ports

#: Logs every row written to the store's tables (after the migrations made them).
AUDIT = """
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    client INET DEFAULT inet_client_addr(),
    epoch BIGINT,
    tbl TEXT NOT NULL,
    op TEXT NOT NULL
);
CREATE FUNCTION audit_row() RETURNS trigger AS $$
BEGIN
    INSERT INTO audit (epoch, tbl, op)
    VALUES ((SELECT epoch FROM leader WHERE id = 1), TG_TABLE_NAME, TG_OP);
    RETURN NULL;
END $$ LANGUAGE plpgsql;
""" + "".join(
    f"CREATE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION audit_row();\n"
    for table in ("jobs", "results", "artifacts", "artifact_refs", "schedules", "leader")
)


class HostPostgres(TemporaryPostgres):
    """The throwaway server (:class:`TemporaryPostgres`) on ``host``, listening on its
    address; :meth:`halt` and :meth:`resume` stop and start it on the same data
    directory and port."""

    def __init__(self, host: Host) -> None:
        super().__init__()
        self.host = host

    def start(self) -> None:
        super().start()  # initdb, then a first start on this host's loopback
        subnet = self.host.address.rpartition(".")[0]
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {subnet}.0/24 scram-sha-256\n")
        self.halt()
        self.resume()

    def halt(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash would, recovering at the next start)."""
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop")

    def resume(self) -> None:
        """Start the server on its host, on the same data directory and port."""
        options = (
            f"-c listen_addresses={self.host.address} -p {self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=on -c max_connections=200"
        )
        pg_ctl = [str(self.binaries / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log")]
        subprocess.run(
            self.host.command([*self._as, *pg_ctl, "-o", options, "-w", "-t", "60", "start"]),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def host_url(self, database: str, *, password: bool = False) -> str:
        """The URL of ``database`` at the server's host address."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{self.user}{secret}@{self.host.address}:{self.port}/{database}"


@dataclass
class Role:
    """One process of the cluster: its host, config file and log."""

    name: str
    kind: str  # "scheduler" or "pool"
    host: Host
    config: Path
    log: Path
    #: The config's sections after the common ones (a Pool's ``[pools.NAME]``).
    own: str = ""
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class HostCluster(Driver):
    """Schedulers and Pools on hosts of ``net``, sharing ``pg``'s database, and a client.

    ``leader_lease``, ``lease`` (a job's) and the Pools' ``heartbeat`` are short, so that
    a failover and a lost attempt take seconds.
    """

    tmp: Path
    net: Network
    pg: HostPostgres
    leader_lease: float = 2.0
    lease: float = 3.0
    heartbeat: float = 0.5
    schedules: str = ""
    roles: dict[str, Role] = field(default_factory=dict)
    history: History = field(init=False)
    client: Client | None = None

    def __post_init__(self) -> None:
        self.history = History(self.tmp / "history")
        self.secret = secrets.token_hex(16)
        self.database = self.pg.create_database("hosts")
        self.password_file = self.tmp / "pgpass"
        self.password_file.write_text(self.pg.password)
        self.password_file.chmod(0o600)
        self.client_config = self.tmp / "client.toml"

    @property
    def store_url(self) -> str:
        return self.pg.host_url(self.database)

    async def prepare_store(self) -> None:
        """Migrate the store (as a first Scheduler would) and add the audit triggers."""
        store = PostgreSQLStore(self.pg.host_url(self.database, password=True))
        await store.open()
        await store.aclose()
        self.pg.psql(AUDIT, self.database)

    # --- config files -------------------------------------------------------------------

    def _common(self, listen: str = "") -> str:
        addresses = ", ".join(f'"{self.address(name)}"' for name in self.schedulers)
        return f"""
[system]
secret = "{self.secret}"

[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]

[scheduler]
address = [{addresses}]
listen = "{listen}"
store = "{self.store_url}"
store_password_file = "{self.password_file}"
lease = {self.lease}
leader_lease = {self.leader_lease}
retry_base = 0.2
retry_cap = 0.5
"""

    @property
    def schedulers(self) -> list[str]:
        """The names of the Schedulers, in the order they were added."""
        return [name for name, role in self.roles.items() if role.kind == "scheduler"]

    def address(self, scheduler: str) -> str:
        return f"tcp://{self.roles[scheduler].host.address}:{PORT}"

    def add_scheduler(self, name: str) -> Role:
        """A Scheduler on a new host (not started)."""
        host = self.net.host()
        role = Role(name, "scheduler", host, self.tmp / f"{name}.toml", self.tmp / f"{name}.log")
        role.own = self.schedules
        self.roles[name] = role
        return role

    def add_pool(self, name: str, *, size: int = 4) -> Role:
        """A Pool on a new host (not started)."""
        host = self.net.host()
        role = Role(name, "pool", host, self.tmp / f"{name}.toml", self.tmp / f"{name}.log")
        self.roles[name] = role
        role.own = f"""
[pools.{name}]
kind = "process"
size = {size}
outbox = "{self.outbox(name)}"
grace = 5.0
heartbeat = {self.heartbeat}
"""
        return role

    def outbox(self, pool: str) -> Path:
        return self.tmp / f"{pool}-outbox"

    # --- processes ----------------------------------------------------------------------

    def start(self, *names: str) -> None:
        """Start each role on its host, in a session of its own, with a config file that
        names every Scheduler (and, for a Scheduler, where it listens)."""
        for name in names:
            role = self.roles[name]
            assert role.proc is None or role.proc.poll() is not None, f"{name} runs"
            listen = self.address(name) if role.kind == "scheduler" else ""
            role.config.write_text(self._common(listen) + role.own)
            self._spawn(role, ["-m", "actorwork", "--config", str(role.config), role.kind])

    def run(self, name: str, host: Host, argv: list[str]) -> Role:
        """Run ``python argv...`` on ``host`` as a role of its own (killed at cleanup)."""
        role = Role(name, "process", host, self.tmp / f"{name}.toml", self.tmp / f"{name}.log")
        self.roles[name] = role
        self._spawn(role, argv)
        return role

    def _spawn(self, role: Role, argv: list[str]) -> None:
        with open(role.log, "ab") as log:
            role.proc = subprocess.Popen(
                role.host.command([sys.executable, *argv]),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        path = self.roles[name].log
        return path.read_text(errors="replace") if path.exists() else ""

    async def exited(self, name: str) -> int:
        """Wait for the role's process to end; its exit code."""
        proc = self.roles[name].proc
        assert proc is not None
        await eventually(lambda: proc.poll() is not None, f"{name} to exit")
        return int(proc.returncode)

    async def stop(self, name: str) -> None:
        """SIGTERM the role and wait for it to exit (a killed or deposed one: nothing)."""
        proc = self.roles[name].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await self.exited(name)

    def cleanup(self) -> None:
        """SIGKILL every process still running (their hosts are removed after)."""
        for role in self.roles.values():
            if role.proc is not None and role.proc.poll() is None:
                try:
                    os.killpg(role.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                role.proc.wait()

    # --- leadership, as the store has it --------------------------------------------------

    def leader_row(self) -> tuple[str, int]:
        """``(holder, epoch)`` of the store's leader row."""
        holder, epoch = self.pg.psql("SELECT holder, epoch FROM leader", self.database).split("|")
        return holder, int(epoch)

    def leader(self) -> str | None:
        """The Scheduler whose process holds the lease (by its pid), if any."""
        holder, _ = self.leader_row()
        pid = holder.split(":")[1] if holder else ""
        for role in self.roles.values():
            if role.kind == "scheduler" and role.proc is not None and str(role.proc.pid) == pid:
                return role.name
        return None

    async def new_leader(self, old: str | None = None) -> str:
        """Wait until a Scheduler other than ``old`` leads; its name."""
        found = await eventually(
            lambda: (name := self.leader()) is not None and name != old and name,
            f"a Scheduler other than {old} to lead",
        )
        return str(found)

    def database_now(self) -> str:
        """The database server's clock, as the audit rows have it."""
        return self.pg.psql("SELECT clock_timestamp()", self.database).strip()

    def writes_since(self, moment: str, *, host: Host | None = None) -> list[str]:
        """``table op epoch`` of each row written after ``moment`` (from ``host``)."""
        where = f"at > '{moment}'" + (f" AND client = '{host.address}'" if host else "")
        rows = self.pg.psql(
            f"SELECT tbl, op, epoch FROM audit WHERE {where} ORDER BY id", self.database
        )
        return [row.replace("|", " ") for row in rows.splitlines()]

    # --- the client and the history -------------------------------------------------------

    def connected(self) -> AbstractAsyncContextManager[Client]:
        """A client on this host, given every Scheduler's address (it finds the leader)."""
        self.client_config.write_text(self._common())
        return self.connected_to(self.client_config)

    async def collect(self) -> History:
        """Read every recorded result from the store."""
        url = self.pg.host_url(self.database, password=True)
        return await self.collect_from(PostgreSQLStore(url, read_only=True))

    async def finish(self) -> History:
        """Drain, stop every process, read the store and check I1-I4."""
        await self.drained()
        for name, role in self.roles.items():
            if role.kind == "pool":
                await self.stop(name)
        for name in self.roles:
            await self.stop(name)
        history = await self.collect()
        history.check()
        return history
