"""The job store on a PostgreSQL server, for Schedulers on several hosts.

``postgresql://user@host:port/database`` (or ``postgres://``) chooses it; the
contract is the SQLite store's (:mod:`actorwork.stores.sqlite`, :class:`JobStore`):
tables ``jobs``, ``results``, ``artifacts`` with ``artifact_refs``, ``schedules``,
``paused_queues`` and ``leader``, one transaction per batch of effects (a group
commit), live jobs and schedules loaded at start.

Driver: asyncpg (binary protocol, prepared statements, ``executemany`` in one round
of pipelined messages): a batch of 500 upserts and a lone commit both cost less than
with psycopg 3 on the same server.

Leadership across hosts: the lease is kept on the database's clock (``now()``), not
a host's: :meth:`acquire` takes over when the lease has run out and increments the
epoch; every write transaction first reads the ``leader`` row ``FOR SHARE`` and
raises :class:`LeadershipLost` unless the epoch is still this store's, so a deposed
leader writes nothing, and a takeover waits for a write in flight to commit before it
reads the live jobs. A leader whose host dies in the middle of a write would hold
that row's lock until the server's TCP gives up, so every session asks the server to
end it once its client has been silent inside a transaction, or left data
unacknowledged, for a few seconds (:data:`DEAD_PEER_SETTINGS`). There is no "is the
holder's process alive" shortcut (the holder may be on another host): a Scheduler that
crashed is replaced when its lease lapses; one that stops cleanly releases the lease at
once.

Artifacts are rows of ``artifacts`` (``bytea``, one per SHA-256) rather than files
beside the store: the Schedulers that share the store may run on different hosts, and
all of them must serve a job's artifacts; a row also commits, or rolls back, with the
result that names it.

Schema versions (``schema_version``) are applied at :meth:`open` under a transaction
advisory lock, so several Schedulers starting at once migrate once.

Password: in the URL, from ``PGPASSWORD``, a ``passfile`` (``?passfile=...`` or
``~/.pgpass``), or the file named by ``?password_file=...`` (what
``[scheduler] store_password_file`` sets). :attr:`PostgreSQLStore.path`, errors and
logs show the URL without the password.

TLS: libpq's parameters in the URL, which asyncpg reads: ``?sslmode=verify-full`` with
``sslrootcert=/path/ca.pem`` (the CA that signed the server's certificate) encrypts and
checks the server's name; ``sslcert`` and ``sslkey`` add a client certificate. Without
``sslmode`` asyncpg tries TLS and falls back to plain TCP (``prefer``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from actorwork._log import get_logger
from actorwork.errors import ConfigError, LeadershipLost, StoreError
from actorwork.messages import TERMINAL, WorkResult
from actorwork.stores.base import (
    DropSchedule,
    Job,
    PruneRule,
    SaveSchedule,
    SetFence,
    StoreEffect,
)
from actorwork.stores.sqlite import Batch, decode_context, prepare

__all__ = ["SCHEMA_VERSION", "PostgreSQLStore", "redact"]

log = get_logger(__name__)

T = TypeVar("T")

#: The key of the advisory lock that serialises migrations ("actorwrk" in ASCII).
_MIGRATION_LOCK = 0x6163746F72776B

#: How long the server keeps a session whose client went silent in the middle of a
#: transaction (milliseconds): a leader whose host died mid-write holds the ``leader``
#: row's lock until then, and no standby can take over before. Without them the server
#: waits for TCP to give up (minutes, or hours for an idle connection). A query
#: parameter of the store URL of the same name wins.
DEAD_PEER_SETTINGS = {"idle_in_transaction_session_timeout": "5000", "tcp_user_timeout": "5000"}

#: Each version's statements, applied in order to bring the schema to that version.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        work TEXT NOT NULL,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        payload BYTEA NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        timeout DOUBLE PRECISION,
        unique_key TEXT,
        due DOUBLE PRECISION,
        seq BIGINT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        error TEXT NOT NULL,
        progress DOUBLE PRECISION,
        progress_message TEXT NOT NULL
    );
    CREATE INDEX jobs_status ON jobs (status, seq);
    CREATE INDEX jobs_finished ON jobs (status, updated);
    CREATE INDEX jobs_seq ON jobs (seq);
    CREATE TABLE results (
        job_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        committed BOOLEAN NOT NULL,
        note TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (job_id, attempt)
    );
    CREATE TABLE artifacts (
        sha256 TEXT PRIMARY KEY,
        data BYTEA NOT NULL
    );
    CREATE TABLE artifact_refs (
        job_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (job_id, attempt, sha256)
    );
    CREATE INDEX artifact_refs_sha256 ON artifact_refs (sha256);
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        definition BYTEA NOT NULL,
        source TEXT NOT NULL,
        fence DOUBLE PRECISION,
        updated DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        until TIMESTAMPTZ NOT NULL,
        boot TEXT NOT NULL
    );
    INSERT INTO leader VALUES (1, '', 0, '-infinity', '');
    """,
    # 2: a job's context (what middleware added at the submit), the paused queues.
    """
    ALTER TABLE jobs ADD COLUMN context BYTEA;
    CREATE TABLE paused_queues (queue TEXT PRIMARY KEY);
    """,
    # 3: the jobs a job depends on, and the workflow node it is.
    """
    ALTER TABLE jobs ADD COLUMN depends_on TEXT[] NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN dep_when TEXT NOT NULL DEFAULT 'succeeded';
    ALTER TABLE jobs ADD COLUMN workflow TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN path TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN policy TEXT NOT NULL DEFAULT '';
    CREATE INDEX jobs_workflow ON jobs (workflow, seq) WHERE workflow <> '';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "id, work, queue, priority, payload, status, attempt, failures, max_attempts, timeout, "
    "unique_key, due, seq, created, updated, error, progress, progress_message, context, "
    "depends_on, dep_when, workflow, path, policy"
)
_NCOLUMNS = 24
_RESULT = (
    "(SELECT data FROM results r WHERE r.job_id = jobs.id AND r.committed "
    "ORDER BY r.attempt DESC LIMIT 1)"
)
_SELECT = f"{_COLUMNS}, {_RESULT}"
_TERMINAL = sorted(TERMINAL)

_result_decoder = msgspec.msgpack.Decoder(WorkResult)
_parents_decoder = msgspec.msgpack.Decoder(list[str])

#: Where a job's parents are in a row of :func:`actorwork.stores.sqlite.prepare`.
_DEPENDS_ON = _COLUMNS.split(", ").index("depends_on")


def _pg_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as :func:`prepare` makes it for SQLite, with its parents as a text array."""
    parents = row[_DEPENDS_ON]
    listed = [] if parents is None else _parents_decoder.decode(parents)
    return (*row[:_DEPENDS_ON], listed, *row[_DEPENDS_ON + 1 : _NCOLUMNS])


