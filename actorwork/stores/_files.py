"""Files and directories only their owner may use: a store holds payloads, results, logs.

A store creates its files ``0o600`` and the directories it makes ``0o700``, as the
Pool's outbox does, whatever the process's umask. A file or directory of the store's
own found looser (made by an older actorwork, or copied in) is tightened when the
store opens, with a warning naming the path and the mode it had: the files are the
store's alone, and a warning would leave them readable until someone acted. A chmod
the system refuses (the file belongs to another user) leaves a warning instead.

The umask is never changed: it belongs to the whole process, and other threads create
files meanwhile. SQLite gives the files it creates itself (``-wal``, ``-shm``,
``-journal``) the mode of the database file, which is why the database is created
first, here; they are tightened after opening too, for a file that existed before.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from actorwork._log import get_logger

__all__ = [
    "DIRECTORY_MODE",
    "FILE_MODE",
    "create_private_file",
    "loose_bits",
    "make_private_directory",
    "tighten",
]

log = get_logger(__name__)

#: The mode of every file a store creates: its owner reads and writes, nobody else.
FILE_MODE = 0o600
#: The mode of every directory a store creates.
DIRECTORY_MODE = 0o700


def loose_bits(mode: int, allowed: int) -> int:
    """The permission bits of ``mode`` that ``allowed`` does not grant (0: none)."""
    return stat.S_IMODE(mode) & ~allowed


def make_private_directory(directory: Path) -> None:
    """Create ``directory`` and every missing parent with mode ``0o700``.

    Directories that exist are left as they are: they may be shared (a project's
    working directory); the files inside are what must be private.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:  # made meanwhile, by another process
            pass


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0o600`` unless it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def tighten(path: Path, allowed: int) -> None:
    """Take from ``path`` every permission bit ``allowed`` does not grant, with a warning.

    A missing path is fine; a chmod the system refuses is a warning naming the path
    and its mode.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not loose_bits(mode, allowed):
        return
    tight = mode & allowed
    try:
        path.chmod(tight)
    except OSError as exc:
        log.warning(
            "store_file_readable_by_others",
            path=str(path),
            mode=oct(mode),
            error=exc.strerror or str(exc),
        )
        return
    log.warning("store_file_mode_tightened", path=str(path), mode=oct(mode), now=oct(tight))
