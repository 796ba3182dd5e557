"""The Scheduler's durable job store: one SQLite file, the embedded default.

Tables: ``jobs`` (one row per job, rewritten whole on every change, with the ids of
the jobs it depends on), ``results``
(every attempt's result that reached the Scheduler, committed or not: the history
that shows a stale attempt was fenced; a job's result is its latest committed one,
kept there only), ``artifact_refs`` (which result names which artifact file, see
:mod:`actorwork.stores.artifacts`), ``schedules`` (each cron schedule and its
fence: the latest fire time decided), ``paused_queues`` (the queues an operator paused)
and ``leader`` (which Scheduler owns the store). A job's row keeps its context (the
fields middleware added at the submit) as MessagePack.

Several Schedulers may share one store; one of them leads and the others wait for
its lease to lapse (:meth:`SQLiteStore.acquire`). Every write transaction of a leader
first checks that its epoch is still the store's, so a Scheduler that was paused
past its lease and taken over writes nothing more (:class:`LeadershipLost`).

The Scheduler keeps its live jobs in memory and writes through this store in
batches, one transaction each (a group commit), so the cost of a commit is shared by
every change that waited for it.

Durability: WAL journal. ``synchronous="normal"`` (the default) makes a commit
survive the crash or SIGKILL of the process — what the invariants ask for — but not
necessarily a power cut; ``"full"`` adds an fsync per commit for that. Every method
is blocking and must run on one thread at a time: :class:`SQLiteStore` gives it a
thread of its own. A small commit without an fsync (a job submitted or finished while
the system is quiet) runs on the caller's thread instead, through a second connection
that never waits for a lock: handing it to the thread and back would take longer than
the commit, and that round trip is most of a lone job's latency.

Space: the file uses incremental auto-vacuum, so :meth:`SQLiteStore.reclaim` gives
the pages of forgotten jobs back after each pruning pass (a file made before schema
version 3 is vacuumed once, when it is migrated).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import msgspec

from actorwork._log import get_logger
from actorwork.errors import LeadershipLost, StoreError
from actorwork.messages import TERMINAL, WorkResult
from actorwork.stores._files import FILE_MODE, create_private_file, make_private_directory, tighten
from actorwork.stores.artifacts import ArtifactFiles, reference
from actorwork.stores.base import (
    DropSchedule,
    Forget,
    Job,
    Persist,
    PruneRule,
    Record,
    SaveSchedule,
    SetFence,
    SetPaused,
    StoreEffect,
)

__all__ = ["SQLiteStore", "Synchronous", "decode_context", "prepare", "sqlite_path"]

log = get_logger(__name__)

Synchronous = Literal["off", "normal", "full"]

T = TypeVar("T")

#: Commits of at most this many rows may run on the caller's thread (see the docstring).
_INLINE_ROWS = 16

SCHEMA_VERSION = 5

#: Pages one step of :meth:`_Database.reclaim` gives back (4 MiB of 4 KiB pages).
_RECLAIM_PAGES = 1024
#: The write-ahead log is cut back to this size after a checkpoint.
_WAL_LIMIT = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    work TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    timeout REAL,
    unique_key TEXT,
    due REAL,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    error TEXT NOT NULL,
    progress REAL,
    progress_message TEXT NOT NULL,
    result BLOB,
    depends_on BLOB,
    dep_when TEXT NOT NULL DEFAULT 'succeeded',
    context BLOB,
    workflow TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '',
    policy TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (status, updated);
-- The first page of an unfiltered listing, newest first, without sorting every job; a
-- store made before it gets it when next opened (an index changes no row: no migration).
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    committed INTEGER NOT NULL,
    note TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS artifact_refs (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, sha256)
);
CREATE INDEX IF NOT EXISTS artifact_refs_sha256 ON artifact_refs (sha256);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    definition BLOB NOT NULL,
    source TEXT NOT NULL,
    fence REAL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS paused_queues (
    queue TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    until REAL NOT NULL,
    boot TEXT NOT NULL
);
"""