def redact(url: str) -> str:
    """``url`` without its password (nor a ``password`` query parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _connect_arguments(url: str) -> tuple[str, dict[str, Any]]:
    """The DSN asyncpg is given, and the password read from ``password_file`` if named."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    extra: dict[str, Any] = {}
    kept = []
    for key, value in query:
        if key == "password_file":
            try:
                extra["password"] = Path(value).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the store password file {value!r}: {exc.strerror or exc}"
                ) from exc
        else:
            kept.append((key, value))
    scheme = "postgresql"
    dsn = urlunsplit((scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return dsn, extra


class PostgreSQLStore:
    """The store on a PostgreSQL server, through a small asyncpg connection pool.

    ``synchronous="off"`` commits without waiting for the server's WAL flush
    (``synchronous_commit = off``); the others wait, so an acknowledged commit
    survives a crash of the server. ``read_only`` opens for the queries only and
    never migrates.
    """

    def __init__(self, url: str, *, synchronous: str = "normal", read_only: bool = False) -> None:
        if synchronous not in ("off", "normal", "full"):
            raise ValueError(
                f"store synchronous must be 'off', 'normal' or 'full', got {synchronous!r}"
            )
        self.url = url
        self.path = redact(url)
        self.synchronous = synchronous
        self.read_only = read_only
        self._pool: Any = None
        self._epoch: int | None = None

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def epoch(self) -> int | None:
        """The leadership epoch this store's writes check; None before :meth:`acquire`."""
        return self._epoch

    # --- opening, migrating ---------------------------------------------------------

    async def open(self, *, schema: bool = True) -> None:
        """Connect; migrate the schema first unless ``read_only`` (then it must be current).

        ``schema=False`` only connects (``actorwork store check`` looks at the version).
        """
        try:
            import asyncpg
        except ImportError as exc:
            raise StoreError(
                f"the store {self.path!r} needs asyncpg: pip install 'actorwork[postgresql]'"
            ) from exc
        dsn, extra = _connect_arguments(self.url)
        settings = {"synchronous_commit": "off" if self.synchronous == "off" else "on"}
        given = {key for key, _ in parse_qsl(urlsplit(dsn).query)}
        settings |= {k: v for k, v in DEAD_PEER_SETTINGS.items() if k not in given}
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=4, server_settings=settings, **extra
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot open the job store {self.path!r}: {exc}") from exc
        self._pool = pool
        if not schema:
            return
        try:
            if self.read_only:
                self._require_current(await self.schema_version())
            else:
                await self.migrate()
        except BaseException:
            await self.aclose()
            raise
        log.debug("store_opened", path=self.path, synchronous=self.synchronous)

    def _require_current(self, version: int) -> None:
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"the job store {self.path!r} has schema version {version}, "
                f"this actorwork needs {SCHEMA_VERSION}: run `actorwork store migrate`"
            )

    async def schema_version(self) -> int:
        """The schema version of the database (0 for an empty one)."""

        async def read(conn: Any) -> int:
            exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            if not exists:
                return 0
            return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

        return await self._run(read)

    async def migrate(self) -> list[int]:
        """Apply the versions the database lacks, under an advisory lock; those applied."""

        async def apply(conn: Any) -> list[int]:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                current = int(
                    await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                )
                if current > SCHEMA_VERSION:
                    raise StoreError(
                        f"the job store {self.path!r} has schema version {current}, newer "
                        f"than this actorwork knows ({SCHEMA_VERSION})"
                    )
                applied = []
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    log.info("store_migrating", path=self.path, to=version)
                    await conn.execute(MIGRATIONS[version - 1])
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
                    applied.append(version)
                return applied

        return await self._run(apply)

    async def aclose(self) -> None:
        """Close the connections; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except Exception as exc:  # noqa: BLE001 - a broken connection is closed anyway
                log.debug("store_close_failed", path=self.path, error=str(exc))
                pool.terminate()

    # --- writes -----------------------------------------------------------------------

    async def apply(self, effects: Sequence[object]) -> None:
        """Make the :data:`StoreEffect` of one batch durable, in one transaction."""
        batch = prepare(effects, files=True)
        if batch.size == 0:
            return
        await self._run(lambda conn: self._write(conn, batch))

    async def _write(self, conn: Any, batch: Batch) -> None:
        async with conn.transaction():
            if self._epoch is not None:
                await self._check_epoch(conn, self._epoch)
            if batch.schedules:
                await _write_schedules(conn, batch.schedules)
            if batch.rows:
                marks = ", ".join(f"${i}" for i in range(1, _NCOLUMNS + 1))
                updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[1:])
                await conn.executemany(
                    f"INSERT INTO jobs ({_COLUMNS}) VALUES ({marks}) "
                    f"ON CONFLICT (id) DO UPDATE SET {updates}",
                    [_pg_row(row) for row in batch.rows],
                )
            if batch.files:
                await conn.executemany(
                    "INSERT INTO artifacts VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    list(batch.files.items()),
                )
            if batch.results:
                # A duplicate never overwrites an attempt's first record; a record the
                # state commits after all (a late verdict) is marked committed.
                await conn.executemany(
                    "INSERT INTO results VALUES ($1, $2, $3, $4, $5, $6) "
                    "ON CONFLICT (job_id, attempt) DO UPDATE SET committed = TRUE, "
                    "note = excluded.note, data = excluded.data "
                    "WHERE excluded.committed AND NOT results.committed",
                    [(j, a, o, bool(c), n, d) for j, a, o, c, n, d in batch.results],
                )
            if batch.refs:
                await conn.executemany(
                    "INSERT INTO artifact_refs VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    batch.refs,
                )
            if batch.forgotten:
                await _forget(conn, [job_id for (job_id,) in batch.forgotten])
            for queue, paused in batch.paused:
                if paused:
                    await conn.execute(
                        "INSERT INTO paused_queues VALUES ($1) ON CONFLICT DO NOTHING", queue
                    )
                else:
                    await conn.execute("DELETE FROM paused_queues WHERE queue = $1", queue)

    async def _check_epoch(self, conn: Any, epoch: int) -> None:
        row = await conn.fetchrow("SELECT holder, epoch FROM leader WHERE id = 1 FOR SHARE")
        if row is None or row["epoch"] != epoch:
            holder = row["holder"] if row is not None and row["holder"] else "nobody"
            raise LeadershipLost(
                f"the job store {self.path!r} was taken over by {holder!r}; "
                f"this Scheduler's epoch {epoch} is over"
            )

    # --- leadership ---------------------------------------------------------------------

    async def acquire(self, holder: str, until: float, now: float, boot: str) -> int | None:
        """Lead the store for ``until - now`` seconds of the database's clock if nobody's
        lease runs now; the new epoch, or None. (``boot`` is kept for display only: the
        lease does not depend on any host's clock.)"""
        lease = max(until - now, 0.0)

        async def take(conn: Any) -> int | None:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "SELECT epoch, holder <> '' AND until > now() AS held "
                    "FROM leader WHERE id = 1 FOR UPDATE"
                )
                if row is None:
                    raise StoreError(f"the job store {self.path!r} has no leader row")
                if row["held"]:
                    return None
                epoch = int(row["epoch"]) + 1
                await conn.execute(
                    "UPDATE leader SET holder = $1, epoch = $2, "
                    "until = now() + make_interval(secs => $3), boot = $4 WHERE id = 1",
                    holder,
                    epoch,
                    lease,
                    boot,
                )
                return epoch

        epoch = await self._run(take)
        if epoch is not None:
            self._epoch = epoch
        return epoch

    async def leader(self) -> str | None:
        holder = await self._run(lambda c: c.fetchval("SELECT holder FROM leader WHERE id = 1"))
        return str(holder) if holder else None

    async def renew(self, epoch: int, until: float) -> bool:
        """Extend the lease of ``epoch`` to ``until`` (a monotonic time of this host,
        turned into seconds from the database's ``now()``); False if it was taken over."""
        lease = max(until - time.monotonic(), 0.0)
        status = await self._run(
            lambda c: c.execute(
                "UPDATE leader SET until = now() + make_interval(secs => $2) WHERE epoch = $1",
                epoch,
                lease,
            )
        )
        return str(status).endswith(" 1")

    async def release(self) -> None:
        """End this leader's lease now, so a standby takes over at once; idempotent."""
        if self._epoch is not None:
            epoch = self._epoch
            await self._run(
                lambda c: c.execute("UPDATE leader SET until = '-infinity' WHERE epoch = $1", epoch)
            )

    # --- reads --------------------------------------------------------------------------

    async def live_jobs(self) -> list[Job]:
        rows = await self._run(
            lambda c: c.fetch(
                f"SELECT {_SELECT} FROM jobs WHERE status <> ALL($1::text[]) ORDER BY seq",
                _TERMINAL,
            )
        )
        return [await self._job(row, load=True) for row in rows]

    async def schedules(self) -> list[tuple[bytes, str, float | None]]:
        rows = await self._run(
            lambda c: c.fetch("SELECT definition, source, fence FROM schedules ORDER BY name")
        )
        return [(bytes(d), s, f) for d, s, f in rows]

    async def paused_queues(self) -> list[str]:
        rows = await self._run(lambda c: c.fetch("SELECT queue FROM paused_queues ORDER BY queue"))
        return [row["queue"] for row in rows]

    async def max_seq(self) -> int:
        return int(await self._run(lambda c: c.fetchval("SELECT COALESCE(MAX(seq), -1) FROM jobs")))

    async def get(self, job_id: str) -> Job | None:
        row = await self._run(
            lambda c: c.fetchrow(f"SELECT {_SELECT} FROM jobs WHERE id = $1", job_id)
        )
        return None if row is None else await self._job(row, load=True)

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
        where, args = _filters(
            status, queue, before=before, work=work, since=since, until=until, workflow=workflow
        )
        args.append(limit)
        rows = await self._run(
            lambda c: c.fetch(
                f"SELECT {_SELECT} FROM jobs {where} ORDER BY seq DESC LIMIT ${len(args)}", *args
            )
        )
        return [await self._job(row, load=False) for row in rows]

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
        where, args = _filters(
            status, queue, before=None, work=work, since=since, until=until, workflow=workflow
        )
        found = await self._run(lambda c: c.fetchval(f"SELECT count(*) FROM jobs {where}", *args))
        return int(found)

    async def attempts(self, job_id: str) -> list[tuple[WorkResult, bool, str]]:
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT data, committed, note FROM results WHERE job_id = $1 ORDER BY attempt",
                job_id,
            )
        )
        return [(await self._load(bytes(d)), bool(c), n) for d, c, n in rows]

    async def expired(self, rules: Sequence[PruneRule], now: float, limit: int) -> list[str]:
        """Ids of finished jobs past their rules, at most ``limit``, oldest first."""

        async def read(conn: Any) -> list[str]:
            found: dict[str, None] = {}
            for rule in rules:
                where, args = _rule_clause(rule)
                left = limit - len(found)
                if rule.keep.rows is not None and left > 0:
                    n = len(args)
                    edge = await conn.fetchval(
                        f"SELECT seq FROM jobs WHERE {where} ORDER BY seq DESC "
                        f"LIMIT 1 OFFSET ${n + 1}",
                        *args,
                        rule.keep.rows,
                    )
                    if edge is not None:
                        rows = await conn.fetch(
                            f"SELECT id FROM jobs WHERE {where} AND seq <= ${n + 1} "
                            f"ORDER BY seq LIMIT ${n + 2}",
                            *args,
                            edge,
                            left,
                        )
                        found.update((r["id"], None) for r in rows)
                left = limit - len(found)
                if rule.keep.hours is not None and left > 0:
                    n = len(args)
                    rows = await conn.fetch(
                        f"SELECT id FROM jobs WHERE {where} AND updated < ${n + 1} "
                        f"ORDER BY updated LIMIT ${n + 2}",
                        *args,
                        now - rule.keep.hours * 3600.0,
                        left,
                    )
                    found.update((r["id"], None) for r in rows)
            return list(found)[:limit]

        return await self._run(read)

    async def reclaim(self) -> None:
        """Make the space of forgotten rows reusable at once (``VACUUM``, no lock taken
        that blocks writes); the server's autovacuum would do it later anyway."""
        if not self.read_only:
            await self._run(
                lambda c: c.execute("VACUUM (SKIP_LOCKED) jobs, results, artifact_refs, artifacts")
            )

    # --- helpers ------------------------------------------------------------------------

    async def _job(self, row: Any, *, load: bool) -> Job:
        values = list(row.values())
        data = values[_NCOLUMNS]
        result = None
        if data is not None:
            result = await self._load(bytes(data)) if load else _result_decoder.decode(data)
        fields = dict(zip(_COLUMNS.split(", "), values[:_NCOLUMNS], strict=True))
        fields["payload"] = bytes(fields["payload"])
        context = fields.pop("context")
        fields["context"] = {} if context is None else decode_context(bytes(context))
        fields["depends_on"] = tuple(fields["depends_on"])
        fields["when"] = fields.pop("dep_when")
        return Job(**fields, result=result)

    async def _load(self, data: bytes) -> WorkResult:
        """A stored result with the bytes of its artifacts read back."""
        result = _result_decoder.decode(data)
        digests = [a.sha256 for a in result.artifacts if a.is_reference]
        if not digests:
            return result
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT sha256, data FROM artifacts WHERE sha256 = ANY($1::text[])", digests
            )
        )
        stored = {r["sha256"]: bytes(r["data"]) for r in rows}
        artifacts = tuple(
            msgspec.structs.replace(a, data=stored[a.sha256])
            if a.is_reference and a.sha256 in stored
            else a
            for a in result.artifacts
        )
        return msgspec.structs.replace(result, artifacts=artifacts)

    async def _run(self, func: Callable[[Any], Awaitable[T]]) -> T:
        """``func`` on a connection of the pool; the driver's errors become StoreError."""
        import asyncpg

        pool = self._pool
        if pool is None:
            raise StoreError(f"the job store {self.path!r} is not open")
        try:
            async with pool.acquire() as conn:
                return await func(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"job store {self.path!r}: {exc}") from exc


