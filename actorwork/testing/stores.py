"""The store conformance suite: every :class:`~actorwork.stores.base.JobStore` passes it.

A harness hands out URLs of fresh, empty stores of one backend; each ``check_*``
coroutine takes a harness and asserts one part of the contract in
:mod:`actorwork.stores.base`: the order commits apply in, that a batch is all or
nothing, what survives a crash (a process SIGKILLed right after its commit), fencing
(a store that lost the lease writes nothing), retention, paging, unique keys, the
history of attempts, artifacts, schedules and paused queues. A third-party store is checked by
writing a harness for it::

    @pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
    async def test_store_conformance(check):
        await check(MyStoreHarness())
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from actorwork.errors import LeadershipLost, StoreError
from actorwork.messages import Artifact, WorkResult
from actorwork.stores.base import (
    DropSchedule,
    Forget,
    Job,
    JobStore,
    Persist,
    PruneRule,
    Record,
    Retention,
    SaveSchedule,
    SetFence,
    SetPaused,
)
from actorwork.stores.registry import open_store
from actorwork.testing._postgres import TemporaryPostgres, postgres_binaries
from actorwork.work import Keep

__all__ = [
    "STORE_CHECKS",
    "PostgreSQLHarness",
    "SQLiteHarness",
    "StoreHarness",
    "TemporaryPostgres",
    "postgres_binaries",
]

HOUR = 3600.0
NOW = 1_700_000_000.0


class StoreHarness:
    """Hands out the URLs of fresh stores of one backend."""

    name = ""

    def new_url(self) -> str:
        """The URL of a new, empty store."""
        raise NotImplementedError

    @asynccontextmanager
    async def store(self, url: str | None = None) -> AsyncIterator[JobStore]:
        """An open store on ``url`` (a new one if None), closed after."""
        store = open_store(url or self.new_url())
        await store.open()
        try:
            yield store
        finally:
            await store.aclose()


class SQLiteHarness(StoreHarness):
    """Stores as files in one directory."""

    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def new_url(self) -> str:
        return f"sqlite://{self.directory / uuid.uuid4().hex[:8]}.db"


class PostgreSQLHarness(StoreHarness):
    """Stores as databases of one running server."""

    name = "postgresql"

    def __init__(self, server: TemporaryPostgres) -> None:
        self.server = server

    def new_url(self) -> str:
        return self.server.url(self.server.create_database())


def job(job_id: str, seq: int, status: str = "queued", **fields: object) -> Job:
    """A job row for the checks."""
    return Job(
        id=job_id,
        work=str(fields.pop("work", "noop")),
        queue=str(fields.pop("queue", "default")),
        priority=0,
        payload=b"\xc0",
        status=status,  # type: ignore[arg-type]
        attempt=int(fields.pop("attempt", 1)),  # type: ignore[call-overload]
        max_attempts=3,
        created=float(fields.pop("created", NOW)),  # type: ignore[arg-type]
        updated=float(fields.pop("updated", NOW)),  # type: ignore[arg-type]
        seq=seq,
        **fields,  # type: ignore[arg-type]
    )


def finished(job_id: str, seq: int, *, data: bytes = b"", **fields: object) -> list[object]:
    """The effects that finish a job with a result (and an artifact when ``data``)."""
    artifacts = (Artifact("out.pdf", data, "application/pdf"),) if data else ()
    result = WorkResult(job_id=job_id, attempt=1, outcome="succeeded", artifacts=artifacts)
    return [Persist(job(job_id, seq, "succeeded", result=result, **fields)), Record(result, True)]


# --- the checks ---------------------------------------------------------------------------


async def check_commit_order(harness: StoreHarness) -> None:
    """Later commits win, within a batch and across batches; live jobs come by ``seq``."""
    async with harness.store() as store:
        await store.apply([Persist(job("b", 2)), Persist(job("a", 1))])
        await store.apply([Persist(job("a", 1, "running", attempt=2))])
        await store.apply([Persist(job("c", 3)), Persist(job("c", 3, "retrying", error="x"))])
        live = await store.live_jobs()
        assert [(j.id, j.status) for j in live] == [
            ("a", "running"),
            ("b", "queued"),
            ("c", "retrying"),
        ]
        assert live[0].attempt == 2
        assert live[2].error == "x"
        await store.apply([*finished("a", 1), Persist(job("d", 4)), Forget("d")])
        assert [j.id for j in await store.live_jobs()] == ["b", "c"]
        assert await store.get("d") is None  # persisted and forgotten in one batch
        assert await store.max_seq() == 3


async def check_batch_is_all_or_nothing(harness: StoreHarness) -> None:
    """A batch that cannot be written raises StoreError and leaves nothing of itself."""
    async with harness.store() as store:
        broken = job("bad", 2)
        broken.work = None  # type: ignore[assignment]
        try:
            await store.apply(
                [SaveSchedule("s", b"def", "config"), Persist(job("ok", 1)), Persist(broken)]
            )
        except StoreError:
            pass
        else:
            raise AssertionError("a batch with a row the store refuses was committed")
        assert await store.get("ok") is None
        assert await store.schedules() == []
        await store.apply([Persist(job("ok", 1))])  # the store is still usable
        assert await store.get("ok") is not None


_CRASHER = """
import asyncio, os, signal, sys
from actorwork.stores.registry import open_store
from actorwork.testing.stores import finished, job
from actorwork.stores.base import Persist