#: The nodes of a workflow, found by its id (made after the columns, which a file of an
#: older schema gains in its migration). Partial: a job of no workflow never writes it.
_WORKFLOW_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_workflow ON jobs (workflow, seq) WHERE workflow <> ''"
)

_COLUMNS = (
    "id, work, queue, priority, payload, status, attempt, failures, max_attempts, timeout, "
    "unique_key, due, seq, created, updated, error, progress, progress_message, context, "
    "depends_on, dep_when, workflow, path, policy, result"
)

#: A job's result: its own column in files made before schema version 3 (NULL since),
#: else its latest committed record.
_COMMITTED = (
    "(SELECT data FROM results r WHERE r.job_id = jobs.id AND r.committed = 1 "
    "ORDER BY r.attempt DESC LIMIT 1)"
)
_RESULT = f"COALESCE(result, {_COMMITTED})"
_SELECT = _COLUMNS.removesuffix("result") + _RESULT

_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(WorkResult)
_context_decoder = msgspec.msgpack.Decoder(dict[str, str])


def decode_context(data: bytes) -> dict[str, str]:
    """A job's context as its ``context`` column holds it (MessagePack)."""
    return _context_decoder.decode(data)


class _Database:
    """The blocking half: a sqlite3 connection used from one thread at a time.

    ``inline`` makes the second connection of a store, for commits on the caller's
    thread: it never waits for a lock held by another connection, and leaves the
    schema to the first. ``read_only`` opens an existing store for reading only.
    """

    def __init__(
        self,
        path: str,
        synchronous: Synchronous,
        *,
        inline: bool = False,
        read_only: bool = False,
        files: ArtifactFiles | None = None,
    ) -> None:
        self.path = path
        #: Where artifacts live as files; None keeps them inside the results (memory).
        self.files = files
        #: The leadership epoch every write checks first; None writes unchecked.
        self.epoch: int | None = None
        try:
            if read_only:
                uri = f"{Path(path).absolute().as_uri()}?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
            else:
                self.db = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False, timeout=0 if inline else 5
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the job store {path!r}: {exc}") from exc
        try:
            if read_only:
                self.db.execute("SELECT count(*) FROM jobs").fetchone()
            elif inline:
                self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
                self.db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
            else:
                self._prepare(synchronous)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreError(
                f"the job store {path!r} is not a usable SQLite database ({exc}); "
                "move it aside to start with an empty store, or restore it from a backup"
            ) from exc

    def _prepare(self, synchronous: Synchronous) -> None:
        db = self.db
        (vacuum,) = db.execute("PRAGMA auto_vacuum").fetchone()
        if vacuum != 2:  # before the first page is written; an existing file needs a VACUUM
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal" and self.path != ":memory:":
            log.warning("store_not_wal", path=self.path, journal_mode=mode)
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        (check,) = db.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check says {check!r}")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version not in (0, 1, 2, 3, 4, SCHEMA_VERSION):  # older ones lack what the schema adds
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this actorwork knows ({SCHEMA_VERSION})"
            )
        (tables,) = db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        db.executescript(_SCHEMA)
        if tables and version < SCHEMA_VERSION:
            self._migrate(version, vacuum=vacuum != 2)
        db.execute(_WORKFLOW_INDEX)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _migrate(self, version: int, *, vacuum: bool) -> None:
        """Bring a file of schema ``version`` to this one: one copy of each result,
        space that can be given back (a one-time VACUUM rewrites the file), and the
        columns of job dependencies (version 4), a job's context, its workflow node and the
        paused queues (version 5)."""
        db = self.db
        log.info("store_migrating", path=self.path, version=version, to=SCHEMA_VERSION)
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if "depends_on" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN depends_on BLOB")
        if "dep_when" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN dep_when TEXT NOT NULL DEFAULT 'succeeded'")
        if "context" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN context BLOB")
        for column in ("workflow", "path", "policy"):
            if column not in columns:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        # A job's own copy of its result goes where the committed record holds the same.
        db.execute(
            f"UPDATE jobs SET result = NULL WHERE result IS NOT NULL AND result = {_COMMITTED}"
        )
        if vacuum:
            db.execute("VACUUM")

    def apply(self, batch: Batch) -> None:
        if batch.files and self.files is not None:
            self.files.write(batch.files)  # durable before the commit that names them
        self.db.execute("BEGIN IMMEDIATE")
        self._write(batch)

    def try_apply(self, batch: Batch) -> bool:
        """:meth:`apply`, or False at once if another connection holds the write lock.

        Only for a batch without artifact files or forgotten jobs: those go through
        the store's thread, one at a time, so a file is never removed while a commit
        about to name it again is on its way.
        """
        assert not batch.files
        assert not batch.forgotten
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        self._write(batch)
        return True

    def _write(self, batch: Batch) -> None:
        """The writes of one batch inside the open transaction, then the commit."""
        db = self.db
        try:
            if self.epoch is not None:
                self._check_epoch(self.epoch)
            if batch.schedules:
                _write_schedules(db, batch.schedules)
            placeholders = ", ".join("?" * (_COLUMNS.count(",") + 1))
            db.executemany(
                f"INSERT OR REPLACE INTO jobs ({_COLUMNS}) VALUES ({placeholders})",
                batch.rows,
            )
            # A duplicate delivery never overwrites the first record of an attempt; a
            # record the state commits after all (a late verdict) is marked committed.
            db.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, attempt) "
                "DO UPDATE SET committed = 1, note = excluded.note, data = excluded.data "
                "WHERE excluded.committed = 1 AND results.committed = 0",
                batch.results,
            )
            db.executemany("INSERT OR IGNORE INTO artifact_refs VALUES (?, ?, ?)", batch.refs)
            for queue, paused in batch.paused:
                if paused:
                    db.execute("INSERT OR IGNORE INTO paused_queues VALUES (?)", (queue,))
                else:
                    db.execute("DELETE FROM paused_queues WHERE queue = ?", (queue,))
            unreferenced = self._forget(batch.forgotten)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if unreferenced and self.files is not None:
            self.files.remove(unreferenced)

    def _forget(self, forgotten: list[tuple[str]]) -> list[str]:
        """Delete finished jobs with their results; the artifact files no longer named.

        A job whose row is not terminal (retried since it was chosen) is left alone.
        """
        db = self.db
        digests: set[str] = set()
        for (job_id,) in forgotten:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None and row[0] not in TERMINAL:
                continue
            digests.update(
                digest
                for (digest,) in db.execute(
                    "SELECT sha256 FROM artifact_refs WHERE job_id = ?", (job_id,)
                )
            )
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute("DELETE FROM results WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM artifact_refs WHERE job_id = ?", (job_id,))
        return [
            digest
            for digest in sorted(digests)
            if db.execute("SELECT 1 FROM artifact_refs WHERE sha256 = ?", (digest,)).fetchone()
            is None
        ]

    def live_jobs(self) -> list[Job]:
        marks = ", ".join("?" * len(TERMINAL))
        cursor = self.db.execute(
            f"SELECT {_SELECT} FROM jobs WHERE status NOT IN ({marks}) ORDER BY seq",
            tuple(TERMINAL),
        )
        return [_job(row, self.files) for row in cursor]

    def get(self, job_id: str) -> Job | None:
        row = self.db.execute(f"SELECT {_SELECT} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row, self.files)

    def find(
        self,
        status: str | None,
        queue: str | None,
        limit: int,
        before: int | None = None,
        *,
        work: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workflow: str | None = None,
    ) -> list[Job]:
        where, args = _filters(
            status, queue, before=before, work=work, since=since, until=until, workflow=workflow
        )
        cursor = self.db.execute(
            f"SELECT {_SELECT} FROM jobs {where} ORDER BY seq DESC LIMIT ?", (*args, limit)
        )
        return [_job(row, None) for row in cursor]

    def count(
        self,
        status: str | None,
        queue: str | None,
        *,
        work: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workflow: str | None = None,
    ) -> int:
        where, args = _filters(
            status, queue, before=None, work=work, since=since, until=until, workflow=workflow
        )
        (found,) = self.db.execute(f"SELECT count(*) FROM jobs {where}", args).fetchone()
        return int(found)

    def outcomes(self, job_ids: Sequence[str]) -> dict[str, tuple[str, bytes | None]]:
        """(status, return value) of each finished job among ``job_ids``."""
        found: dict[str, tuple[str, bytes | None]] = {}
        ids = list(dict.fromkeys(job_ids))
        terminal = tuple(TERMINAL)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            cursor = self.db.execute(
                f"SELECT id, status, {_RESULT} FROM jobs WHERE id IN ({marks})"
                f" AND status IN ({', '.join('?' * len(terminal))})",
                (*chunk, *terminal),
            )
            for job_id, status, data in cursor:
                value = None if data is None else _result_decoder.decode(data).value
                found[job_id] = (status, value)
        return found

    def attempts(self, job_id: str) -> list[tuple[WorkResult, bool, str]]:
        cursor = self.db.execute(
            "SELECT data, committed, note FROM results WHERE job_id = ? ORDER BY attempt",
            (job_id,),
        )
        return [(_load(data, self.files), bool(c), note) for data, c, note in cursor]

    def expired(self, rules: Sequence[PruneRule], now: float, limit: int) -> list[str]:
        """Ids of finished jobs past their rules, at most ``limit``, oldest first."""
        found: dict[str, None] = {}
        for rule in rules:
            left = limit - len(found)
            if left <= 0:
                break
            where, args = _rule_clause(rule)
            if rule.keep.rows is not None:
                edge = self.db.execute(
                    f"SELECT seq FROM jobs WHERE {where} ORDER BY seq DESC LIMIT 1 OFFSET ?",
                    (*args, rule.keep.rows),
                ).fetchone()
                if edge is not None:
                    cursor = self.db.execute(
                        f"SELECT id FROM jobs WHERE {where} AND seq <= ? ORDER BY seq LIMIT ?",
                        (*args, edge[0], left),
                    )
                    found.update((job_id, None) for (job_id,) in cursor)
            left = limit - len(found)
            if rule.keep.hours is not None and left > 0:
                cutoff = now - rule.keep.hours * 3600.0
                cursor = self.db.execute(
                    f"SELECT id FROM jobs WHERE {where} AND updated < ? ORDER BY updated LIMIT ?",
                    (*args, cutoff, left),
                )
                found.update((job_id, None) for (job_id,) in cursor)
        return list(found)[:limit]

    def reclaim(self, steps: int) -> int:
        """Give free pages back to the file system, ``_RECLAIM_PAGES`` at a time, at most
        ``steps`` times; the pages still free after that."""
        for _ in range(steps):
            (free,) = self.db.execute("PRAGMA freelist_count").fetchone()
            if free == 0:
                return 0
            # Run to completion: stepped once, as execute() does, it frees one page.
            self.db.executescript(f"PRAGMA incremental_vacuum({_RECLAIM_PAGES});")
        (free,) = self.db.execute("PRAGMA freelist_count").fetchone()
        return int(free)

    def _check_epoch(self, epoch: int) -> None:
        found = self.db.execute("SELECT holder, epoch FROM leader WHERE id = 1").fetchone()
        if found is None or found[1] != epoch:
            raise LeadershipLost(
                f"the job store {self.path!r} was taken over by "
                f"{found[0] if found else 'nobody'!r}; this Scheduler's epoch {epoch} is over"
            )

    def schedules(self) -> list[tuple[bytes, str, float | None]]:
        """Every stored schedule: (definition, source, fence), by name."""
        cursor = self.db.execute("SELECT definition, source, fence FROM schedules ORDER BY name")
        return [(bytes(d), source, fence) for d, source, fence in cursor]

    def paused_queues(self) -> list[str]:
        """The queues paused, by name."""
        cursor = self.db.execute("SELECT queue FROM paused_queues ORDER BY queue")
        return [queue for (queue,) in cursor]

    def acquire(self, holder: str, until: float, now: float, boot: str) -> int | None:
        """Lead the store if nobody does; the new epoch, or None while another leads.

        A lease lapses at ``until`` (a monotonic time, so the leader's host must be
        this one: SQLite files are not shared across hosts), when the machine booted
        again since, or when the holder's process on this host is gone.
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT holder, epoch, until, boot FROM leader WHERE id = 1"
            ).fetchone()
            epoch = 1
            if row is not None:
                held_by, epoch, held_until, held_boot = row
                if held_boot == boot and held_until > now and _alive(held_by):
                    db.execute("ROLLBACK")
                    return None
                epoch += 1
            db.execute(
                "INSERT OR REPLACE INTO leader VALUES (1, ?, ?, ?, ?)", (holder, epoch, until, boot)
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return int(epoch)

    def leader(self) -> str | None:
        """Who leads the store now, as its holder string; None if nobody ever did."""
        row = self.db.execute("SELECT holder FROM leader WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    def renew(self, epoch: int, until: float) -> bool:
        """Extend the lease of ``epoch``; False if another Scheduler took over."""
        cursor = self.db.execute("UPDATE leader SET until = ? WHERE epoch = ?", (until, epoch))
        return cursor.rowcount == 1

    def max_seq(self) -> int:
        (top,) = self.db.execute("SELECT COALESCE(MAX(seq), -1) FROM jobs").fetchone()
        return int(top)

    def close(self) -> None:
        self.db.close()


@dataclass(slots=True)
class Batch:
    """The rows of one batch, and the artifact files its results name (by SHA-256)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    results: list[tuple[Any, ...]] = field(default_factory=list)
    forgotten: list[tuple[str]] = field(default_factory=list)
    schedules: list[StoreEffect] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    refs: list[tuple[str, int, str]] = field(default_factory=list)
    #: Queues paused (True) or resumed (False), in the order it was done.
    paused: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def size(self) -> int:
        changes = len(self.schedules) + len(self.paused)
        return len(self.rows) + len(self.results) + len(self.forgotten) + changes


def _filters(
    status: str | None,
    queue: str | None,
    *,
    before: int | None,
    work: str | None,
    since: float | None,
    until: float | None,
    workflow: str | None = None,
) -> tuple[str, list[object]]:
    """The WHERE clause of the filters given (None: not given) and its arguments."""
    given = (
        ("work = ?", work),
        ("workflow = ? AND workflow <> ''", workflow),  # the partial index's condition
        ("created >= ?", since),
        ("created < ?", until),
        ("seq < ?", before),
        ("status = ?", status),
        ("queue = ?", queue),
    )
    clauses = [clause for clause, value in given if value is not None]
    args: list[object] = [value for _, value in given if value is not None]
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


def prepare(effects: Iterable[object], *, files: bool = True) -> Batch:
    """The rows one batch writes, taken on the caller's thread while the jobs hold still.

    With ``files``, artifacts leave the results for files of their own.
    """
    rows: dict[str, tuple[Any, ...]] = {}
    batch = Batch()
    for effect in effects:
        match effect:
            case Persist(job=job):
                rows[job.id] = _row(job)
            case Record(result=result, committed=committed, note=note):
                if files:
                    result, written = reference(result)
                    batch.files.update(written)
                    batch.refs += [(result.job_id, result.attempt, d) for d in written]
                encoded = _encoder.encode(result)
                batch.results.append(
                    (result.job_id, result.attempt, result.outcome, int(committed), note, encoded)
                )
            case Forget(job_id=job_id):
                rows.pop(job_id, None)
                batch.forgotten.append((job_id,))
            case SaveSchedule() | DropSchedule() | SetFence():
                batch.schedules.append(effect)
            case SetPaused(queue=queue, paused=paused):
                batch.paused.append((queue, paused))
            case _:
                pass
    batch.rows = list(rows.values())
    return batch


def _rule_clause(rule: PruneRule) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause (and its arguments) of the jobs one retention rule covers."""
    clause = "status = ?"
    args: tuple[object, ...] = (rule.status,)
    works = rule.only or rule.besides
    if works:
        marks = ", ".join("?" * len(works))
        clause += f" AND work {'IN' if rule.only else 'NOT IN'} ({marks})"
        args += works
    return clause, args


def _write_schedules(db: sqlite3.Connection, effects: list[StoreEffect]) -> None:
    """Schedule changes, in the order they were made; a fence only ever moves forward."""
    now = time.time()
    for effect in effects:
        match effect:
            case SaveSchedule(name=name, definition=definition, source=source):
                db.execute(
                    "INSERT INTO schedules VALUES (?, ?, ?, NULL, ?) ON CONFLICT (name) DO "
                    "UPDATE SET definition = excluded.definition, source = excluded.source, "
                    "updated = excluded.updated",
                    (name, definition, source, now),
                )
            case DropSchedule(name=name):
                db.execute("DELETE FROM schedules WHERE name = ?", (name,))
            case SetFence(name=name, fence=fence):
                db.execute(
                    "UPDATE schedules SET fence = ? WHERE name = ? AND "
                    "(fence IS NULL OR fence < ?)",
                    (fence, name, fence),
                )
            case _:
                pass


def _alive(holder: str) -> bool:
    """False when ``holder`` names a process of this host that is gone."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _row(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.work,
        job.queue,
        job.priority,
        job.payload,
        job.status,
        job.attempt,
        job.failures,
        job.max_attempts,
        job.timeout,
        job.unique_key,
        job.due,
        job.seq,
        job.created,
        job.updated,
        job.error,
        job.progress,
        job.progress_message,
        _encoder.encode(job.context) if job.context else None,
        _encoder.encode(list(job.depends_on)) if job.depends_on else None,
        job.when,
        job.workflow,
        job.path,
        job.policy,
        None,  # the result is its committed record in ``results``
    )


