"""The SQLite store does not grow without bound: one copy of each result, artifacts as
files, and the space given back. Which jobs expire (never live ones) is checked on
every store by the conformance suite (:mod:`actorwork.testing.stores`)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import msgspec
import pytest

from actorwork.messages import Artifact, WorkResult
from actorwork.stores.base import Forget, Job, Persist, PruneRule, Record, Retention
from actorwork.stores.sqlite import SCHEMA_VERSION, SQLiteStore
from actorwork.work import Keep, work

HOUR = 3600.0
NOW = 1_700_000_000.0


def _job(job_id: str, seq: int, status: str = "succeeded", **fields: object) -> Job:
    return Job(
        id=job_id,
        work=str(fields.pop("work", "noop")),
        queue="default",
        priority=0,
        payload=b"\xc0",
        status=status,  # type: ignore[arg-type]
        attempt=1,
        max_attempts=1,
        created=NOW,
        updated=float(fields.pop("updated", NOW)),  # type: ignore[arg-type]
        seq=seq,
        **fields,  # type: ignore[arg-type]
    )


def _finished(job_id: str, seq: int, *, data: bytes = b"", **fields: object) -> list[object]:
    """The effects that finish a job with a result (and an artifact when ``data``)."""
    artifacts = (Artifact("out.pdf", data, "application/pdf"),) if data else ()
    result = WorkResult(job_id=job_id, attempt=1, outcome="succeeded", artifacts=artifacts)
    job = _job(job_id, seq, result=result, **fields)
    return [Persist(job), Record(result, committed=True)]


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    yield store
    await store.aclose()


def _size(path: Path) -> int:
    """Bytes of a store on disk: the file and its write-ahead log."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def test_a_result_is_stored_once(store: SQLiteStore, tmp_path: Path) -> None:
    await store.apply(_finished("a", 1))
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        assert db.execute("SELECT result FROM jobs").fetchall() == [(None,)]
        assert db.execute("SELECT count(*) FROM results").fetchone() == (1,)
    job = await store.get("a")
    assert job is not None
    assert job.result is not None
    assert job.result.outcome == "succeeded"


async def test_ten_artifacts_of_a_megabyte_live_in_files_removed_with_their_jobs(
    store: SQLiteStore, tmp_path: Path
) -> None:
    blobs = [os.urandom(1024 * 1024) for _ in range(10)]
    for seq, blob in enumerate(blobs):
        await store.apply(_finished(f"j{seq}", seq, data=blob))
    database = tmp_path / "jobs.db"
    # Ten jobs' rows, their indexes and the WAL: well under the 10 MB of bytes they hold
    # (20 MB when the bytes lived inside SQLite).
    assert _size(database) < 1024 * 1024
    files = sorted(p for p in (tmp_path / "jobs.db-artifacts").rglob("*") if p.is_file())
    assert len(files) == 10
    assert sorted(p.read_bytes() for p in files) == sorted(blobs)
    assert all(p.stat().st_mode & 0o077 == 0 for p in files)

    job = await store.get("j3")  # asked for by id: the bytes come back
    assert job is not None
    assert job.result is not None
    [artifact] = job.result.artifacts
    assert (artifact.data, artifact.size, artifact.media_type) == (
        blobs[3],
        2**20,
        "application/pdf",
    )
    [(attempt, _, _)] = await store.attempts("j3")
    assert attempt.artifacts[0].data == blobs[3]
    [listed] = [j for j in await store.find(status=None, queue=None, limit=10) if j.id == "j3"]
    assert listed.result is not None
    assert listed.result.artifacts[0].is_reference  # listings carry no bytes

    await store.apply([Forget(f"j{seq}") for seq in range(9)])
    left = [p for p in (tmp_path / "jobs.db-artifacts").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in left] == [blobs[9]]
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM artifact_refs").fetchone() == (1,)


async def test_an_artifact_two_jobs_share_stays_until_the_last_goes(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await store.apply(_finished("a", 1, data=b"same bytes"))
    await store.apply(_finished("b", 2, data=b"same bytes"))
    files = [p for p in (tmp_path / "jobs.db-artifacts").rglob("*") if p.is_file()]
    assert len(files) == 1
    await store.apply([Forget("a")])
    assert files[0].exists()
    await store.apply([Forget("b")])
    assert not files[0].exists()


def test_retention_rules_give_a_works_own_policy_its_jobs() -> None:
    @work(name="reports.nightly", keep={"succeeded": Keep(rows=5)})
    def nightly() -> None:
        return None

    retention = Retention(keep={"succeeded": Keep(hours=1.0), "failed": Keep(rows=10)})
    assert retention.rules([nightly]) == [
        PruneRule("succeeded", Keep(hours=1.0), besides=("reports.nightly",)),
        PruneRule("succeeded", Keep(rows=5), only=("reports.nightly",)),
        PruneRule("failed", Keep(rows=10)),
    ]
    with pytest.raises(ValueError, match="keep status 'done' is not one of"):
        Retention(keep={"done": Keep(hours=1.0)})
    with pytest.raises(ValueError, match="keep status 'ok' is not one of"):
        work(name="bad", keep={"ok": Keep(rows=1)})
    with pytest.raises(msgspec.ValidationError, match="keep hours must be a finite"):
        msgspec.convert({"hours": float("nan")}, Keep)


async def test_space_of_forgotten_jobs_is_given_back(store: SQLiteStore, tmp_path: Path) -> None:
    logs = "x" * 4000
    effects: list[object] = []
    for seq in range(2000):
        result = WorkResult(job_id=f"j{seq}", attempt=1, outcome="succeeded", error=logs)
        effects += [Persist(_job(f"j{seq}", seq)), Record(result, committed=True)]
    await store.apply(effects)
    database = tmp_path / "jobs.db"

    def pages() -> int:
        with sqlite3.connect(database) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return int(db.execute("PRAGMA page_count").fetchone()[0])

    full = pages()
    await store.apply([Forget(f"j{seq}") for seq in range(2000)])
    await store.reclaim(steps=100)
    assert pages() < full // 10


async def test_a_file_of_schema_2_is_migrated_and_keeps_its_results(tmp_path: Path) -> None:
    """An existing store: its jobs' own copies of their results are dropped (the results
    table keeps them), and it is vacuumed once so it can give space back."""
    path = tmp_path / "jobs.db"
    old = SQLiteStore(path)
    await old.open()
    await old.apply(_finished("old", 1))
    await old.aclose()
    result = WorkResult(job_id="old", attempt=1, outcome="succeeded")
    encoded = msgspec.msgpack.encode(result)
    with sqlite3.connect(path) as db:  # as schema 2 wrote it: a copy in jobs, no vacuum
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
        db.execute("DROP TABLE artifact_refs")
        db.execute("UPDATE jobs SET result = ?", (encoded,))
        db.execute("PRAGMA user_version=2")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (0,)

    store = SQLiteStore(path)
    await store.open()
    try:
        job = await store.get("old")
        assert job is not None
        assert job.result == result
    finally:
        await store.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)
        assert db.execute("SELECT result FROM jobs").fetchall() == [(None,)]


async def test_a_result_only_a_schema_2_job_row_holds_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    await store.apply([Persist(_job("lone", 1))])
    result = WorkResult(job_id="lone", attempt=1, outcome="failed", error="kept")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE jobs SET result = ?", (msgspec.msgpack.encode(result),))
    try:
        job = await store.get("lone")
        assert job is not None
        assert job.result == result
    finally:
        await store.aclose()
