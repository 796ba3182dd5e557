"""The README's "Beyond one machine" example, examples/scale-out/, run on one host.

The systemd units' commands are started as processes with the units' environment:
three Schedulers (each with its host's ``scheduler.env``) and one Pool, on the example's
``actorwork.toml``. Only what names the site changes: the hosts ``sched-a``, ``sched-b``
and ``sched-c`` become ports of 127.0.0.1 (each host listens on 7400), ``db`` a
PostgreSQL server started for the test that takes TCP over TLS only (the example's
``sslmode=verify-full``), the files under ``/etc/actorwork`` and ``/var/lib/actorwork``
a temporary directory's, and ``myapp.works`` the tests' works. A client given the three
addresses runs a job, the leader is SIGKILLed, and the next job runs on its successor.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.node import system_from_settings
from actorwork.testing.stores import TemporaryPostgres
from tests.jobs import works
from tests.stores.fleet import free_port, launch

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "scale-out"
HOSTS = ("a", "b", "c")

pytestmark = pytest.mark.slow


def unit(name: str) -> dict[str, list[str]]:
    """The ``key=value`` lines of a unit file's sections, each key's values in order."""
    found: dict[str, list[str]] = {}
    for line in (EXAMPLE / name).read_text().splitlines():
        key, eq, value = line.partition("=")
        if eq and not line.startswith("#"):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def env_file(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, _, v in pairs if not k.startswith("#")}


class Site:
    """The example's files with the site's names replaced, in ``tmp``."""

    def __init__(self, tmp: Path, server: TemporaryPostgres, ca: Any) -> None:
        self.tmp = tmp
        self.ports = {host: free_port() for host in HOSTS}
        etc = tmp / "etc"
        etc.mkdir()
        for name, data in (
            ("secret", "a-shared-secret-of-the-site"),
            ("db-password", server.password),
            ("db-ca.pem", ca.cert_pem.bytes().decode()),
        ):
            (etc / name).write_text(data)
            (etc / name).chmod(0o600)
        self.database = server.create_database("site")
        self.server = server
        text = self.rewrite((EXAMPLE / "actorwork.toml").read_text())
        text = text.replace("myapp.works", "tests.jobs.works")
        text = text.replace(
            "postgresql://actorwork@db:5432/actorwork", server.url(self.database, password=False)
        )
        self.config = etc / "actorwork.toml"
        self.config.write_text(text)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def rewrite(self, text: str) -> str:
        for host, port in self.ports.items():
            text = text.replace(f"sched-{host}:7400", f"127.0.0.1:{port}")
        text = text.replace("/etc/actorwork/", f"{self.tmp}/etc/")
        return text.replace("/var/lib/actorwork/", f"{self.tmp}/var/")

    def start(self, name: str, service: str, host: str = "") -> None:
        """Start ``service``'s ExecStart with its environment (on Scheduler ``host``)."""
        found = unit(service)
        (command,) = found["ExecStart"]
        program, *args = command.split()
        assert program == "/opt/actorwork/bin/actorwork", command
        env = dict(os.environ)
        env.update(env_file(self.rewrite("\n".join(found.get("Environment", [])))))
        for path in found.get("EnvironmentFile", []):
            assert path == "/etc/actorwork/scheduler.env", path
            text = (EXAMPLE / "scheduler-a.env").read_text().replace("sched-a", f"sched-{host}")
            text = text.replace("0.0.0.0:7400", f"0.0.0.0:{self.ports[host]}")
            env.update(env_file(self.rewrite(text)))
        self.procs[name] = launch(args, self.tmp / f"{name}.log", env)

    def leader(self) -> str:
        holder = self.server.psql("SELECT holder FROM leader", self.database).strip()
        pid = int(holder.split(":")[1])
        return next(name for name, proc in self.procs.items() if proc.pid == pid)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def site(tmp_path: Path, tls_server: TemporaryPostgres, ca: Any) -> Iterator[Site]:
    made = Site(tmp_path, tls_server, ca)
    yield made
    made.stop()


async def test_three_schedulers_and_a_pool_as_the_units_start_them(site: Site) -> None:
    for host in HOSTS:
        site.start(f"sched-{host}", "actorwork-scheduler.service", host)
    site.start("pool", "actorwork-pool.service")
    config = load_config(site.config, env={})
    async with AsyncExitStack() as stack:
        system = await stack.enter_async_context(
            system_from_settings(config.system, name="site-client")
        )
        client = await stack.enter_async_context(Client(system, config.scheduler.address))
        await client.ping(timeout=60)
        first = await client.submit(works.add, works.Pair(2, 3))
        assert await first.result(timeout=60) == 5
        killed = site.leader()
        os.killpg(site.procs[killed].pid, signal.SIGKILL)
        site.procs.pop(killed).wait()
        second = await client.submit(works.add, works.Pair(4, 5))
        assert await second.result(timeout=60) == 9
        assert site.leader() != killed


def test_the_readme_shows_the_example_files_as_they_are() -> None:
    readme = (REPO / "README.md").read_text()
    for name in (
        "actorwork.toml",
        "scheduler-a.env",
        "actorwork-scheduler.service",
        "actorwork-pool.service",
    ):
        assert (EXAMPLE / name).read_text() in readme, name