async def main():
    store = open_store(sys.argv[1])
    await store.open()
    await store.apply([Persist(job("live", 1)), *finished("done", 2)])
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def check_commits_survive_a_crash(harness: StoreHarness) -> None:
    """What a process committed survives its SIGKILL (no clean shutdown, its
    connections dropped); the store opens again and loads it."""
    url = harness.new_url()
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-c", _CRASHER, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    )
    assert done.stdout.strip() == "committed", done.stderr
    assert done.returncode == -9
    async with harness.store(url) as store:
        assert [j.id for j in await store.live_jobs()] == ["live"]
        found = await store.get("done")
        assert found is not None
        assert found.result is not None
        assert found.result.outcome == "succeeded"


async def check_fencing(harness: StoreHarness) -> None:
    """One leader at a time; after its lease another takes over with the next epoch,
    and the first one's writes raise LeadershipLost and write nothing."""
    url = harness.new_url()
    async with harness.store(url) as first, harness.store(url) as second:
        lease = 0.5
        now = time.monotonic()
        epoch = await first.acquire("host-a:1:a", now + lease, now, "boot")
        assert epoch is not None
        assert first.epoch == epoch
        await first.apply([Persist(job("before", 1))])
        assert await second.acquire("host-b:2:b", now + lease, now, "boot") is None
        assert await first.leader() == "host-a:1:a"

        await anyio.sleep(lease + 0.2)  # the lease runs out (on the store's own clock)
        later = time.monotonic()
        taken = await second.acquire("host-b:2:b", later + 30, later, "boot")
        assert taken == epoch + 1
        assert await second.leader() == "host-b:2:b"

        lost = None
        try:
            await first.apply([Persist(job("after", 2)), SaveSchedule("s", b"d", "config")])
        except LeadershipLost as exc:
            lost = exc
        assert lost is not None, "a deposed leader's write was committed"
        assert repr("host-b:2:b") in str(lost)
        assert not await first.renew(epoch, time.monotonic() + 30)
        assert await second.get("after") is None
        assert await second.schedules() == []
        assert await second.get("before") is not None
        await second.apply([Persist(job("new", 3))])
        assert await second.renew(taken, time.monotonic() + 30)

        # A clean stop releases the lease: a standby takes over at once.
        await second.release()
        await second.release()  # idempotent
        now = time.monotonic()
        assert await first.acquire("host-a:1:c", now + 30, now, "boot") == taken + 1