def _load(data: bytes, files: ArtifactFiles | None) -> WorkResult:
    result = _result_decoder.decode(data)
    return result if files is None else files.load(result)


def _job(row: tuple[Any, ...], files: ArtifactFiles | None) -> Job:
    """A job from its row; with ``files``, its artifacts with their bytes."""
    (
        id_,
        work,
        queue,
        priority,
        payload,
        status,
        attempt,
        failures,
        max_attempts,
        timeout,
        unique_key,
        due,
        seq,
        created,
        updated,
        error,
        progress,
        progress_message,
        context,
        depends_on,
        when,
        workflow,
        path,
        policy,
        result,
    ) = row
    return Job(
        id=id_,
        work=work,
        queue=queue,
        priority=priority,
        payload=bytes(payload),
        status=status,
        attempt=attempt,
        failures=failures,
        max_attempts=max_attempts,
        timeout=timeout,
        unique_key=unique_key,
        due=due,
        seq=seq,
        created=created,
        updated=updated,
        error=error,
        progress=progress,
        progress_message=progress_message,
        result=None if result is None else _load(result, files),
        depends_on=() if depends_on is None else tuple(msgspec.msgpack.decode(depends_on)),
        when=when,
        context={} if context is None else decode_context(context),
        workflow=workflow,
        path=path,
        policy=policy,
    )


