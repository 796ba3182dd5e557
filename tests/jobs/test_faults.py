"""Fault tests of the job system (RELIABILITY.md F1-F15), each checked against I1-I6.

The Scheduler and the Pool run as ``python -m actorwork --config FILE scheduler`` and
``... pool``, each in a process group of its own, talking over a unix socket in the
test's directory; the Pool's workers are its child processes over ``pipe://``. The test
process is only a client. Faults are real signals. Every wait polls for a condition up
to a generous deadline; nothing asserts on speed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actorwork.client import Client
from actorwork.pool._outbox_format import scan
from actorwork.pool.outbox import CRASH_POINTS
from actorwork.stores.sqlite import SQLiteStore
from tests.jobs.harness import (
    DEADLINE,
    Driver,
    eventually,
    in_outbox,
    kill_group,
    outbox_entries,
)
from tests.jobs.history import History

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@dataclass
class Cluster(Driver):
    """A Scheduler and a Pool process on one config in ``tmp``, and a client to them."""

    tmp: Path
    lease: float = 2.0
    size: int = 2
    grace: float = 10.0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    history: History = field(init=False)
    client: Client | None = None

    def __post_init__(self) -> None:
        self.history = History(self.tmp / "history")
        self.config = self.tmp / "aw.toml"
        self.store = self.tmp / "jobs.db"
        self.outbox = self.tmp / "outbox"
        socket = self.tmp / "s.sock"
        assert len(str(socket)) < 100, f"unix socket path too long: {socket}"
        self.config.write_text(
            f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]

[scheduler]
address = "unix://{socket}"
store = "{self.store}"
lease = {self.lease}
retry_base = 0.2
retry_cap = 0.5

[pools.p]
kind = "process"
size = {self.size}
outbox = "{self.outbox}"
grace = {self.grace}
"""
        )

    # --- processes --------------------------------------------------------------------

    def start(self, role: str, *, crash_at: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``scheduler`` or ``pool`` in a new session (its own process group).

        ``crash_at`` names a point of the outbox's write path (CRASH_POINTS) where the
        process SIGKILLs itself, through the outbox's fault-injection hook.
        """
        assert role not in self.procs or self.procs[role].poll() is not None
        command = [sys.executable, "-m", "actorwork", "--config", str(self.config), role]
        if crash_at is not None:
            command[1:3] = ["-c", _CRASHING.format(point=crash_at)]
        with open(self.tmp / f"{role}.log", "ab") as log:
            proc = subprocess.Popen(
                command,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.procs[role] = proc
        return proc

    def signal(self, role: str, signum: int, *, group: bool = False) -> None:
        proc = self.procs[role]
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)

    def kill(self, role: str) -> None:
        """SIGKILL the role's whole process group and reap it."""
        proc = self.procs.pop(role)
        kill_group(proc)

    async def exited(self, role: str) -> int:
        proc = self.procs[role]
        code = await eventually(lambda: proc.poll() is not None, f"{role} to exit")
        del self.procs[role]
        return int(proc.returncode if code else -1)

    def log(self, role: str) -> str:
        path = self.tmp / f"{role}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        for role in list(self.procs):
            proc = self.procs[role]
            try:
                os.killpg(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.kill(role)

    # --- the client ---------------------------------------------------------------------

    def connected(self) -> AbstractAsyncContextManager[Client]:
        """A client system connected to the Scheduler (waiting for it to listen)."""
        return self.connected_to(self.config)

    def recorded_now(self, job_id: str) -> list[tuple[int, bool, str]]:
        """``(attempt, committed, note)`` of the job's recorded results, read while the
        Scheduler runs (a read-only SQLite connection beside it)."""
        if not self.store.exists():
            return []
        db = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(
                "SELECT attempt, committed, note FROM results WHERE job_id = ? ORDER BY attempt",
                (job_id,),
            ).fetchall()
        finally:
            db.close()
        return [(int(a), bool(c), str(n)) for a, c, n in rows]

    def outbox_entries(self) -> dict[str, bytes]:
        """The outbox's live entries (see :func:`tests.jobs.harness.outbox_entries`)."""
        return outbox_entries(self.outbox)

    async def collect(self) -> History:
        """Read every recorded result from the store (after the Scheduler stopped)."""
        assert "scheduler" not in self.procs, "stop the scheduler before reading its store"
        return await self.collect_from(SQLiteStore(self.store))

    async def finish(self) -> History:
        """Drain, stop both processes, read the store and check I1-I4."""
        await self.drained()
        for role in ("pool", "scheduler"):
            if role in self.procs:
                self.signal(role, signal.SIGTERM)
                await self.exited(role)
        history = await self.collect()
        history.check()
        return history


#: Runs ``actorwork`` with the outbox's hook set to SIGKILL this process at one point.
_CRASHING = """
import os, signal, sys
import actorwork.pool.outbox as outbox
from actorwork.cli.main import main

def crash(point):
    if point == {point!r}:
        os.kill(os.getpid(), signal.SIGKILL)

outbox.crash_hook = crash
sys.exit(main(sys.argv[1:]))
"""


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


# --- F1, F3, F4: workers that die ------------------------------------------------------


async def test_f1_worker_sigkill_mid_job(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory()
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        job = await cluster.submit("f1", cluster.step(seconds=30.0, attempts=[1]), retries=2)
        (first,) = await eventually(lambda: cluster.history.started(job, 1), "attempt 1")
        os.kill(first.pid, signal.SIGKILL)
        final = await cluster.drained()
        history = await cluster.finish()
    assert final[job].status == "succeeded"
    assert final[job].attempt == 2
    lost = history.committed(job)[0]
    assert (lost.attempt, lost.outcome) == (1, "lost")
    assert "exited" in lost.error


async def test_f3_work_exiting_is_a_failed_attempt_never_a_success(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory()
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        always = await cluster.submit("f3-always", cluster.step(then="exit"), retries=1)
        once = await cluster.submit("f3-once", cluster.step(then="exit", attempts=[1]), retries=1)
        history = await cluster.finish()
    final = history.final
    assert (final[always].status, final[always].attempt) == ("dead", 2)
    assert "without a result" in final[always].error
    assert (final[once].status, final[once].attempt) == ("succeeded", 2)
    exits = [row.result for row in history.recorded[always]]
    exits += [row.result for row in history.recorded[once] if row.result.attempt == 1]
    assert len(exits) == 3
    for result in exits:
        assert result.outcome == "lost", result
        assert "exited (code 0) without a result" in result.error
    assert not [e for e in history.executions() if e.job_id == always and e.event == "end"]


async def test_f4_poison_job_dies_alone(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory()
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        poison = await cluster.submit("f4-poison", cluster.step(then="die"), retries=2)
        others = [await cluster.submit(f"f4-ok-{n}", cluster.step(seconds=0.2)) for n in range(8)]
        history = await cluster.finish()
    final = history.final
    assert (final[poison].status, final[poison].attempt) == ("dead", 3)
    assert "exited (code -9) without a result" in final[poison].error
    assert [r.outcome for r in history.committed(poison)] == ["lost", "lost", "lost"]
    assert len(history.started(poison)) == 3
    for job in others:
        assert (final[job].status, final[job].attempt) == ("succeeded", 1), final[job]


# --- F9, F10: leases -----------------------------------------------------------------------


async def test_f9_paused_worker_is_superseded_and_its_late_result_fenced(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory(lease=1.5)
    gate = tmp_path / "gate"
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        step = cluster.step(seconds=2.0, attempts=[1], gate=str(gate))
        job = await cluster.submit("f9", step, retries=2)
        (first,) = await eventually(lambda: cluster.history.started(job, 1), "attempt 1")
        os.kill(first.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        # Reassigned: attempt 2 starts (on the other worker) while attempt 1 is stopped.
        await eventually(lambda: cluster.history.started(job, 2), "attempt 2 (reassigned)")
        await eventually(lambda: time.monotonic() - stopped >= 2 * cluster.lease, "2x lease")
        os.kill(first.pid, signal.SIGCONT)
        # The late result of attempt 1 reaches the store while attempt 2 still runs.
        late = await eventually(
            lambda: [r for r in cluster.recorded_now(job) if r[0] == 1], "the late result"
        )
        gate.touch()
        history = await cluster.finish()
    assert late == [(1, False, "superseded")]
    assert (history.final[job].status, history.final[job].attempt) == ("succeeded", 2)
    assert [r.attempt for r in history.committed(job)] == [2]
    ended = [e for e in history.executions() if e.job_id == job and e.attempt == 1]
    assert [e.event for e in ended] in (["start", "end"], ["start", "stopped"]), (
        ended
    )  # attempt 1 did finish, late; its result was fenced (I4)


async def test_f10_long_job_with_a_responsive_worker_is_never_redelivered(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(lease=1.5, size=3)
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        long = await cluster.submit("f10-long", cluster.step(seconds=3 * cluster.lease))
        stuck = await cluster.submit(
            "f10-stuck", cluster.step(seconds=3 * cluster.lease, block=True, attempts=[1])
        )
        history = await cluster.finish()
    final = history.final
    assert (final[long].status, final[long].attempt) == ("succeeded", 1)
    assert len(history.started(long)) == 1
    assert (final[stuck].status, final[stuck].attempt) == ("succeeded", 2)
    events = [(e.event, e.attempt) for e in history.executions() if e.job_id == stuck]
    # Redelivered while attempt 1 still blocked its worker: after the lease, not after it.
    assert events.index(("start", 2)) < events.index(("end", 1)), events


# --- F13: graceful stop ------------------------------------------------------------------


def _drained_line(cluster: Cluster) -> str:
    lines = [line for line in cluster.log("pool").splitlines() if "pool_drained" in line]
    assert len(lines) == 1, lines
    return lines[0]


async def test_f13_sigterm_lets_running_jobs_finish_and_a_second_hands_back_now(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory(grace=DEADLINE)
    gate = tmp_path / "gate"
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        # ``finishing`` waits for the gate (opened once the drain began); ``stuck`` runs
        # far past any grace unless stopped.
        finishing = await cluster.submit("f13-finishing", cluster.step(attempts=[], gate=str(gate)))
        stuck = await cluster.submit("f13-stuck", cluster.step(seconds=600.0, attempts=[1]))
        for job in (finishing, stuck):
            await eventually(lambda job=job: cluster.history.started(job, 1), f"{job} to start")
        cluster.signal("pool", signal.SIGTERM)
        await eventually(lambda: "pool_draining" in cluster.log("pool"), "the drain to begin")
        queued = await cluster.submit("f13-queued", cluster.step())  # not for a draining pool
        gate.touch()
        await eventually(lambda: cluster.recorded_now(finishing), "the finished job's result")
        assert (await cluster.client.get(queued)).status == "queued"  # type: ignore[union-attr]
        cluster.signal("pool", signal.SIGTERM)  # escalate: hand back now
        assert await cluster.exited("pool") == 0
        assert "returned=1" in _drained_line(cluster)
        assert cluster.outbox_entries() == {}  # everything was acknowledged (I5)
        cluster.start("pool")
        history = await cluster.finish()
    final = history.final
    assert (final[finishing].status, final[finishing].attempt) == ("succeeded", 1)
    assert [r.result.outcome for r in history.recorded[stuck]] == ["returned", "succeeded"]
    assert (final[stuck].status, final[stuck].attempt) == ("succeeded", 2)
    assert (final[queued].status, final[queued].attempt) == ("succeeded", 1)


async def test_f13_jobs_not_finished_within_the_grace_are_handed_back_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(grace=1.0)
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        stuck = await cluster.submit("f13-stuck", cluster.step(seconds=600.0, attempts=[1]))
        await eventually(lambda: cluster.history.started(stuck, 1), "the job to start")
        cluster.signal("pool", signal.SIGTERM)
        assert await cluster.exited("pool") == 0
        assert "returned=1" in _drained_line(cluster)
        assert (await cluster.client.get(stuck)).status == "queued"  # type: ignore[union-attr]
        cluster.start("pool")
        history = await cluster.finish()
    rows = history.recorded[stuck]
    assert [(r.result.attempt, r.result.outcome, r.committed) for r in rows] == [
        (1, "returned", True),
        (2, "succeeded", True),
    ]
    # The stopped attempt's own late result never reached the Scheduler.
    assert history.final[stuck].result is not None
    assert history.final[stuck].result.attempt == 2


# --- F5, F6, F15: the Pool or the Scheduler killed; the outbox ----------------------------


def _in_outbox(cluster: Cluster, *job_ids: str) -> bool:
    return in_outbox(cluster.outbox, *job_ids)


async def test_f5_pool_sigkill_with_undelivered_results(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    # The lease outlasts a loaded machine's restart of the Pool, so the persisted results
    # arrive before their attempts are presumed lost: then no job runs twice (a rerun
    # would still keep I1-I4; this test asks for the stronger outcome).
    cluster = cluster_factory(lease=4.0, size=4)
    gate = tmp_path / "gate"
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        done = [
            await cluster.submit(f"f5-done-{n}", cluster.step(attempts=[], gate=str(gate)))
            for n in range(3)
        ]
        inflight = await cluster.submit("f5-inflight", cluster.step(seconds=600.0, attempts=[1]))
        for job in [*done, inflight]:
            await eventually(lambda job=job: cluster.history.started(job, 1), f"{job} to start")
        cluster.signal("scheduler", signal.SIGSTOP)  # results cannot be acknowledged
        gate.touch()
        await eventually(lambda: _in_outbox(cluster, *done), "the results in the outbox")
        cluster.kill("pool")
        cluster.signal("scheduler", signal.SIGCONT)
        cluster.start("pool")  # the same outbox
        history = await cluster.finish()
    final = history.final
    for job in done:  # I5: the persisted results survived; the jobs did not run again
        assert (final[job].status, final[job].attempt) == ("succeeded", 1), final[job]
        assert len(history.started(job)) == 1
    # Retried after its lease; an attempt sent to the dead Pool's connection counts too.
    assert final[inflight].status == "succeeded"
    assert final[inflight].attempt >= 2
    assert next(e.attempt for e in history.executions() if e.job_id == inflight) == 1
    assert cluster.outbox_entries() == {}


async def test_f6_scheduler_sigkill_while_pool_finishes_work(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    # Nothing here waits for a lease to run out: a lease far past a loaded machine's
    # late heartbeats (a worker's answer to the Pool's ping may take longer than its
    # third of a heartbeat) keeps a slow heartbeat from ending attempt 1 before the kill.
    cluster = cluster_factory(lease=10.0, size=4)
    gate = tmp_path / "gate"
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        jobs = [
            await cluster.submit(f"f6-{n}", cluster.step(attempts=[], gate=str(gate)))
            for n in range(4)
        ]
        for job in jobs:
            await eventually(lambda job=job: cluster.history.started(job, 1), f"{job} to start")
        cluster.kill("scheduler")
    gate.touch()
    # The Pool keeps working and keeps the results on disk while it retries (backoff).
    await eventually(lambda: _in_outbox(cluster, *jobs), "the results in the outbox")
    await eventually(
        lambda: cluster.log("pool").count("scheduler_unreachable") >= 3, "reconnect attempts"
    )
    cluster.start("scheduler")  # the same store
    async with cluster.connected():
        history = await cluster.finish()
    for job in jobs:  # I5 both ways: submits and results survived; one execution each
        assert (history.final[job].status, history.final[job].attempt) == ("succeeded", 1)
        assert len(history.started(job)) == 1
        assert len(history.committed(job)) == 1
    assert cluster.outbox_entries() == {}


# The compaction points need a segment past its size limit (4 MiB in a Pool); they are
# crashed at in tests/test_outbox.py with small segments.
@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if not p.startswith("compaction")])
async def test_f14_pool_killed_while_persisting_a_result(
    cluster_factory: Callable[..., Cluster], point: str
) -> None:
    """F14 in a real Pool: killed after the append, and after its fdatasync.

    A SIGKILL cannot undo a completed write, so after the restart the result is whole
    and delivered (the job may also run again if its lease ended first); never torn,
    nothing quarantined.
    """
    cluster = cluster_factory(lease=1.5, size=1)
    cluster.start("scheduler")
    cluster.start("pool", crash_at=point)
    async with cluster.connected():
        job = await cluster.submit("f14", cluster.step())
        await eventually(lambda: cluster.procs["pool"].poll() is not None, "the pool to crash")
        assert cluster.procs["pool"].returncode == -signal.SIGKILL
        cluster.kill("pool")
        cluster.start("pool")
        history = await cluster.finish()
    assert history.final[job].status == "succeeded"
    assert len(history.committed(job)) == 1
    quarantine = cluster.outbox / "quarantine"
    assert not quarantine.exists() or list(quarantine.iterdir()) == []
    assert cluster.outbox_entries() == {}
    # I5: the result written before the crash reached the Scheduler, committed or fenced.
    assert 1 in [row.result.attempt for row in history.recorded[job]]


async def test_f15_corrupt_outbox_records_are_quarantined(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory(lease=1.5, size=3)
    gates = [tmp_path / f"gate-{n}" for n in range(3)]
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        jobs = [
            await cluster.submit(f"f15-{n}", cluster.step(attempts=[], gate=str(gate)))
            for n, gate in enumerate(gates)
        ]
        for job in jobs:
            await eventually(lambda job=job: cluster.history.started(job, 1), f"{job} to start")
        cluster.kill("scheduler")
    for job, gate in zip(jobs, gates, strict=True):  # one record per result, in this order
        gate.touch()
        await eventually(lambda job=job: _in_outbox(cluster, job), f"{job} in the outbox")
    cluster.kill("pool")
    (segment,) = cluster.outbox.glob("segment-*.log")
    blob = bytearray(segment.read_bytes())
    records, damage = scan(bytes(blob))
    assert damage == []
    assert [jobs.index(job) for r in records for job in jobs if job.encode() in r.data] == [0, 1, 2]
    first, _, last = records
    blob[first.offset + first.length // 2] ^= 0x01  # a bit flip inside the first result
    segment.write_bytes(bytes(blob[: last.offset + last.length // 2]))  # the last one torn
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        history = await cluster.finish()
    # The segment is copied aside as it was, with a logged reason per damaged record.
    (copy,) = (cluster.outbox / "quarantine").iterdir()
    assert copy.name.startswith(f"{segment.name}.")
    assert cluster.log("pool").count("outbox_segment_quarantined") == 2
    final = history.final
    # The damaged results were never used: those jobs ran again (lease expiry).
    for job in (jobs[0], jobs[2]):
        assert (final[job].status, final[job].attempt) == ("succeeded", 2), final[job]
    # The record between them was salvaged and delivered: that job ran once.
    assert (final[jobs[1]].status, final[jobs[1]].attempt) == ("succeeded", 1)
    assert len(history.started(jobs[1])) == 1
    assert cluster.outbox_entries() == {}