async def check_retention_by_rows_and_hours(harness: StoreHarness) -> None:
    """``expired`` follows rows and hours, by status and work, oldest first."""
    async with harness.store() as store:
        effects: list[object] = []
        for seq in range(10):  # succeeded, an hour apart, the newest now
            effects += finished(f"s{seq}", seq, updated=NOW - (9 - seq) * HOUR)
        effects += finished("w1", 20, work="keepme", updated=NOW - 100 * HOUR)
        effects.append(Persist(job("f1", 21, status="failed", updated=NOW - 100 * HOUR)))
        await store.apply(effects)

        by_rows = [PruneRule("succeeded", Keep(rows=3), besides=("keepme",))]
        assert await store.expired(by_rows, NOW, 100) == [f"s{i}" for i in range(7)]
        assert await store.expired(by_rows, NOW, 2) == ["s0", "s1"]  # a small batch
        by_hours = [PruneRule("succeeded", Keep(hours=4.5), besides=("keepme",))]
        assert await store.expired(by_hours, NOW, 100) == [f"s{i}" for i in range(5)]
        own = [PruneRule("succeeded", Keep(hours=200.0), only=("keepme",))]
        assert await store.expired(own, NOW, 100) == []
        failed = [PruneRule("failed", Keep(hours=99.0))]
        assert await store.expired(failed, NOW, 100) == ["f1"]

        await store.apply([Forget(f"s{i}") for i in range(7)])
        await store.reclaim()
        assert await store.expired(by_rows, NOW, 100) == []
        assert await store.attempts("s0") == []
        assert await store.get("s7") is not None


async def check_live_jobs_are_never_expired_nor_forgotten(harness: StoreHarness) -> None:
    """Retention never picks a live job, and a Forget of one (retried since) is ignored."""
    async with harness.store() as store:
        old = NOW - 1000 * HOUR
        live = ["scheduled", "queued", "running", "retrying"]
        await store.apply(
            [Persist(job(f"live-{s}", i, status=s, updated=old)) for i, s in enumerate(live)]
            + finished("done", 9, updated=old)
        )
        rules = Retention(keep={"succeeded": Keep(hours=0.0, rows=0)}).rules([])
        assert await store.expired(rules, NOW, 100) == ["done"]
        await store.apply([Forget(f"live-{s}") for s in live])
        assert [j.id for j in await store.live_jobs()] == [f"live-{s}" for s in live]


async def check_paging(harness: StoreHarness) -> None:
    """``find``: newest first, by status, queue, work and creation time, ``limit`` a page,
    ``before`` the next."""
    async with harness.store() as store:
        effects: list[object] = []
        for seq in range(25):
            queue = "even" if seq % 2 == 0 else "odd"
            status = "succeeded" if seq % 3 == 0 else "queued"
            effects.append(Persist(job(f"j{seq:02}", seq, status, queue=queue)))
        await store.apply(effects)
        pages: list[list[int]] = []
        before: int | None = None
        while True:
            page = await store.find(status=None, queue=None, limit=10, before=before)
            if not page:
                break
            pages.append([j.seq for j in page])
            before = page[-1].seq
        assert pages == [list(range(24, 14, -1)), list(range(14, 4, -1)), [4, 3, 2, 1, 0]]
        found = await store.find(status="succeeded", queue="even", limit=100)
        assert [j.seq for j in found] == [24, 18, 12, 6, 0]
        found = await store.find(status="queued", queue="odd", limit=3, before=20)
        assert [j.seq for j in found] == [19, 17, 13]
        await store.apply(
            [
                Persist(job("w1", 30, work="mail", created=NOW + 10)),
                Persist(job("w2", 31, work="mail", created=NOW + 20)),
                Persist(job("w3", 32, work="other", created=NOW + 20)),
            ]
        )
        found = await store.find(status=None, queue=None, limit=100, work="mail")
        assert [j.id for j in found] == ["w2", "w1"]
        found = await store.find(status=None, queue=None, limit=100, since=NOW + 10, until=NOW + 20)
        assert [j.id for j in found] == ["w1"]


