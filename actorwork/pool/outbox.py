"""The Pool's on-disk outbox: Work Results kept until the Scheduler acknowledges them.

The Pool puts every result here before it reports it, and removes it once the Scheduler
has acknowledged it, so a result the Pool reported as persisted survives a SIGKILL of the
Pool (RELIABILITY.md, I5). The outbox is an append-only log split into segments:
:meth:`Outbox.put_many` appends one record per entry with a single write and makes them
durable with a single ``fdatasync``; a removal appends a record that cancels the put. A
segment is deleted once nothing in it is needed. When the segment written to fills up,
the live entries are compacted into a fresh one if at least half of the bytes on disk
are dead, so the disk holds about twice the live data (as of that moment) at most, plus
the segment being written.

After a restart every entry is either absent (the job runs again) or whole, never torn.
A SIGKILL between the steps of a write cannot tear a record; one that lands inside a
large ``os.write`` can cut it short (the kernel stops between pages for a fatal signal),
and so can a power loss before the ``fdatasync``: such a tail was never reported as
persisted, and is quarantined like any other damage.
Damage found when the outbox is opened (a flipped bit, a truncated or overwritten
segment, a record of an unknown version) is logged with its offset and reason, the
segment is copied to ``quarantine/``, every valid record around the damage is kept (the
scan resynchronises at the next record whose checksum holds), and the salvaged entries
are rewritten into a fresh segment. The outbox still opens; only the damaged records are
lost.

One outbox, one Pool: a Pool opens its outbox ``exclusive``, which takes an exclusive
``flock`` on ``<directory>/lock`` (the holder's pid written in it) for as long as the
Outbox is open. A second exclusive Outbox on the directory, in this process or another,
is refused with an :class:`OutboxError` naming the directory and that pid. The kernel
releases the lock when its holder dies, SIGKILL included, so a restarted Pool never
waits for a dead one; nothing needs cleaning up.

Layout of the directory::

    <directory>/                     mode 0o700
        lock                         the exclusive lock and its holder's pid; mode 0o600
        segment-<n:08d>.log          the log, replayed in order of n; files mode 0o600
        segment-<n:08d>.log.tmp      a compaction in progress; removed when next created
        <key>.ob                     a format-1 entry, migrated into the log when opened
        quarantine/                  copies of damaged segments and format-1 files

On-disk format of one record (all integers big-endian), format version 2::

    offset  size  field
    0       4     magic             b"AWOB"
    4       1     format version    2
    5       1     kind              1 put, 2 remove
    6       2     key length        K, 1..200
    8       8     sequence number   put: orders entries by when they were put;
                                    remove: the sequence number of the put it cancels
    16      8     data length       N (0 for a remove)
    24      32    checksum          blake2b (32-byte digest) of bytes 4..23, the key and the data
    56      K     key               ASCII
    56+K    N     data

Replaying the segments in order rebuilds the entries: a put makes its key present (a
later put of the key replaces it), a remove drops the key if its present put has the
named sequence number. Format 1 was one such record per ``<key>.ob`` file, with version 1
and a reserved zero byte for the kind. A reader that meets a format version it does not
know quarantines the segment and keeps the records it can read (so a downgrade loses
only the newer records); a new version must keep the magic and the version byte.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from actorwork._log import get_logger
from actorwork.errors import OutboxError
from actorwork.pool import _outbox_format as fmt
from actorwork.pool._outbox_format import FORMAT_VERSION, MAGIC

__all__ = ["CRASH_POINTS", "FORMAT_VERSION", "MAGIC", "Outbox", "crash_hook"]

log = get_logger(__name__)

#: Where the write path calls :data:`crash_hook`. Every ``put_many`` reaches
#: ``appended`` (the records are written) then ``synced`` (they are durable). One whose
#: segment is full and mostly dead first compacts the log: ``compaction_written`` (the
#: new segment is written and synced under a temporary name) and ``compaction_renamed``
#: (it is in place and the directory synced; the old segments are not yet deleted).
CRASH_POINTS: tuple[str, ...] = ("appended", "synced", "compaction_written", "compaction_renamed")

#: Fault-injection seam for tests, ``None`` in production: called with the name of each
#: point in :data:`CRASH_POINTS` as the write path passes it. A hook may end the process
#: (crash-point tests) or raise :class:`OSError` (the step is then treated as failed).
crash_hook: Callable[[str], None] | None = None

DEFAULT_SEGMENT_SIZE = 4 * 1024 * 1024
_SEGMENT = re.compile(r"segment-(\d{8})\.log", re.ASCII)
_QUARANTINE = "quarantine"
_LOCK_FILE = "lock"


class _Entry(NamedTuple):
    seq: int
    segment: int
    offset: int
    length: int


def _holder(fd: int) -> str:
    """The pid in a lock file, as text (``"unknown"`` if it holds none yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _reach(point: str) -> None:
    hook = crash_hook
    if hook is not None:
        hook(point)


class Outbox:
    """Results waiting for the Scheduler's acknowledgement, in an append-only log.

    Every method is synchronous and blocks on disk I/O: the Pool calls them from a worker
    thread (``anyio.to_thread.run_sync``), never on the event loop. Calls are serialized
    by a lock, so threads may share one outbox; two Outbox objects (or two processes) on
    one directory are not supported, and ``exclusive=True`` (what a Pool uses) refuses
    them: see the module docstring. Apart from that lock, no file stays open between
    calls; :meth:`close` releases it.

    Keys are 1 to 200 ASCII letters, digits, ``-``, ``_``, ``.`` and ``:`` (a job id and
    attempt, say ``"0f3a...:2"``). :meth:`open` returns entries in the order they were
    last put, by the sequence number in each record.

    ``segment_size`` is the size past which the next write starts a new segment (or
    compacts the log). With ``fsync=False`` nothing is synced: an entry survives a crash
    of the process whole or not at all, but not a power loss; for tests and benchmarks.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: bool = True,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        exclusive: bool = False,
    ) -> None:
        if segment_size < 1:
            raise ValueError(f"outbox segment_size must be at least 1, got {segment_size!r}")
        self._directory = Path(directory)
        self._quarantine = self._directory / _QUARANTINE
        self._fsync = fsync
        self._segment_size = segment_size
        self._lock = threading.RLock()
        #: key -> where its live put record is, in sequence order; valid once ``_opened``.
        self._index: dict[str, _Entry] = {}
        #: segment -> its size in bytes, for every segment file this outbox knows of.
        self._sizes: dict[int, int] = {}
        #: segment -> how many entries of ``_index`` it holds.
        self._live: dict[int, int] = {}
        #: segment -> the earlier segments holding puts it cancels: while one of those
        #: exists, deleting this segment would bring a cancelled entry back.
        self._pins: dict[int, set[int]] = {}
        self._live_bytes = 0
        self._current: int | None = None  # the segment appended to; None: start one
        self._last_segment = 0
        self._next_seq = 1
        self._opened = False
        #: Closes the descriptor holding the directory's flock (exclusive only).
        self._release: weakref.finalize[[int], Outbox] | None = None
        try:
            if not self._directory.is_dir():
                self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                if fsync:
                    # Without this a power loss could forget the new directory itself.
                    fmt.fsync_directory(self._directory.parent)
        except OSError as exc:
            raise self._error("cannot create", None, exc) from exc
        if exclusive:
            self._take_lock()  # before anything is touched: the files may be another's
        try:
            self._remove_temporaries()
        except OSError as exc:
            self.close()
            raise self._error("cannot create", None, exc) from exc

    @property
    def directory(self) -> Path:
        """The directory holding the log's segments."""
        return self._directory

    @property
    def quarantine_directory(self) -> Path:
        """Where copies of damaged segments go; created on the first quarantine."""
        return self._quarantine

    def open(self) -> list[tuple[str, bytes]]:
        """Every whole entry as ``(key, data)``, in the order they were put.

        The first call replays the log, quarantines damage (logged as
        ``outbox_segment_quarantined`` with the path, offset and reason, or
        ``outbox_entry_quarantined`` for a format-1 file) and migrates format-1 files.
        Idempotent: a later call returns the same entries.
        """
        with self._lock:
            try:
                if self._opened:
                    return self._read_entries()
                return self._load()
            except OutboxError:
                raise
            except OSError as exc:
                raise self._error("cannot read", None, exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Persist ``data`` under ``key``, durably before returning.

        A key that is already present is replaced, and moves to the end of the order.
        Raises ValueError for an invalid key, and :class:`OutboxError` (with the errno of
        the cause) if the entry cannot be written; then nothing is persisted and an entry
        already under ``key`` is left as it was.
        """
        self.put_many([(key, data)])

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Persist several entries with one write and one ``fdatasync``.

        On :class:`OutboxError` none of the entries is persisted: the segment is cut
        back to where it ended before. (Should even that fail, records of the group may
        come back after a restart; the Pool then reports them again and the Scheduler
        dedupes.)
        """
        batch = [(key, bytes(data)) for key, data in items]
        for key, _ in batch:
            fmt.check_key(key)
        if not batch:
            return
        with self._lock:
            self._ensure_open()
            try:
                segment = self._segment_for_append()
                seqs = range(self._next_seq, self._next_seq + len(batch))
                self._next_seq += len(batch)
                records = [
                    fmt.encode(fmt.PUT, k, s, d) for (k, d), s in zip(batch, seqs, strict=True)
                ]
                offset = self._append(segment, b"".join(records), durable=True)
            except OSError as exc:
                raise self._error("cannot persist", batch[0][0], exc) from exc
            for (key, _), seq, record in zip(batch, seqs, records, strict=True):
                replaced = self._drop(key)
                if replaced is not None and replaced.segment != segment:
                    self._pins.setdefault(segment, set()).add(replaced.segment)
                self._add(key, _Entry(seq, segment, offset, len(record)))
                offset += len(record)
            self._collect_dead()

    def remove(self, key: str) -> None:
        """Forget the entry under ``key``; nothing happens if there is none."""
        self.remove_many([key])

    def remove_many(self, keys: Iterable[str]) -> None:
        """Forget the entries under ``keys``; keys without an entry are skipped.

        Removal never raises for a failed disk write: the entries are gone at once in
        memory and for good once their segments are deleted (which frees space on a
        full disk). A removal not yet on disk when the Pool restarts brings its entry
        back; the Pool reports it again and the Scheduler dedupes the resend.
        """
        wanted = list(keys)
        for key in wanted:
            fmt.check_key(key)
        with self._lock:
            self._ensure_open()
            removed = [(key, entry) for key in wanted if (entry := self._drop(key))]
            if not removed:
                return
            self._collect_dead()
            records = [
                fmt.encode(fmt.REMOVE, key, entry.seq)
                for key, entry in removed
                if entry.segment in self._sizes
            ]
            if not records:
                return
            try:
                segment = self._segment_for_append()
                # Not synced: if a power loss undoes a removal, the entry is reported again
                # and the Scheduler dedupes the resend. The next put's fdatasync syncs it.
                self._append(segment, b"".join(records), durable=False)
            except OSError as exc:
                log.warning(
                    "outbox_removal_not_recorded", path=str(self._directory), error=str(exc)
                )
                return
            for _, entry in removed:
                if entry.segment in self._sizes and entry.segment != segment:
                    self._pins.setdefault(segment, set()).add(entry.segment)

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

    def close(self) -> None:
        """Release the directory's lock, if this Outbox holds it; idempotent.

        The entries stay on disk for the next Outbox on the directory. An exclusive
        Outbox dropped without ``close`` releases its lock when it is collected.
        """
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()

    def __repr__(self) -> str:
        return f"Outbox({str(self._directory)!r})"

    # --- one outbox, one Pool ------------------------------------------------------------

    def _take_lock(self) -> None:
        """Hold an exclusive flock on the lock file, with this process's pid in it."""
        path = self._directory / _LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._error("cannot lock", None, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutboxError(
                errno.EBUSY,
                f"the outbox {str(self._directory)!r} is in use by another Pool "
                f"(pid {holder}); stop that one, or give each pool an outbox of its own",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise self._error("cannot lock", None, exc) from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # the lock holds all the same; only the pid is missing
            log.warning("outbox_lock_pid_not_written", path=str(path), error=str(exc))
        self._release = weakref.finalize(self, os.close, fd)

    # --- the index -----------------------------------------------------------------------

    def _add(self, key: str, entry: _Entry) -> None:
        self._index[key] = entry
        self._live[entry.segment] += 1
        self._live_bytes += entry.length

    def _drop(self, key: str) -> _Entry | None:
        entry = self._index.pop(key, None)
        if entry is not None:
            self._live[entry.segment] -= 1
            self._live_bytes -= entry.length
        return entry

    def _ensure_open(self) -> None:
        if not self._opened:
            self.open()

    # --- segments ------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self._directory / f"segment-{segment:08d}.log"

    def _segment_for_append(self) -> int:
        if self._current is not None and self._sizes[self._current] >= self._segment_size:
            self._current = None
            if 2 * self._live_bytes <= sum(self._sizes.values()):
                self._try_compact()
            self._collect_dead()
        if self._current is None:
            segment = self._last_segment + 1
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            fd = os.open(self._path(segment), flags, 0o600)
            os.close(fd)
            self._track(segment, 0)
            if self._fsync:
                fmt.fsync_directory(self._directory)
            self._current = segment
        return self._current

    def _track(self, segment: int, size: int) -> None:
        self._sizes[segment] = size
        self._live.setdefault(segment, 0)
        self._last_segment = max(self._last_segment, segment)

    def _append(self, segment: int, blob: bytes, *, durable: bool) -> int:
        """Append ``blob`` to ``segment`` and return the offset it starts at."""
        start = self._sizes[segment]
        fd = os.open(self._path(segment), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            fmt.write_all(fd, blob)
            if durable:
                _reach("appended")
                if self._fsync:
                    os.fdatasync(fd)
                _reach("synced")
        except BaseException as exc:
            try:
                os.ftruncate(fd, start)
            except OSError as truncating:
                log.error("outbox_segment_not_cut_back", segment=segment, error=str(truncating))
                self._sizes[segment] = os.fstat(fd).st_size
            # After a failed write or sync the next put starts a fresh segment, so no later
            # fdatasync has to vouch for pages whose write-back already failed.
            self._current = None
            self._collect_dead()
            log.warning("outbox_append_failed", segment=segment, error=str(exc))
            raise
        finally:
            os.close(fd)
        self._sizes[segment] = start + len(blob)
        return start

    def _collect_dead(self) -> None:
        """Delete every segment, other than the current one, that nothing needs."""
        for segment in sorted(self._sizes):  # cancelled puts are in earlier segments
            pins = self._pins.get(segment, set())
            if segment == self._current or self._live[segment] or pins & self._sizes.keys():
                continue
            try:
                self._path(segment).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("outbox_segment_not_deleted", segment=segment, error=str(exc))
                continue
            del self._sizes[segment], self._live[segment]
            self._pins.pop(segment, None)

    def _try_compact(self) -> None:
        try:
            self._compact()
        except OSError as exc:
            log.warning("outbox_compaction_failed", path=str(self._directory), error=str(exc))

    def _compact(self) -> None:
        """Copy the live records, in order, into a new segment and delete the old ones."""
        segment = self._last_segment + 1
        path = self._path(segment)
        temporary = path.with_name(path.name + fmt.TEMP_SUFFIX)
        records = self._read_records(list(self._index.values()))
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            for start in range(0, len(records), 256):
                fmt.write_all(fd, b"".join(records[start : start + 256]))
            if self._fsync:
                os.fdatasync(fd)
            _reach("compaction_written")
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temporary, path)
        old, offset = list(self._sizes), 0
        self._sizes, self._live, self._pins = {}, {}, {}
        self._track(segment, sum(len(record) for record in records))
        self._current = segment
        self._live_bytes = 0
        for (key, entry), record in zip(list(self._index.items()), records, strict=True):
            self._add(key, _Entry(entry.seq, segment, offset, len(record)))
            offset += len(record)
        try:
            if self._fsync:
                fmt.fsync_directory(self._directory)
            _reach("compaction_renamed")
        except OSError as exc:
            # The rename may not be durable: keep the old segments (the next open replays
            # them before the new one and deletes them) rather than risk losing both.
            log.warning("outbox_compaction_unsynced", path=str(path), error=str(exc))
            return
        for number in old:
            self._path(number).unlink(missing_ok=True)
        log.info("outbox_compacted", path=str(path), entries=len(records), segments=len(old))

    def _read_records(self, entries: list[_Entry]) -> list[bytes]:
        """The raw records at ``entries``, in the same order."""
        where = [(self._path(e.segment), e.offset, e.length) for e in entries]
        return fmt.read_records(where)

    def _read_entries(self) -> list[tuple[str, bytes]]:
        keys = list(self._index)
        records = self._read_records(list(self._index.values()))
        return [
            (key, record[fmt.HEADER_SIZE + len(key) :])
            for key, record in zip(keys, records, strict=True)
        ]

    # --- opening -------------------------------------------------------------------------

    def _load(self) -> list[tuple[str, bytes]]:
        self._index, self._sizes, self._live, self._pins = {}, {}, {}, {}
        self._live_bytes, self._current = 0, None
        data: dict[str, bytes] = {}
        damaged = False
        for segment in self._existing_segments():
            blob = self._path(segment).read_bytes()
            self._track(segment, len(blob))
            records, damages = fmt.scan(blob)
            if damages:
                damaged = True
                self._quarantine_segment(segment, blob, damages)
            for record in records:
                self._replay(segment, record, data)
        self._index = dict(sorted(self._index.items(), key=lambda item: item[1].seq))
        self._opened = True
        if damaged:
            self._try_compact()  # salvaged entries into a fresh segment, damaged one deleted
        elif self._sizes:
            self._current = max(self._sizes)
        self._collect_dead()
        self._migrate_legacy(data)
        return [(key, data[key]) for key in self._index]

    def _existing_segments(self) -> list[int]:
        found = (_SEGMENT.fullmatch(path.name) for path in self._directory.iterdir())
        return sorted(int(match[1]) for match in found if match is not None)

    def _replay(self, segment: int, record: fmt.Record, data: dict[str, bytes]) -> None:
        self._next_seq = max(self._next_seq, record.seq + 1)
        present = self._index.get(record.key)
        if record.kind == fmt.REMOVE and (present is None or present.seq != record.seq):
            return  # cancels a put that is already gone
        if present is not None:
            self._drop(record.key)
            del data[record.key]
            if present.segment != segment:
                self._pins.setdefault(segment, set()).add(present.segment)
        if record.kind == fmt.PUT:
            self._add(record.key, _Entry(record.seq, segment, record.offset, record.length))
            data[record.key] = record.data

    def _quarantine_segment(self, segment: int, blob: bytes, damages: list[fmt.Damage]) -> None:
        path = self._path(segment)
        copy = fmt.copy_aside(blob, self._quarantine, path.name, fsync=self._fsync)
        for damage in damages:
            log.warning(
                "outbox_segment_quarantined",
                path=str(path),
                offset=damage.offset,
                reason=damage.reason,
                copy=str(copy),
            )

    def _migrate_legacy(self, data: dict[str, bytes]) -> None:
        """Move format-1 entries (one ``<key>.ob`` file each) into the log."""
        found, damaged = fmt.read_legacy(self._directory)
        for path, reason in damaged:
            target = fmt.move_aside(path, self._quarantine)
            log.warning(
                "outbox_entry_quarantined", path=str(path), moved_to=str(target), reason=reason
            )
        if not found:
            return
        self.put_many([(key, blob) for key, blob, _ in found])
        for key, blob, path in found:
            data.pop(key, None)
            data[key] = blob
            # Not fsynced: if a power loss undoes this, the next open migrates it again.
            path.unlink()
        log.info("outbox_migrated", path=str(self._directory), entries=len(found))

    def _remove_temporaries(self) -> None:
        for path in fmt.remove_temporaries(self._directory):
            log.info("outbox_temporary_removed", path=str(path))

    def _error(self, action: str, key: str | None, exc: OSError) -> OutboxError:
        what = f"{action} {key!r} in" if key is not None else f"{action}"
        cause = exc.strerror or str(exc)
        return OutboxError(
            exc.errno or errno.EIO, f"{what} the outbox {str(self._directory)!r}: {cause}"
        )