async def _forget(conn: Any, job_ids: list[str]) -> None:
    """Delete finished jobs with their results, and the artifacts no longer named.

    A job whose row is not terminal (retried since it was chosen) is left alone.
    """
    gone = await conn.fetch(
        "DELETE FROM jobs WHERE id = ANY($1::text[]) AND status = ANY($2::text[]) RETURNING id",
        job_ids,
        _TERMINAL,
    )
    ids = [r["id"] for r in gone]
    # Jobs never stored (or already forgotten) lose their stray results too.
    missing = await conn.fetch(
        "SELECT i FROM unnest($1::text[]) AS i WHERE NOT EXISTS "
        "(SELECT 1 FROM jobs WHERE jobs.id = i)",
        job_ids,
    )
    ids = sorted(set(ids) | {r["i"] for r in missing})
    await conn.execute("DELETE FROM results WHERE job_id = ANY($1::text[])", ids)
    digests = await conn.fetch(
        "DELETE FROM artifact_refs WHERE job_id = ANY($1::text[]) RETURNING sha256", ids
    )
    await conn.execute(
        "DELETE FROM artifacts WHERE sha256 = ANY($1::text[]) AND NOT EXISTS "
        "(SELECT 1 FROM artifact_refs r WHERE r.sha256 = artifacts.sha256)",
        sorted({r["sha256"] for r in digests}),
    )