async def check_counting(harness: StoreHarness) -> None:
    """``count``: how many jobs ``find`` would return with the same filters, unlimited."""
    async with harness.store() as store:
        assert await store.count(status=None, queue=None) == 0
        await store.apply(
            [
                Persist(job(f"c{seq:02}", seq, status, queue=queue, work=work, created=NOW + seq))
                for seq, (status, queue, work) in enumerate(
                    [("failed", "default", "mail")] * 3
                    + [("failed", "other", "mail")] * 2
                    + [("succeeded", "default", "mail")] * 4
                    + [("failed", "default", "pdf")] * 1
                )
            ]
        )
        assert await store.count(status=None, queue=None) == 10
        assert await store.count(status="failed", queue=None, work="mail") == 5
        assert await store.count(status="failed", queue="default", work="mail") == 3
        assert await store.count(status=None, queue=None, work="pdf") == 1
        assert await store.count(status="dead", queue=None) == 0
        assert await store.count(status=None, queue=None, since=NOW + 2, until=NOW + 5) == 3
        # A later commit that changes a job's status moves it between counts.
        await store.apply([Persist(job("c00", 0, "succeeded", work="mail", created=NOW))])
        assert await store.count(status="failed", queue=None, work="mail") == 4


async def check_unique_keys_and_fields_round_trip(harness: StoreHarness) -> None:
    """Every persisted field of a job comes back as written, unique key included."""
    async with harness.store() as store:
        written = job(
            "u",
            7,
            "scheduled",
            unique_key="report:2024-01",
            due=NOW + 60,
            timeout=12.5,
            failures=2,
            progress=0.5,
            progress_message="half",
            context={"tenant": "acme", "traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"},
        )
        written.payload = bytes(range(256))
        await store.apply([Persist(written), Persist(job("plain", 8))])
        for got in (await store.get("u"), (await store.live_jobs())[0]):
            assert got is not None
            assert (got.unique_key, got.due, got.timeout, got.failures) == (
                "report:2024-01",
                NOW + 60,
                12.5,
                2,
            )
            assert (got.progress, got.progress_message, got.payload) == (
                0.5,
                "half",
                bytes(range(256)),
            )
            assert got.context == written.context
        plain = await store.get("plain")
        assert plain is not None
        assert (plain.unique_key, plain.context) == (None, {})
        assert (plain.depends_on, plain.when, plain.workflow, plain.path) == (
            (),
            "succeeded",
            "",
            "",
        )


async def check_dependencies_and_workflow_nodes(harness: StoreHarness) -> None:
    """A job's parents, its ``when`` and its workflow node (id, path, policy) round-trip;
    ``find`` lists a workflow's nodes, newest first."""
    async with harness.store() as store:
        node = {"workflow": "wf-1", "policy": "finish"}
        await store.apply(
            [
                Persist(job("wf-1:r.a", 1, "succeeded", path="r.a", **node)),
                Persist(job("other", 2)),
                Persist(
                    job(
                        "wf-1:r.b[0]",
                        3,
                        "waiting",
                        path="r.b[0]",
                        depends_on=("wf-1:r.a", "other"),
                        when="finished",
                        **node,
                    )
                ),
            ]
        )
        for got in (await store.get("wf-1:r.b[0]"), (await store.live_jobs())[-1]):
            assert got is not None
            assert (got.depends_on, got.when) == (("wf-1:r.a", "other"), "finished")
            assert (got.workflow, got.path, got.policy) == ("wf-1", "r.b[0]", "finish")
        found = await store.find(status=None, queue=None, limit=10, workflow="wf-1")
        assert [j.id for j in found] == ["wf-1:r.b[0]", "wf-1:r.a"]


