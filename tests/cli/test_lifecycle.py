"""Starting and stopping as production does it (F13): real ``actorwork scheduler`` and
``actorwork pool`` processes, signals, start-up errors, one Pool per outbox; and an
inline :class:`JobSystem` left while a job runs.

Every wait below is a bound on a hang (a deadline of a minute), never a measurement.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
import structlog

from actorwork import JobSystem
from actorwork.client import JobHandle
from actorwork.config import Config, load_config
from actorwork.messages import ExecuteJob, JobSpec, WorkFinished
from actorwork.runtime import Actor, ActorRef, ActorSystem
from actorwork.worker import Worker
from tests.jobs import works
from tests.jobs.harness import eventually

ROOT = Path(__file__).resolve().parents[2]
#: Upper bound on any wait for a process (a hang fails the test, nothing is timed).
DEADLINE = 60.0

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(
    tmp_path: Path,
    *,
    modules: str = '"tests.jobs.works"',
    system: str = "",
    address: str | None = None,
    store: str | None = None,
    outbox: str | None = None,
    grace: float = 120.0,
    leader_lease: float = 10.0,
) -> Path:
    path = tmp_path / "app.toml"
    path.write_text(
        f"""
[jobs]
topology = "distributed"
modules = [{modules}]

[system]
{system}

[scheduler]
address = "{address or f"tcp://127.0.0.1:{_free_port()}"}"
store = "{store or tmp_path / "jobs.db"}"
lease = 3600.0
leader_lease = {leader_lease}

[pools.main]
kind = "local"
size = 1
outbox = "{outbox or tmp_path / "outbox"}"
heartbeat = 0.5
grace = {grace}
"""
    )
    return path


class Running:
    """An ``actorwork`` process whose stderr goes to a file the test reads."""

    def __init__(self, config: Path, *args: str, **env: str) -> None:
        self.log = config.with_name(f"{args[0]}-{os.urandom(3).hex()}.log")
        with self.log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "actorwork", "--config", str(config), *args],
                cwd=config.parent,
                env={
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    "ACTORWORK_LOG_LEVEL": "info",
                    **env,
                },
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    async def ready(self, line: str) -> None:
        """Wait until ``line`` is logged; fails if the process exits first."""
        with anyio.fail_after(DEADLINE):
            while line not in self.stderr:
                assert self.process.poll() is None, f"exited early:\n{self.stderr}"
                await anyio.sleep(0.05)

    async def wait(self) -> int:
        return await anyio.to_thread.run_sync(self.process.wait, DEADLINE)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def processes() -> Iterator[list[Running]]:
    """The processes a test starts; killed at the end if still running."""
    started: list[Running] = []
    yield started
    for running in started:
        running.kill()


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorwork", "--config", str(config), *args],
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT), "ACTORWORK_LOG_LEVEL": "info"},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def _client_config(path: Path) -> Config:
    return load_config(path, env={})


async def _until_running(handle: JobHandle) -> None:
    with anyio.fail_after(DEADLINE):
        while await handle.status() != "running":  # noqa: ASYNC110 - polls the Scheduler
            await anyio.sleep(0.01)


# --- a signal stops cleanly ---------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_the_scheduler_stops_on_a_signal_with_status_0(
    tmp_path: Path, processes: list[Running], signum: signal.Signals
) -> None:
    config = _write_config(tmp_path)
    scheduler = Running(config, "scheduler")
    processes.append(scheduler)
    await scheduler.ready("scheduler_listening")
    scheduler.signal(signum)
    assert await scheduler.wait() == 0, scheduler.stderr
    assert "Traceback" not in scheduler.stderr
    assert f"stopping                       signal={signum.name}" in scheduler.stderr


async def test_a_scheduler_in_standby_stops_on_a_signal_with_status_0(
    tmp_path: Path, processes: list[Running]
) -> None:
    config = _write_config(tmp_path)
    leader = Running(config, "scheduler")
    processes.append(leader)
    await leader.ready("scheduler_listening")
    standby = Running(config, "scheduler")
    processes.append(standby)
    await standby.ready("scheduler_standby")
    standby.signal(signal.SIGTERM)
    assert await standby.wait() == 0, standby.stderr
    assert "Traceback" not in standby.stderr
    leader.signal(signal.SIGTERM)
    assert await leader.wait() == 0, leader.stderr


async def test_a_scheduler_taken_over_while_paused_exits_3(
    tmp_path: Path, processes: list[Running]
) -> None:
    config = _write_config(tmp_path, leader_lease=1.0)
    first = Running(config, "scheduler")
    processes.append(first)
    await first.ready("scheduler_listening")
    first.signal(signal.SIGSTOP)
    # Elsewhere: the paused one still holds its port.
    address = f"tcp://127.0.0.1:{_free_port()}"
    second = Running(config, "scheduler", ACTORWORK_SCHEDULER__ADDRESS=address)
    processes.append(second)
    await second.ready("scheduler_listening")  # once the paused one's lease ran out
    first.signal(signal.SIGCONT)
    assert await first.wait() == 3, first.stderr
    assert "scheduler_deposed" in first.stderr
    second.signal(signal.SIGTERM)
    assert await second.wait() == 0, second.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_an_idle_pool_stops_on_a_signal_with_status_0(
    tmp_path: Path, processes: list[Running], signum: signal.Signals
) -> None:
    config = _write_config(tmp_path)
    pool = Running(config, "pool")
    processes.append(pool)
    await pool.ready("pools_running")
    pool.signal(signum)
    assert await pool.wait() == 0, pool.stderr
    assert "Traceback" not in pool.stderr
    assert "pool_drained" in pool.stderr


async def test_a_pool_stopped_by_a_signal_finishes_the_running_job_within_grace(
    tmp_path: Path, processes: list[Running]
) -> None:
    config = _write_config(tmp_path, grace=120.0)
    scheduler = Running(config, "scheduler")
    processes.append(scheduler)
    await scheduler.ready("scheduler_listening")
    pool = Running(config, "pool")
    processes.append(pool)
    await pool.ready("pools_running")
    async with JobSystem(_client_config(config)) as jobs:
        handle = await jobs.submit(works.sleep, 1.0)
        await _until_running(handle)
        pool.signal(signal.SIGTERM)
        assert await pool.wait() == 0, pool.stderr
        view = await handle.view()
    assert "Traceback" not in pool.stderr
    assert "finished=1 pool=main returned=0 undelivered=0" in pool.stderr
    assert (view.status, view.attempt) == ("succeeded", 1)
    scheduler.signal(signal.SIGTERM)
    assert await scheduler.wait() == 0, scheduler.stderr


async def test_a_second_signal_hands_the_running_job_back_at_once(
    tmp_path: Path, processes: list[Running]
) -> None:
    config = _write_config(tmp_path, grace=3600.0)
    scheduler = Running(config, "scheduler")
    processes.append(scheduler)
    await scheduler.ready("scheduler_listening")
    pool = Running(config, "pool")
    processes.append(pool)
    await pool.ready("pools_running")
    async with JobSystem(_client_config(config)) as jobs:
        handle = await jobs.submit(works.sleep, 3600.0)
        await _until_running(handle)
        pool.signal(signal.SIGTERM)
        await pool.ready("pool_draining")
        pool.signal(signal.SIGTERM)
        assert await pool.wait() == 0, pool.stderr
        assert jobs.client is not None
        attempts = await jobs.client.attempts(handle.id)
        view = await handle.view()
    assert "Traceback" not in pool.stderr
    assert "stopping_now" in pool.stderr
    assert [(a.result.attempt, a.result.outcome) for a in attempts] == [(1, "returned")]
    assert view.status == "queued"  # waits for the next pool, not for the lease
    scheduler.signal(signal.SIGINT)
    assert await scheduler.wait() == 0, scheduler.stderr


# --- start-up errors: one line, status 2 --------------------------------------------


@pytest.fixture
def busy_address() -> Iterator[str]:
    """A tcp:// address another socket already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def _assert_one_line_error(done: subprocess.CompletedProcess[str], *names: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "ExceptionGroup" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("actorwork: error: "), done.stderr
    for name in names:
        assert name in error, error