#: The files SQLite keeps beside a database; it creates them with the database's mode.
_COMPANIONS = ("-wal", "-shm", "-journal")


def _create_private(path: str, files: ArtifactFiles | None) -> None:
    """Create the store's directory ``0o700`` and its file ``0o600`` where missing,
    and tighten what exists looser (see :mod:`actorwork.stores._files`)."""
    database = Path(path)
    try:
        make_private_directory(database.parent)
        create_private_file(database)
    except OSError as exc:
        raise StoreError(f"cannot create the job store {path!r}: {exc.strerror or exc}") from exc
    _tighten_private(path, files)


def _tighten_private(path: str, files: ArtifactFiles | None) -> None:
    for suffix in ("", *_COMPANIONS):
        tighten(Path(f"{path}{suffix}"), FILE_MODE)
    if files is not None:
        files.secure()


def sqlite_path(url: str) -> str:
    """The file a ``sqlite://`` URL (or a bare path) names."""
    return url.removeprefix("sqlite://")


class SQLiteStore:
    """The store, used from async code: every call runs on the store's own thread.

    ``path`` is a file (created ``0o600``, with its directory ``0o700`` if missing;
    found looser, tightened with a warning), ``":memory:"``, or a
    ``sqlite://`` URL of either (see :mod:`actorwork.stores.registry`). Artifacts are
    files in the directory ``<path>-artifacts`` beside it (inside the results for a
    memory store).
    Errors of SQLite become :class:`StoreError` naming the file. ``read_only`` opens an
    existing file for the queries only, beside the Scheduler that leads it.
    """

    def __init__(
        self, path: str | Path, *, synchronous: Synchronous = "normal", read_only: bool = False
    ) -> None:
        if synchronous not in ("off", "normal", "full"):
            raise ValueError(
                f"store synchronous must be 'off', 'normal' or 'full', got {synchronous!r}"
            )
        self.path = sqlite_path(str(path))
        self.synchronous = synchronous
        self.read_only = read_only
        self.files = (
            None if self.path == ":memory:" else ArtifactFiles(Path(f"{self.path}-artifacts"))
        )
        self._db: _Database | None = None
        #: The connection for small commits on the caller's thread; None where a commit
        #: fsyncs (``full``) or a second connection would see another database (memory).
        self._inline: _Database | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="actorwork-store")

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def epoch(self) -> int | None:
        """The leadership epoch this store's writes check; None before :meth:`acquire`."""
        return None if self._db is None else self._db.epoch

    async def open(self) -> None:
        if self.read_only:
            self._db = await self._call(
                lambda: _Database(self.path, self.synchronous, read_only=True, files=self.files)
            )
            return
        if self.path != ":memory:":
            await self._call(lambda: _create_private(self.path, self.files))
        self._db = await self._call(
            lambda: _Database(self.path, self.synchronous, files=self.files)
        )
        if self.path != ":memory:":
            # SQLite gives the -wal and -shm files it made the database's mode; looked
            # at again all the same, in case a build or file system does otherwise.
            await self._call(lambda: _tighten_private(self.path, None))
        if self.path != ":memory:" and self.synchronous != "full":
            self._inline = await self._call(
                lambda: _Database(self.path, self.synchronous, inline=True, files=self.files)
            )
        log.debug("store_opened", path=self.path, synchronous=self.synchronous)

    async def aclose(self) -> None:
        """Close the database and the thread; idempotent."""
        db, self._db = self._db, None
        inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()
        if db is not None:
            await self._call(db.close)
        self._thread.shutdown(wait=False)

    async def apply(self, effects: Sequence[object]) -> None:
        """Make the persistent effects of one batch durable, in one transaction.

        The rows are taken now, on the event loop, so the jobs may change while the
        commit runs on the store's thread.
        """
        batch = prepare(effects, files=self.files is not None)
        rows = batch.size
        if rows == 0:
            return
        inline = self._inline
        small = rows <= _INLINE_ROWS and not batch.files and not batch.forgotten
        if inline is not None and small:
            try:
                if inline.try_apply(batch):
                    return
            except sqlite3.Error as exc:
                raise StoreError(f"job store {self.path!r}: {exc}") from exc
        await self._run(lambda db: db.apply(batch))

    async def live_jobs(self) -> list[Job]:
        return await self._run(lambda db: db.live_jobs())

    async def schedules(self) -> list[tuple[bytes, str, float | None]]:
        return await self._run(lambda db: db.schedules())

    async def paused_queues(self) -> list[str]:
        return await self._run(lambda db: db.paused_queues())

    async def acquire(self, holder: str, until: float, now: float, boot: str) -> int | None:
        """Lead the store (see :meth:`_Database.acquire`); from then on every write
        checks the epoch returned."""
        epoch = await self._run(lambda db: db.acquire(holder, until, now, boot))
        if epoch is not None:
            for db in (self._db, self._inline):
                if db is not None:
                    db.epoch = epoch
        return epoch

    async def leader(self) -> str | None:
        return await self._run(lambda db: db.leader())

    async def renew(self, epoch: int, until: float) -> bool:
        """Extend this leader's lease to ``until``; False if it was taken over."""
        return await self._run(lambda db: db.renew(epoch, until))

    async def release(self) -> None:
        """End this leader's lease now, so a Scheduler in standby takes over at once."""
        if self.epoch is not None:
            epoch = self.epoch
            await self._run(lambda db: db.renew(epoch, 0.0))

    async def max_seq(self) -> int:
        """The highest sequence number of any stored job (-1 for an empty store)."""
        return await self._run(lambda db: db.max_seq())

    async def get(self, job_id: str) -> Job | None:
        return await self._run(lambda db: db.get(job_id))

    async def find(
        self,
        *,
        status: str | None,
        queue: str | None,
        limit: int,
        before: int | None = None,
        work: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workflow: str | None = None,
    ) -> list[Job]:
        return await self._run(
            lambda db: db.find(
                status,
                queue,
                limit,
                before,
                work=work,
                since=since,
                until=until,
                workflow=workflow,
            )
        )

    async def count(
        self,
        *,
        status: str | None,
        queue: str | None,
        work: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workflow: str | None = None,
    ) -> int:
        return await self._run(
            lambda db: db.count(
                status, queue, work=work, since=since, until=until, workflow=workflow
            )
        )

    async def expired(self, rules: Sequence[PruneRule], now: float, limit: int) -> list[str]:
        return await self._run(lambda db: db.expired(rules, now, limit))

    async def reclaim(self, steps: int = 16) -> None:
        """Give the pages of forgotten jobs back, a few MiB per step, on the store thread."""
        if not self.read_only:
            await self._run(lambda db: db.reclaim(steps))

    async def attempts(self, job_id: str) -> list[tuple[WorkResult, bool, str]]:
        """Every recorded result of a job: (result, committed, note), by attempt."""
        return await self._run(lambda db: db.attempts(job_id))

    async def outcomes(self, job_ids: Sequence[str]) -> dict[str, tuple[str, bytes | None]]:
        """How each finished job among ``job_ids`` ended: (status, return value)."""
        return await self._run(lambda db: db.outcomes(job_ids))

    async def _run(self, func: Callable[[_Database], T]) -> T:
        db = self._db
        if db is None:
            raise StoreError(f"the job store {self.path!r} is not open")

        def call() -> T:
            try:
                return func(db)
            except sqlite3.Error as exc:
                raise StoreError(f"job store {self.path!r}: {exc}") from exc

        return await self._call(call)

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._thread, func, *args)
        with anyio.CancelScope(shield=True):  # a commit in progress finishes either way
            result = await future
        return result