async def _write_schedules(conn: Any, effects: list[StoreEffect]) -> None:
    """Schedule changes, in the order they were made; a fence only ever moves forward."""
    now = time.time()
    for effect in effects:
        match effect:
            case SaveSchedule(name=name, definition=definition, source=source):
                await conn.execute(
                    "INSERT INTO schedules VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (name) DO "
                    "UPDATE SET definition = excluded.definition, source = excluded.source, "
                    "updated = excluded.updated",
                    name,
                    definition,
                    source,
                    now,
                )
            case DropSchedule(name=name):
                await conn.execute("DELETE FROM schedules WHERE name = $1", name)
            case SetFence(name=name, fence=fence):
                await conn.execute(
                    "UPDATE schedules SET fence = $2 WHERE name = $1 AND "
                    "(fence IS NULL OR fence < $2)",
                    name,
                    fence,
                )
            case _:
                pass


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
    clauses: list[str] = []
    args: list[object] = []
    for clause, value in (
        ("seq <", before),
        ("status =", status),
        ("queue =", queue),
        ("work =", work),
        ("created >=", since),
        ("created <", until),
        ("workflow =", workflow),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{clause} ${len(args)}")
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


def _rule_clause(rule: PruneRule) -> tuple[str, list[object]]:
    """The WHERE clause (and its arguments, ``$1``...) of the jobs one rule covers."""
    clause = "status = $1"
    args: list[object] = [rule.status]
    works = rule.only or rule.besides
    if works:
        args.append(list(works))
        clause += f" AND work {'= ANY' if rule.only else '<> ALL'}($2::text[])"
    return clause, args