async def check_attempts_history(harness: StoreHarness) -> None:
    """Every attempt's result is kept; a duplicate never overwrites the first record; a
    late verdict marks it committed; the job's result is its latest committed one."""
    async with harness.store() as store:
        first = WorkResult(job_id="h", attempt=1, outcome="failed", error="boom")
        stale = WorkResult(job_id="h", attempt=2, outcome="succeeded", value=b"\x01")
        again = WorkResult(job_id="h", attempt=2, outcome="succeeded", value=b"\x02")
        newest = WorkResult(job_id="h", attempt=3, outcome="succeeded", value=b"\x03")
        await store.apply([Persist(job("h", 1, "retrying")), Record(first, True)])
        await store.apply([Record(stale, False, "superseded by attempt 3")])
        await store.apply([Record(again, False, "duplicate")])
        await store.apply([Persist(job("h", 1, "succeeded", attempt=3)), Record(newest, True)])
        assert await store.attempts("h") == [
            (first, True, ""),
            (stale, False, "superseded by attempt 3"),
            (newest, True, ""),
        ]
        done = await store.get("h")
        assert done is not None
        assert done.result == newest
        await store.apply([Record(stale, True, "committed late")])
        assert (await store.attempts("h"))[1] == (stale, True, "committed late")


async def check_artifacts(harness: StoreHarness) -> None:
    """Artifacts come back with their bytes by id, as references in listings, and go
    with the last job that names them."""
    async with harness.store() as store:
        blob = os.urandom(300_000)
        await store.apply(finished("a", 1, data=blob))
        await store.apply(finished("b", 2, data=blob))
        got = await store.get("a")
        assert got is not None
        assert got.result is not None
        [artifact] = got.result.artifacts
        assert (artifact.data, artifact.size, artifact.media_type) == (
            blob,
            len(blob),
            "application/pdf",
        )
        [(attempt, _, _)] = await store.attempts("a")
        assert attempt.artifacts[0].data == blob
        [listed] = [j for j in await store.find(status=None, queue=None, limit=10) if j.id == "a"]
        assert listed.result is not None
        assert listed.result.artifacts[0].is_reference
        await store.apply([Forget("a")])
        got = await store.get("b")
        assert got is not None
        assert got.result is not None
        assert got.result.artifacts[0].data == blob


async def check_schedules(harness: StoreHarness) -> None:
    """Schedules are saved, their fences only move forward, and a drop removes both."""
    async with harness.store() as store:
        await store.apply([SaveSchedule("b", b"B", "api"), SaveSchedule("a", b"A", "config")])
        await store.apply([SetFence("a", NOW), Persist(job("fired", 1))])
        await store.apply([SetFence("a", NOW - 60)])  # never backwards
        await store.apply([SaveSchedule("a", b"A2", "config")])  # keeps its fence
        assert await store.schedules() == [(b"A2", "config", NOW), (b"B", "api", None)]
        await store.apply([DropSchedule("b")])
        assert await store.schedules() == [(b"A2", "config", NOW)]


async def check_paused_queues(harness: StoreHarness) -> None:
    """A paused queue stays paused in the store, across a reopen, until resumed."""
    url = harness.new_url()
    async with harness.store(url) as store:
        assert await store.paused_queues() == []
        await store.apply([SetPaused("mail", True), SetPaused("pdf", True)])
        await store.apply([SetPaused("mail", True)])  # twice is once
    async with harness.store(url) as store:
        assert await store.paused_queues() == ["mail", "pdf"]
        await store.apply([SetPaused("mail", False), Persist(job("j", 1))])
        assert await store.paused_queues() == ["pdf"]


STORE_CHECKS: tuple[Callable[[StoreHarness], Awaitable[None]], ...] = (
    check_commit_order,
    check_batch_is_all_or_nothing,
    check_commits_survive_a_crash,
    check_fencing,
    check_retention_by_rows_and_hours,
    check_live_jobs_are_never_expired_nor_forgotten,
    check_paging,
    check_counting,
    check_unique_keys_and_fields_round_trip,
    check_dependencies_and_workflow_nodes,
    check_attempts_history,
    check_artifacts,
    check_schedules,
    check_paused_queues,
)


def temporary_directory() -> Path:
    """A new private directory for a harness outside pytest."""
    return Path(tempfile.mkdtemp(prefix="actorwork-stores-"))
