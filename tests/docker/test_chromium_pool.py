"""The production shape of the Chromium works, across a host boundary.

A Scheduler (``actorwork scheduler``) listens on this host's end of a veth pair; a
``docker`` Pool (``actorwork pool``) runs in a network namespace (:mod:`.netns`), so it
reaches the Scheduler only over TCP through the veth, and the local Docker Engine
through its unix socket. The pool's containers run the rendering worker image
(``build-worker-image.sh --chromium``) with no network, this checkout's code mounted,
and the same configuration file as every other process: its ``[chromium] mode`` is
``docker``, the development shape's, and a worker container launches Chromium in
itself. The test is a client on this host.

Each job prints a page that fills itself in after a delay and then calls
``window.actorworkReady()``; the PDF comes back as the job's artifact through the
Pool's outbox, and the late text is read back from it with pypdf. Faults: the worker
container killed mid-render, the Scheduler killed while PDFs render, and a hundred
renders that must leave no browser, container, profile directory or descriptor.
"""

from __future__ import annotations

import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pypdf
import pytest

from actorwork.chromium import PROFILE_PREFIX, PdfRequest
from actorwork.client import Client
from actorwork.docker.engine import Engine
from actorwork.docker.images import SOURCE_DIR, ensure_worker_image
from actorwork.errors import ActorworkError, EngineUnavailable
from actorwork.messages import TERMINAL, JobView
from actorwork.pool._outbox_format import PUT, scan
from tests.docker.conftest import POOL_PREFIX, REPO, pool_containers, shared_dir, source_mounts
from tests.docker.netns import OtherHost, other_host, unavailable
from tests.jobs.harness import connected, eventually, kill_group

# The first test may wait for the rendering image to be built (minutes on a fresh machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DEADLINE = 180.0  # generous: containers and browsers start on two shared cores


def page(token: str, delay_ms: int) -> str:
    """A page that writes ``token`` into itself ``delay_ms`` after loading, then says so."""
    return f"""<!doctype html>
<html><body>
  <h1>Production render</h1>
  <p>漢字 かな 한글 \U0001f600</p>
  <p id="late">not yet</p>
  <script>
    setTimeout(() => {{
      document.getElementById("late").textContent = "late text {token}";
      window.actorworkReady();
    }}, {delay_ms});
  </script>
</body></html>"""


def pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def pdf_fonts(data: bytes) -> set[str]:
    """The names of the fonts embedded in the PDF (``NotoSansCJKjp-Regular``, ...)."""
    names = set()
    for found in pypdf.PdfReader(io.BytesIO(data)).pages:
        fonts = found["/Resources"].get_object().get("/Font", {})
        for font in fonts.values():
            described = font.get_object()
            if "/BaseFont" not in described:  # Type3 (the colour emoji): named by its descriptor
                described = described["/FontDescriptor"].get_object()
            name = described.get("/BaseFont") or described["/FontName"]
            names.add(str(name).partition("+")[2])
    return names


# --- what runs in a container, seen from this host's /proc ------------------------------


