"""The Pool's on-disk outbox: Work Results kept until the Scheduler acknowledges them.

The Pool puts every result here before it reports it, and removes it once the Scheduler
has acknowledged it, so a result the Pool reported as persisted survives a SIGKILL of the
Pool (RELIABILITY.md, I5). After a restart every entry is either absent (the job runs
again) or whole, never torn: an entry is written to a temporary file, fsynced, renamed
into place and the directory fsynced before :meth:`Outbox.put` returns. A file that was
damaged while the Pool was down fails its checksum when the outbox is opened and is moved
to the ``quarantine`` folder with a logged reason; the outbox still opens.

Layout of the directory::

    <directory>/                 mode 0o700
        <key>.ob                 one entry per key
        <key>.<random>.tmp       a write in progress; removed when the outbox is next created
        quarantine/              damaged entries, moved aside, never read again

On-disk format of one entry (all integers big-endian), format version 1::

    offset  size  field
    0       4     magic             b"AWOB"
    4       1     format version    1
    5       1     reserved          0
    6       2     key length        K, 1..200
    8       8     sequence number   orders entries: the order in which they were put
    16      8     data length       N
    24      32    checksum          blake2b (32-byte digest) of bytes 4..23, the key and the data
    56      K     key               ASCII, also the file name without ".ob"
    56+K    N     data

A reader that meets a format version it does not know quarantines the entry (so nothing
is lost by a downgrade); a new version must keep the magic and the position of the
version byte.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import struct
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from actorwork.errors import OutboxError

__all__ = ["CRASH_POINTS", "FORMAT_VERSION", "MAGIC", "Outbox", "crash_hook"]

log = structlog.get_logger(__name__)

MAGIC = b"AWOB"
FORMAT_VERSION = 1

#: Where the write path calls :data:`crash_hook`, in the order it reaches them.
#: ``put_many`` reaches the first three once per entry and the last once per group.
CRASH_POINTS: tuple[str, ...] = ("temp_written", "temp_synced", "renamed", "directory_synced")

#: Fault-injection seam for tests, ``None`` in production: called with the name of each
#: point in :data:`CRASH_POINTS` as the write path passes it. A hook may end the process
#: (crash-point tests) or raise :class:`OSError` (the step is then treated as failed).
crash_hook: Callable[[str], None] | None = None

_FIXED = struct.Struct(">4sBBHQQ")  # magic, version, reserved, key length, seq, data length
_DIGEST_SIZE = 32
_HEADER_SIZE = _FIXED.size + _DIGEST_SIZE
_MAX_KEY = 200
_KEY = re.compile(r"[A-Za-z0-9._:-]{1,200}", re.ASCII)
_ENTRY_SUFFIX = ".ob"
_TEMP_SUFFIX = ".tmp"
_QUARANTINE = "quarantine"


def _reach(point: str) -> None:
    hook = crash_hook
    if hook is not None:
        hook(point)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValueError(
            f"invalid outbox key {key!r}: use 1 to {_MAX_KEY} of letters, digits, "
            "'-', '_', '.', ':'"
        )


def _checksum(fixed: bytes, key: bytes, data: bytes) -> bytes:
    digest = hashlib.blake2b(fixed[4:], digest_size=_DIGEST_SIZE)
    digest.update(key)
    digest.update(data)
    return digest.digest()


def _header(key: bytes, seq: int, data: bytes) -> bytes:
    fixed = _FIXED.pack(MAGIC, FORMAT_VERSION, 0, len(key), seq, len(data))
    return fixed + _checksum(fixed, key, data) + key


def _parse(blob: bytes, expected_key: str) -> tuple[int, bytes] | str:
    """``(seq, data)`` of a whole entry, or the reason it is damaged."""
    if not blob:
        return "empty file"
    if len(blob) < _HEADER_SIZE:
        return f"truncated header ({len(blob)} of {_HEADER_SIZE} bytes)"
    magic, version, _, key_length, seq, data_length = _FIXED.unpack_from(blob)
    if magic != MAGIC:
        return f"bad magic {magic!r}"
    if version != FORMAT_VERSION:
        return f"unsupported format version {version}"
    expected_size = _HEADER_SIZE + key_length + data_length
    if len(blob) != expected_size:
        return f"length mismatch (header says {expected_size} bytes, file has {len(blob)})"
    key = blob[_HEADER_SIZE : _HEADER_SIZE + key_length]
    data = blob[_HEADER_SIZE + key_length :]
    if _checksum(blob[: _FIXED.size], key, data) != blob[_FIXED.size : _HEADER_SIZE]:
        return "checksum mismatch"
    if key != expected_key.encode("ascii"):
        return f"key mismatch (file name says {expected_key!r}, header says {key!r})"
    return seq, data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    """Results waiting for the Scheduler's acknowledgement, one file each.

    Every method is synchronous and blocks on disk I/O: the Pool calls them from a worker
    thread (``anyio.to_thread.run_sync``), never on the event loop. Calls are serialized
    by a lock, so threads may share one outbox; two Outbox objects (or two processes) on
    one directory are not supported.

    Keys are 1 to 200 ASCII letters, digits, ``-``, ``_``, ``.`` and ``:`` (a job id and
    attempt, say ``"0f3a...:2"``). :meth:`open` returns entries in the order they were
    last put, by a sequence number kept in each file's header (never the mtime).

    With ``fsync=False`` the writes are still atomic (an entry survives a crash of the
    process whole or not at all) but not durable across a power loss; for tests and
    benchmarks.
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self._directory = Path(directory)
        self._quarantine = self._directory / _QUARANTINE
        self._fsync = fsync
        self._lock = threading.RLock()
        #: key -> sequence number of its file, in sequence order; valid once ``_opened``.
        self._index: dict[str, int] = {}
        self._next_seq = 1
        self._opened = False
        try:
            if not self._directory.is_dir():
                self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                if fsync:
                    # Without this a power loss could forget the new directory itself.
                    _fsync_directory(self._directory.parent)
            self._remove_temporaries()
        except OSError as exc:
            raise self._error("cannot create", None, exc) from exc

    @property
    def directory(self) -> Path:
        """The directory holding one file per entry."""
        return self._directory

    @property
    def quarantine_directory(self) -> Path:
        """Where damaged entries are moved; created on the first quarantine."""
        return self._quarantine

    def open(self) -> list[tuple[str, bytes]]:
        """Every whole entry as ``(key, data)``, in the order they were put.

        Damaged entries (checksum, length, magic or version wrong; empty; truncated) are
        moved to :attr:`quarantine_directory` and logged as ``outbox_entry_quarantined``
        with their path and reason. Idempotent: a second call returns the same entries.
        """
        with self._lock:
            try:
                entries = self._scan()
            except OSError as exc:
                raise self._error("cannot read", None, exc) from exc
            entries.sort(key=lambda entry: (entry[1], entry[0]))
            self._index = {key: seq for key, seq, _ in entries}
            if entries:
                self._next_seq = max(self._next_seq, entries[-1][1] + 1)
            self._opened = True
            return [(key, data) for key, _, data in entries]

    def put(self, key: str, data: bytes) -> None:
        """Persist ``data`` under ``key``, atomically and durably before returning.

        A key that is already present is replaced, and moves to the end of the order.
        Raises ValueError for an invalid key, and :class:`OutboxError` (with the errno of
        the cause) if the entry cannot be written; then nothing is persisted: the
        temporary file is removed and an entry already under ``key`` is left as it was.
        """
        self.put_many([(key, data)])

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Persist several entries as one group: one directory fsync for all of them.

        Every temporary file is written and fsynced, then all are renamed, then the
        directory is fsynced once. Each entry is atomic on its own; the group is not (a
        crash may keep some entries and not others). On :class:`OutboxError` no entry of
        the group may be taken as persisted; those renamed before the failure stay on
        disk, whole, and are returned by :meth:`open`.
        """
        batch = [(key, bytes(data)) for key, data in items]
        for key, _ in batch:
            _check_key(key)
        if not batch:
            return
        with self._lock:
            self._ensure_open()
            written: list[tuple[str, int, Path]] = []
            key = batch[0][0]
            try:
                for key, data in batch:
                    seq = self._next_seq
                    self._next_seq += 1
                    written.append((key, seq, self._write_temporary(key, seq, data)))
                while written:
                    key, seq, temporary = written[0]
                    os.replace(temporary, self._entry_path(key))
                    del written[0]
                    self._index.pop(key, None)
                    self._index[key] = seq
                    _reach("renamed")
                if self._fsync:
                    _fsync_directory(self._directory)
                _reach("directory_synced")
            except OSError as exc:
                for _, _, temporary in written:
                    with contextlib.suppress(OSError):
                        temporary.unlink()
                raise self._error("cannot persist", key, exc) from exc

    def remove(self, key: str) -> None:
        """Forget the entry under ``key``; nothing happens if there is none."""
        self.remove_many([key])

    def remove_many(self, keys: Iterable[str]) -> None:
        """Forget the entries under ``keys``; keys without an entry are skipped."""
        wanted = list(keys)
        for key in wanted:
            _check_key(key)
        with self._lock:
            self._ensure_open()
            for key in wanted:
                # No directory fsync: if a power loss undoes this unlink the entry comes
                # back and is reported again, and the Scheduler dedupes the resend.
                try:
                    self._entry_path(key).unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise self._error("cannot remove", key, exc) from exc
                self._index.pop(key, None)

    def keys(self) -> list[str]:
        """The keys of the entries, in the order they were put."""
        with self._lock:
            self._ensure_open()
            return list(self._index)

    def __len__(self) -> int:
        """The number of entries."""
        with self._lock:
            self._ensure_open()
            return len(self._index)

    def __contains__(self, key: object) -> bool:
        """Whether an entry is kept under ``key``."""
        with self._lock:
            self._ensure_open()
            return key in self._index

    def __repr__(self) -> str:
        return f"Outbox({str(self._directory)!r})"

    # --- internals -----------------------------------------------------------------------

    def _entry_path(self, key: str) -> Path:
        return self._directory / f"{key}{_ENTRY_SUFFIX}"

    def _ensure_open(self) -> None:
        if not self._opened:
            self.open()

    def _remove_temporaries(self) -> None:
        for path in self._directory.iterdir():
            if path.name.endswith(_TEMP_SUFFIX) and path.is_file():
                path.unlink(missing_ok=True)
                log.info("outbox_temporary_removed", path=str(path))

    def _write_temporary(self, key: str, seq: int, data: bytes) -> Path:
        encoded_key = key.encode("ascii")
        path = self._directory / f"{key}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, _header(encoded_key, seq, data))
            _write_all(fd, data)
            _reach("temp_written")
            if self._fsync:
                os.fsync(fd)
            _reach("temp_synced")
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        os.close(fd)
        return path

    def _scan(self) -> list[tuple[str, int, bytes]]:
        entries: list[tuple[str, int, bytes]] = []
        for path in self._directory.iterdir():
            name = path.name
            if not name.endswith(_ENTRY_SUFFIX) or not path.is_file():
                continue
            key = name[: -len(_ENTRY_SUFFIX)]
            if _KEY.fullmatch(key) is None:
                self._quarantine_file(path, "file name is not a valid key")
                continue
            parsed = _parse(path.read_bytes(), key)
            if isinstance(parsed, str):
                self._quarantine_file(path, parsed)
            else:
                entries.append((key, *parsed))
        return entries

    def _quarantine_file(self, path: Path, reason: str) -> None:
        self._quarantine.mkdir(mode=0o700, exist_ok=True)
        target = self._quarantine / f"{path.name}.{secrets.token_hex(4)}"
        # Not fsynced: if a power loss undoes the move, the next open quarantines it again.
        os.replace(path, target)
        log.warning("outbox_entry_quarantined", path=str(path), moved_to=str(target), reason=reason)

    def _error(self, action: str, key: str | None, exc: OSError) -> OutboxError:
        what = f"{action} {key!r} in" if key is not None else f"{action}"
        cause = exc.strerror or str(exc)
        return OutboxError(
            exc.errno or errno.EIO, f"{what} the outbox {str(self._directory)!r}: {cause}"
        )