@pytest.mark.parametrize("role", ["scheduler", "pool"])
def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path, busy_address: str, role: str) -> None:
    if role == "scheduler":
        config = _write_config(tmp_path, address=busy_address)
    else:  # a pool listens where [system] listen says
        config = _write_config(tmp_path, system=f'listen = "{busy_address}"')
    _assert_one_line_error(_run(config, role), repr(busy_address), "Address already in use")


@pytest.mark.parametrize("role", ["scheduler", "pool"])
def test_a_bad_address_is_one_line_naming_it(tmp_path: Path, role: str) -> None:
    config = _write_config(tmp_path, address="tcp://127.0.0.1:nope")
    _assert_one_line_error(_run(config, role), "scheduler.address", "'tcp://127.0.0.1:nope'")


def test_an_unreadable_store_is_one_line_naming_it(tmp_path: Path) -> None:
    store = tmp_path / "jobs.db"
    store.write_bytes(b"not a database" * 100)
    config = _write_config(tmp_path, store=str(store))
    _assert_one_line_error(_run(config, "scheduler"), repr(str(store)))


def test_a_store_that_cannot_be_created_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a directory")
    store = tmp_path / "file" / "jobs.db"
    config = _write_config(tmp_path, store=str(store))
    _assert_one_line_error(_run(config, "scheduler"), str(store))


