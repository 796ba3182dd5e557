"""``actorwork store migrate|check``: the store's schema, looked after by hand.

::

    actorwork store check --store postgresql://actorwork@db.internal/jobs
    actorwork store migrate --store postgresql://actorwork@db.internal/jobs

``--store`` defaults to ``[scheduler] store`` (with ``store_password_file``). The
password never goes on the command line: ``PGPASSWORD``, a ``passfile`` or the
password file. ``check`` prints the schema version and who leads the store, and
exits 1 when migrations are pending; ``migrate`` applies them (a Scheduler applies
them too when it starts, under the same lock).
"""

from __future__ import annotations

import argparse
import sqlite3

from actorwork.config import Config
from actorwork.errors import ConfigError, StoreError
from actorwork.stores.registry import split_url

__all__ = ["add_store_commands", "store_command"]


def add_store_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``store migrate`` and ``store check`` to the ``actorwork`` parser's subcommands."""
    store = commands.add_parser("store", help="migrate or check the job store's schema")
    verbs = store.add_subparsers(dest="store_command", required=True)
    for verb, text in (
        ("migrate", "apply the schema versions the store lacks"),
        ("check", "show the schema version and leader; exit 1 if migrations are pending"),
    ):
        command = verbs.add_parser(verb, help=text)
        command.add_argument("--store", default=None, help="store URL (default: [scheduler] store)")


async def store_command(args: argparse.Namespace, config: Config) -> int:
    """Run ``actorwork store migrate|check``."""
    url = args.store or config.scheduler.store_url
    scheme, rest = split_url(url)
    if scheme in ("postgresql", "postgres"):
        return await _postgresql(args.store_command, url)
    if scheme == "sqlite":
        return await _sqlite(args.store_command, rest)
    raise ConfigError(f"--store {url!r}: `actorwork store` knows sqlite:// and postgresql://")


async def _postgresql(verb: str, url: str) -> int:
    from actorwork.stores.postgresql import SCHEMA_VERSION, PostgreSQLStore

    store = PostgreSQLStore(url, read_only=verb == "check")
    await store.open(schema=False)
    try:
        if verb == "migrate":
            applied = await store.migrate()
            done = ", ".join(map(str, applied)) or "none"
            print(f"{store.path}: schema version {SCHEMA_VERSION} (applied: {done})")
            return 0
        version = await store.schema_version()
        leader = await store.leader() if version else None
        print(f"{store.path}: schema version {version} of {SCHEMA_VERSION}")
        print(f"leader: {leader or 'none'}")
        if version < SCHEMA_VERSION:
            print(f"pending: {SCHEMA_VERSION - version} version(s); run `actorwork store migrate`")
            return 1
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{store.path!r} has schema version {version}, newer than this actorwork knows"
            )
        return 0
    finally:
        await store.aclose()


async def _sqlite(verb: str, path: str) -> int:
    from actorwork.stores.sqlite import SCHEMA_VERSION, SQLiteStore

    if verb == "migrate":
        store = SQLiteStore(path)
        await store.open()  # a SQLite store migrates as it opens
        await store.aclose()
        print(f"{path}: schema version {SCHEMA_VERSION}")
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the job store {path!r}: {exc}") from exc
    print(f"{path}: schema version {version} of {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        print("pending: run `actorwork store migrate`")
        return 1
    return 0
