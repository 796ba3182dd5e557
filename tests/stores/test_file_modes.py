"""F29, the store's part: its files are 0600 in 0700 directories, whatever the umask,
and files of its own found looser are tightened when it opens, with a warning.

No second local user is at hand, so the mode bits are the assertion.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from actorwork.messages import Artifact, WorkResult
from actorwork.stores.base import Job, Persist, Record
from actorwork.stores.sqlite import SQLiteStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common umask, under which files are made 0644 and directories 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _files_below(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def _finished(job_id: str, data: bytes) -> list[object]:
    """A job finished with one artifact of ``data``."""
    result = WorkResult(
        job_id=job_id,
        attempt=1,
        outcome="succeeded",
        artifacts=(Artifact("out.pdf", data, "application/pdf"),),
    )
    job = Job(
        id=job_id,
        work="noop",
        queue="default",
        priority=0,
        payload=b"\xc0",
        status="succeeded",
        attempt=1,
        max_attempts=1,
        created=0.0,
        updated=0.0,
        seq=1,
        result=result,
    )
    return [Persist(job), Record(result, committed=True)]


@pytest.mark.usefixtures("open_umask")
async def test_a_new_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "actorwork" / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.apply(_finished("a", b"%PDF secret"))
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        [artifact] = _files_below(Path(f"{path}-artifacts"))
        directories = [
            tmp_path / "var",
            path.parent,
            Path(f"{path}-artifacts"),
            artifact.parent,
        ]
        assert {str(p): oct(_mode(p)) for p in [*files, artifact]} == {
            str(p): "0o600" for p in [*files, artifact]
        }
        assert {str(p): oct(_mode(p)) for p in directories} == {
            str(p): "0o700" for p in directories
        }
    finally:
        await store.aclose()


@pytest.mark.usefixtures("open_umask")
async def test_a_directory_that_exists_is_left_as_it_is(tmp_path: Path) -> None:
    """A store in a shared directory (a project's) keeps its files private, not the
    directory's: that one is not the store's to change."""
    os.chmod(tmp_path, 0o755)
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    await store.aclose()
    assert _mode(tmp_path) == 0o755
    assert _mode(tmp_path / "jobs.db") == 0o600


async def test_looser_files_of_the_store_are_tightened_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    await store.open()
    await store.apply(_finished("a", b"%PDF secret"))
    await store.aclose()
    artifacts = Path(f"{path}-artifacts")
    stale_shm = Path(f"{path}-shm")
    os.close(os.open(stale_shm, os.O_CREAT | os.O_WRONLY))  # as a killed process leaves it
    os.chmod(path, 0o644)
    os.chmod(stale_shm, 0o664)
    os.chmod(artifacts, 0o755)

    store = SQLiteStore(path)
    with capture_logs() as logs:
        await store.open()
    try:
        assert (_mode(path), _mode(stale_shm), _mode(artifacts)) == (0o600, 0o600, 0o700)
        assert len(await store.find(status=None, queue=None, limit=10)) == 1  # nothing lost
    finally:
        await store.aclose()
    tightened = {
        entry["path"]: entry["mode"]
        for entry in logs
        if entry["event"] == "store_file_mode_tightened" and entry["log_level"] == "warning"
    }
    assert tightened == {str(path): "0o644", str(stale_shm): "0o664", str(artifacts): "0o755"}