def test_an_unusable_outbox_is_one_line_naming_it(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.write_text("a file, not a directory")
    config = _write_config(tmp_path, outbox=str(outbox))
    _assert_one_line_error(_run(config, "pool"), repr(str(outbox)))


@pytest.mark.parametrize("role", ["scheduler", "pool"])
def test_a_missing_module_is_one_line_naming_it(tmp_path: Path, role: str) -> None:
    config = _write_config(tmp_path, modules='"tests.jobs.works", "no_such_module_for_test"')
    _assert_one_line_error(_run(config, role), "jobs.modules", "'no_such_module_for_test'")


@pytest.mark.parametrize("role", ["scheduler", "pool"])
def test_a_missing_secret_file_is_one_line_naming_it(tmp_path: Path, role: str) -> None:
    secret = tmp_path / "no-such-secret"
    config = _write_config(tmp_path, system=f'secret_file = "{secret}"')
    _assert_one_line_error(_run(config, role), "system.secret_file", repr(str(secret)))


# --- one outbox, one Pool -------------------------------------------------------------


async def test_a_second_pool_on_the_same_outbox_refuses_to_start_naming_the_first(
    tmp_path: Path, processes: list[Running]
) -> None:
    config = _write_config(tmp_path)
    first = Running(config, "pool")
    processes.append(first)
    await first.ready("pools_running")

    second = await anyio.to_thread.run_sync(_run, config, "pool")
    _assert_one_line_error(second, repr(str(tmp_path / "outbox")), f"pid {first.process.pid}")

    first.kill()  # SIGKILL: the kernel releases the lock
    third = Running(config, "pool")
    processes.append(third)
    await third.ready("pools_running")
    third.signal(signal.SIGTERM)
    assert await third.wait() == 0, third.stderr


# --- an inline JobSystem left while a job runs ------------------------------------------


def _inline_config(tmp_path: Path, *, grace: float) -> Config:
    path = tmp_path / "inline.toml"
    path.write_text(
        f"""
[jobs]
topology = "inline"
modules = ["tests.jobs.works"]

[scheduler]
address = "inproc://lifecycle-{tmp_path.name}"
store = "{tmp_path}/inline.db"
lease = 3600.0

[pools.main]
kind = "local"
size = 1
outbox = "{tmp_path}/inline-outbox"
heartbeat = 0.5
grace = {grace}
"""
    )
    return load_config(path, env={})


def _errors(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]


async def test_leaving_a_job_system_lets_the_running_job_finish_within_grace(
    tmp_path: Path,
) -> None:
    config = _inline_config(tmp_path, grace=120.0)
    with structlog.testing.capture_logs() as logs:
        async with JobSystem(config) as jobs:
            handle = await jobs.submit(works.sleep, 0.5)
            await _until_running(handle)
    assert _errors(logs) == []
    async with JobSystem(config, pools=False) as jobs:
        assert jobs.client is not None
        view = await jobs.client.get(handle.id)
    assert (view.status, view.attempt) == ("succeeded", 1)


async def test_leaving_a_job_system_hands_back_a_job_past_grace_for_the_next_run(
    tmp_path: Path,
) -> None:
    """The job is not left leased (an hour here): the next JobSystem runs it at once."""
    config = _inline_config(tmp_path, grace=0.1)
    step = works.Step(history=str(tmp_path / "history"), seconds=3600.0, attempts=[1])
    with structlog.testing.capture_logs() as logs:
        async with JobSystem(config) as jobs:
            handle = await jobs.submit(works.traced, step)
            await _until_running(handle)
    assert _errors(logs) == []
    async with JobSystem(config) as jobs:
        assert jobs.client is not None
        assert await jobs.client.result(handle.id, timeout=DEADLINE) == f"{handle.id}/2"
        attempts = await jobs.client.attempts(handle.id)
    assert [(a.result.attempt, a.result.outcome) for a in attempts] == [
        (1, "returned"),
        (2, "succeeded"),
    ]


class _Reporter(Actor):
    """A stand-in for a Pool: hands one job to a worker as it starts."""

    def __init__(self, worker: ActorRef, spec: JobSpec) -> None:
        self.worker = worker
        self.spec = spec

    async def on_start(self) -> None:
        await self.worker.tell(ExecuteJob(self.spec))

    async def receive(self, message: WorkFinished) -> None:
        raise AssertionError(f"the stopped pool was sent {message!r}")


async def test_a_result_for_a_pool_that_stopped_is_dropped_without_a_traceback(
    tmp_path: Path,
) -> None:
    """The race of a close: a Pool stops (its attempts handed back) just before a worker
    reports. The worker says so in one line and goes on; nothing is logged as an error."""
    gate = tmp_path / "gate"
    step = works.Step(history=str(tmp_path / "history"), attempts=[], gate=str(gate))
    spec = JobSpec(id="late", work="traced", payload=msgspec.msgpack.encode(step), attempt=1)
    with structlog.testing.capture_logs() as logs:
        async with ActorSystem("lifecycle") as system:
            worker = await system.spawn(
                Worker(kind="local", modules=["tests.jobs.works"], pool="gone"), name="w"
            )
            pool = await system.spawn(_Reporter(worker, spec), name="gone")
            history = Path(step.history)
            await eventually(lambda: history.exists() and history.read_text(), "the job started")
            await system.stop(pool)
            gate.touch()
            handled = ("worker_result_dropped", "worker_report_failed")
            await eventually(
                lambda: any(e["event"] in handled for e in logs), "the worker's report handled"
            )
    assert _errors(logs) == []
    assert "worker_result_dropped" in [e["event"] for e in logs]
