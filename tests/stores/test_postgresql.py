"""The PostgreSQL store on a real server: passwords, migrations, a killed connection,
and ``actorwork store migrate|check`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from actorwork.config import load_config
from actorwork.errors import ConfigError, StoreError
from actorwork.stores.base import Persist
from actorwork.stores.postgresql import SCHEMA_VERSION, PostgreSQLStore, redact
from actorwork.stores.registry import open_store
from actorwork.stores.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA
from actorwork.testing.stores import TemporaryPostgres, job


@pytest.fixture
def database(postgres_server: TemporaryPostgres) -> str:
    return postgres_server.create_database("p")


def test_the_url_alone_chooses_the_store(postgres_server: TemporaryPostgres) -> None:
    for scheme in ("postgresql", "postgres"):
        store = open_store(f"{scheme}://u:secret@127.0.0.1:1/db")
        assert isinstance(store, PostgreSQLStore)
        assert store.path == f"{scheme}://u@127.0.0.1:1/db"
    assert redact("postgresql://u:p%40ss@h/db?password=x&sslmode=require") == (
        "postgresql://u@h/db?sslmode=require"
    )


async def test_the_password_comes_from_the_environment(
    postgres_server: TemporaryPostgres, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.url(database, password=False)
    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    store = PostgreSQLStore(url)
    with pytest.raises(StoreError, match="password authentication failed") as failed:
        await store.open()
    assert "wrong-password" not in str(failed.value)
    assert repr(url) in str(failed.value)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    store = PostgreSQLStore(url)
    await store.open()
    await store.aclose()


async def test_the_password_comes_from_a_passfile_or_the_configured_file(
    postgres_server: TemporaryPostgres,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    url = postgres_server.url(database, password=False)
    passfile = tmp_path / "pgpass"
    passfile.write_text(
        f"127.0.0.1:{postgres_server.port}:*:actorwork:{postgres_server.password}\n"
    )
    passfile.chmod(0o600)
    store = PostgreSQLStore(f"{url}?passfile={passfile}")
    await store.open()
    await store.aclose()

    secret = tmp_path / "store-password"
    secret.write_text(postgres_server.password + "\n")
    config_file = tmp_path / "actorwork.toml"
    config_file.write_text(f'[scheduler]\nstore = "{url}"\nstore_password_file = "{secret}"\n')
    settings = load_config(config_file, env={}).scheduler
    store = PostgreSQLStore(settings.store_url)
    await store.open()
    assert postgres_server.password not in store.path
    await store.aclose()

    missing = PostgreSQLStore(f"{url}?password_file={tmp_path / 'absent'}")
    with pytest.raises(ConfigError, match="cannot read the store password file"):
        await missing.open()


def test_a_password_file_is_only_for_a_postgresql_store(tmp_path: Path) -> None:
    config_file = tmp_path / "actorwork.toml"
    config_file.write_text('[scheduler]\nstore = "jobs.db"\nstore_password_file = "/pw"\n')
    with pytest.raises(ConfigError, match="store_password_file = '/pw' is for a postgresql"):
        load_config(config_file, env={})


async def test_schedulers_starting_at_once_migrate_once(
    postgres_server: TemporaryPostgres, database: str
) -> None:
    stores = [PostgreSQLStore(postgres_server.url(database)) for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(store.open)
        assert await stores[0].schema_version() == SCHEMA_VERSION
        assert await stores[1].migrate() == []
    finally:
        for store in stores:
            await store.aclose()
    rows = postgres_server.psql("SELECT version FROM schema_version ORDER BY version", database)
    assert rows.split() == [str(v) for v in range(1, SCHEMA_VERSION + 1)]


async def test_a_read_only_store_refuses_an_unmigrated_database(
    postgres_server: TemporaryPostgres, database: str
) -> None:
    store = PostgreSQLStore(postgres_server.url(database), read_only=True)
    with pytest.raises(StoreError, match=r"has schema version 0.*actorwork store migrate"):
        await store.open()
    assert not store.is_open


async def test_a_killed_connection_is_an_error_then_the_store_goes_on(
    postgres_server: TemporaryPostgres, database: str
) -> None:
    store = PostgreSQLStore(postgres_server.url(database))
    await store.open()
    try:
        await store.apply([Persist(job("kept", 1))])
        postgres_server.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        failed = None
        try:
            await store.apply([Persist(job("next", 2))])
        except StoreError as exc:  # the pool may have noticed first and reconnected
            failed = str(exc)
        assert postgres_server.password not in (failed or "")
        await store.apply([Persist(job("later", 3))])
        assert next(j.id for j in await store.live_jobs()) == "kept"
        assert await store.get("later") is not None
    finally:
        await store.aclose()


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``actorwork ARGS`` in a directory without a config file."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("ACTORWORK_CONFIG", "PGPASSWORD")}
    return subprocess.run(
        [sys.executable, "-m", "actorwork", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**inherited, **env},
        cwd=cwd,
        check=False,
    )


def test_store_check_and_migrate_in_a_subprocess(
    postgres_server: TemporaryPostgres, database: str, tmp_path: Path
) -> None:
    url = postgres_server.url(database, password=False)
    env = {"PGPASSWORD": postgres_server.password}
    checked = _cli("store", "check", "--store", url, env=env, cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr
    assert f"schema version 0 of {SCHEMA_VERSION}" in checked.stdout
    assert "actorwork store migrate" in checked.stdout

    migrated = _cli("store", "migrate", "--store", url, env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    applied = ", ".join(str(v) for v in range(1, SCHEMA_VERSION + 1))
    assert f"schema version {SCHEMA_VERSION} (applied: {applied})" in migrated.stdout
    again = _cli("store", "migrate", "--store", url, env=env, cwd=tmp_path)
    assert "(applied: none)" in again.stdout

    checked = _cli("store", "check", "--store", url, env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "leader: none" in checked.stdout

    refused = _cli("store", "check", "--store", url, env={"PGPASSWORD": "not-it"}, cwd=tmp_path)
    assert refused.returncode == 2
    assert "password authentication failed" in refused.stderr
    assert "not-it" not in refused.stderr + refused.stdout


def test_store_check_and_migrate_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    migrated = _cli("store", "migrate", "--store", f"sqlite://{path}", env={}, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    checked = _cli("store", "check", "--store", f"sqlite://{path}", env={}, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"schema version {SQLITE_SCHEMA} of {SQLITE_SCHEMA}" in checked.stdout


def test_the_printed_configuration_shows_no_store_password(tmp_path: Path) -> None:
    config_file = tmp_path / "actorwork.toml"
    config_file.write_text('[scheduler]\nstore = "postgresql://aw:hunter2@db.internal/jobs"\n')
    shown = _cli("--config", str(config_file), "config", env={}, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert '"store": "postgresql://aw@db.internal/jobs"' in shown.stdout
    assert "hunter2" not in shown.stdout