def container_pids(container_id: str) -> list[int]:
    """The processes in ``container_id``'s cgroup (empty once it is gone)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if container_id in Path(f"/proc/{entry}/cgroup").read_text():
                found.append(int(entry))
        except OSError:
            continue
    return found


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def browsers_in(container_id: str) -> set[str]:
    """The profile directories of the Chromium browsers running in the container."""
    profiles = set()
    for pid in container_pids(container_id):
        profiles |= {
            a for a in _argv(pid) if a.startswith(f"--user-data-dir=/tmp/{PROFILE_PREFIX}")
        }
    return profiles


def worker_pid(container_id: str) -> int | None:
    """The worker's Python process in the container (``actorwork.cli.bridge``)."""
    for pid in container_pids(container_id):
        if _argv(pid)[1:3] == ["-m", "actorwork.cli.bridge"]:  # not tini, its parent
            return pid
    return None


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def profiles_in(container_id: str) -> list[str]:
    """The Chromium profile directories (and logs) in the container's temp directory."""
    listed = subprocess.run(
        ["docker", "exec", container_id, "sh", "-c", f"ls -d /tmp/{PROFILE_PREFIX}* || true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return listed.stdout.split()


# --- the two hosts --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rendering_image(worker_image: str) -> str:
    """The rendering worker image, built if missing (after the plain worker image)."""

    async def ensure() -> str:
        async with Engine() as engine:
            return await ensure_worker_image(engine, chromium=True)

    try:
        return anyio.run(ensure)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def host() -> Iterator[OtherHost]:
    """Another host: a network namespace with a veth pair to this one."""
    why = unavailable()
    if why:
        pytest.skip(why)
    with other_host() as made:
        yield made


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@dataclass
class RenderCluster:
    """A Scheduler on this host and a docker Pool on ``host``, one config file in ``tmp``."""

    tmp: Path
    host: OtherHost
    image: str
    size: int = 1
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    client: Client | None = None

    def __post_init__(self) -> None:
        self.pool = f"{POOL_PREFIX}{uuid.uuid4().hex[:6]}"
        self.config = self.tmp / "aw.toml"
        self.outbox = self.tmp / "outbox"
        shared_dir(self.tmp)  # the containers read the config file from here
        port = _free_port(self.host.host_address)
        mounts = ", ".join(f'"{m}"' for m in [*source_mounts(), f"{self.tmp}:{self.tmp}:ro"])
        self.config.write_text(
            f"""
[system]
secret = "{secrets.token_hex(16)}"    # the Scheduler listens off loopback

[jobs]
topology = "distributed"
modules = ["actorwork.chromium"]

[scheduler]
address = "tcp://{self.host.host_address}:{port}"
store = "{self.tmp}/jobs.db"
lease = 15.0
retry_base = 0.2
retry_cap = 0.5

[pools.{self.pool}]
kind = "docker"
size = {self.size}
outbox = "{self.outbox}"
image = "{self.image}"
network = "none"
mounts = [{mounts}]
environment = {{ PYTHONPATH = "{SOURCE_DIR}", ACTORWORK_CONFIG = "{self.config}" }}

[chromium]
mode = "docker"          # the development shape's; in a worker container it runs there
"""
        )

    # --- processes ----------------------------------------------------------------------

    def start(self, role: str) -> None:
        """``scheduler`` here, or ``pool`` in the other host's namespace."""
        command = [sys.executable, "-m", "actorwork", "--config", str(self.config), role]
        if role == "pool":
            command = self.host.command(command)
        with open(self.tmp / f"{role}.log", "ab") as log:
            self.procs[role] = subprocess.Popen(
                command,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill(self, role: str) -> None:
        proc = self.procs.pop(role)
        kill_group(proc)

    async def stop(self, role: str) -> None:
        proc = self.procs[role]
        proc.send_signal(signal.SIGTERM)
        await eventually(lambda: proc.poll() is not None, f"{role} to stop", deadline=DEADLINE)
        del self.procs[role]

    def log(self, role: str) -> str:
        path = self.tmp / f"{role}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        for role in list(self.procs):
            self.kill(role)

    async def containers(self, engine: Engine, *, running: bool | None = None) -> list[str]:
        found = await pool_containers(engine, self.pool)
        return [
            str(item["Id"])
            for item in found
            if running is None or (item.get("State") == "running") == running
        ]

    # --- the client ---------------------------------------------------------------------

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[Client]:
        async with connected(self.config, deadline=DEADLINE) as client:
            self.client = client
            try:
                yield client
            finally:
                self.client = None

    async def render(self, token: str, delay_ms: int) -> str:
        """Submit one page; the job's id."""
        assert self.client is not None
        request = PdfRequest(html=page(token, delay_ms), wait_for_ready=True, ready_timeout=60)
        handle = await self.client.submit("chromium.pdf", request, job_id=f"render-{token}")
        return handle.id

    async def finished(self, job_ids: list[str]) -> dict[str, JobView]:
        """Wait until every job is terminal; their views, artifacts included."""
        assert self.client is not None
        client = self.client

        async def views() -> dict[str, JobView] | None:
            try:
                found = {job_id: await client.get(job_id) for job_id in job_ids}
            except (ActorworkError, OSError):  # the Scheduler is restarting: ask again
                client._ref = None
                return None
            return found if all(v.status in TERMINAL for v in found.values()) else None

        return dict(await eventually(views, "every render to end", deadline=DEADLINE * 3))


def assert_rendered(view: JobView, token: str) -> None:
    assert view.status == "succeeded", (view.status, view.error)
    assert view.result is not None
    (artifact,) = view.result.artifacts
    assert artifact.media_type == "application/pdf"
    text = pdf_text(artifact.data)
    assert "Production render" in text
    assert f"late text {token}" in text, text


@pytest.fixture
def cluster(
    tmp_path: Path, host: OtherHost, rendering_image: str
) -> Iterator[Callable[..., RenderCluster]]:
    made: list[RenderCluster] = []

    def make(size: int = 1) -> RenderCluster:
        found = RenderCluster(tmp_path, host, rendering_image, size=size)
        made.append(found)
        return found

    yield make
    for found in made:
        found.cleanup()


# --- the tests ------------------------------------------------------------------------------


async def test_a_page_renders_in_a_docker_pool_on_another_host(
    cluster: Callable[..., RenderCluster], engine: Engine
) -> None:
    found = cluster()
    found.start("scheduler")
    found.start("pool")
    async with found.connected():
        job = await found.render("a1", delay_ms=1500)
        views = await found.finished([job])
        pool_pid = found.procs["pool"].pid  # `ip netns exec` became the pool: its network
        assert os.readlink(f"/proc/{pool_pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert_rendered(views[job], "a1")
        assert views[job].attempt == 1
        assert views[job].result is not None
        fonts = pdf_fonts(views[job].result.artifacts[0].data)
        # Latin, CJK and emoji each printed with a font of the image, none left blank.
        assert any(name.startswith("Liberation") for name in fonts), fonts
        assert any(name.startswith("NotoSansCJK") for name in fonts), fonts
        assert any(name.startswith("NotoColorEmoji") for name in fonts), fonts
        (container,) = await found.containers(engine, running=True)
        # The browser runs in the worker's container, not in one of its own.
        assert len(browsers_in(container)) == 1
    await found.stop("pool")
    assert await found.containers(engine) == []
    assert container_pids(container) == []


async def test_a_worker_container_killed_mid_render_is_retried_and_leaves_nothing(
    cluster: Callable[..., RenderCluster], engine: Engine
) -> None:
    found = cluster()
    found.start("scheduler")
    found.start("pool")
    async with found.connected() as client:
        job = await found.render("k1", delay_ms=10_000)
        (first,) = await eventually(
            lambda: found.containers(engine, running=True),
            "the pool's container",
            deadline=DEADLINE,
        )
        await eventually(
            lambda: browsers_in(first), "a browser in the container", deadline=DEADLINE
        )
        assert (await client.get(job)).status == "running"
        await engine.kill(first)  # what `docker kill` does
        views = await found.finished([job])
        attempts = await client.attempts(job)
        await eventually(
            lambda: _gone(engine, found, first),
            "the killed container to be removed",
            deadline=DEADLINE,
        )
    assert_rendered(views[job], "k1")
    assert views[job].attempt == 2
    assert (attempts[0].result.attempt, attempts[0].result.outcome) == (1, "lost")
    assert "container" in attempts[0].result.error
    assert container_pids(first) == [], "no process (browser) of the killed container is left"
    await found.stop("pool")
    assert await found.containers(engine) == []


async def _gone(engine: Engine, found: RenderCluster, container: str) -> bool:
    return container not in await found.containers(engine)


async def test_pdfs_rendered_while_the_scheduler_is_down_are_delivered_when_it_returns(
    cluster: Callable[..., RenderCluster], engine: Engine
) -> None:
    found = cluster(size=2)
    found.start("scheduler")
    found.start("pool")
    tokens = ["s1", "s2", "s3", "s4"]
    async with found.connected() as client:
        jobs = [await found.render(token, delay_ms=6_000) for token in tokens]

        async def two_running() -> bool:
            views = [await client.get(job) for job in jobs]
            return sum(view.status == "running" for view in views) == 2

        await eventually(two_running, "two renders to run", deadline=DEADLINE)
        found.kill("scheduler")  # SIGKILL while both workers render
        # The pool keeps rendering: the results wait in its outbox for the Scheduler.
        await eventually(
            lambda: _outbox_holds(found, 2),
            "two results in the outbox",
            deadline=DEADLINE,
        )
        found.start("scheduler")
        views = await found.finished(jobs)
    for job, token in zip(jobs, tokens, strict=True):
        assert_rendered(views[job], token)
    await found.stop("pool")
    assert await found.containers(engine) == []


def _outbox_holds(found: RenderCluster, count: int) -> bool:
    """At least ``count`` results persisted in the pool's outbox and not yet acknowledged."""
    live: set[str] = set()
    for path in sorted(found.outbox.glob("segment-*.log")):
        try:
            records, _ = scan(path.read_bytes())
        except FileNotFoundError:  # compacted since the listing
            continue
        for record in records:
            if record.kind == PUT:
                live.add(record.key)
            else:
                live.discard(record.key)
    return len(live) >= count


async def test_a_hundred_renders_leave_no_browser_container_profile_or_descriptor(
    cluster: Callable[..., RenderCluster], engine: Engine
) -> None:
    found = cluster(size=2)
    found.start("scheduler")
    found.start("pool")
    async with found.connected():
        warm = [await found.render(f"w{n}", delay_ms=50) for n in range(6)]
        for view in (await found.finished(warm)).values():
            assert view.status == "succeeded", view.error
        containers = await found.containers(engine, running=True)
        assert len(containers) == 2
        workers = {c: worker_pid(c) for c in containers}
        assert all(workers.values())
        pool_pid = found.procs["pool"].pid
        fds_warm = {c: fd_count(pid) for c, pid in workers.items() if pid}
        pool_fds_warm = fd_count(pool_pid)

        jobs = [await found.render(f"h{n}", delay_ms=50) for n in range(100)]
        views = await found.finished(jobs)
        assert [v.status for v in views.values()].count("succeeded") == 100
        assert_rendered(views[jobs[-1]], "h99")

        assert await found.containers(engine, running=True) == containers
        for container, pid in workers.items():
            assert pid is not None
            assert worker_pid(container) == pid, "the worker was not replaced"
            assert len(browsers_in(container)) == 1, "one browser per worker, kept"
            assert len(profiles_in(container)) == 1, "one profile: the running browser's"
            # One descriptor kept per render would show as a hundred; a couple may be
            # open for a moment (a reply being written).
            assert fd_count(pid) <= fds_warm[container] + 2
        assert fd_count(pool_pid) <= pool_fds_warm + 2
    await found.stop("pool")
    assert await found.containers(engine) == []
    for container in containers:
        assert container_pids(container) == []
