"""Records of the outbox's log, the format-1 files they replace, and file helpers.

The format (see ``outbox.py``) is pure functions over bytes: encoding a record, scanning
a segment into its valid records and its damaged regions, parsing a format-1 entry file;
the outbox's tests and the fault tests read segments with the same code. The file
helpers below them hold no state: the :class:`~actorwork.pool.outbox.Outbox` decides.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import struct
from pathlib import Path
from typing import NamedTuple

MAGIC = b"AWOB"
FORMAT_VERSION = 2
LEGACY_VERSION = 1

#: Record kinds (the byte at offset 5).
PUT = 1
REMOVE = 2

FIXED = struct.Struct(">4sBBHQQ")  # magic, version, kind, key length, seq, data length
DIGEST_SIZE = 32
HEADER_SIZE = FIXED.size + DIGEST_SIZE
MAX_KEY = 200
KEY = re.compile(r"[A-Za-z0-9._:-]{1,200}", re.ASCII)
LEGACY_SUFFIX = ".ob"
TEMP_SUFFIX = ".tmp"


class Record(NamedTuple):
    """One valid record of a segment: ``offset`` and ``length`` locate it in the file."""

    kind: int
    key: str
    seq: int
    data: bytes
    offset: int
    length: int


class Damage(NamedTuple):
    """A region of a segment that holds no valid record, starting at ``offset``."""

    offset: int
    reason: str


def check_key(key: str) -> None:
    """Raise ValueError naming ``key`` unless it is a valid outbox key."""
    if not isinstance(key, str) or KEY.fullmatch(key) is None:
        raise ValueError(
            f"invalid outbox key {key!r}: use 1 to {MAX_KEY} of letters, digits, '-', '_', '.', ':'"
        )


def checksum(fixed: bytes | memoryview, key: bytes, data: bytes | memoryview) -> bytes:
    """blake2b-32 of the header fields after the magic, the key and the data."""
    digest = hashlib.blake2b(fixed[4:], digest_size=DIGEST_SIZE)
    digest.update(key)
    digest.update(data)
    return digest.digest()


def encode(kind: int, key: str, seq: int, data: bytes = b"") -> bytes:
    """One whole record."""
    encoded_key = key.encode("ascii")
    fixed = FIXED.pack(MAGIC, FORMAT_VERSION, kind, len(encoded_key), seq, len(data))
    return b"".join((fixed, checksum(fixed, encoded_key, data), encoded_key, data))


def parse_record(blob: bytes, offset: int) -> Record | str:
    """The record starting at ``offset`` of ``blob``, or the reason there is none."""
    left = len(blob) - offset
    if left < HEADER_SIZE:
        return f"truncated header ({left} of {HEADER_SIZE} bytes)"
    magic, version, kind, key_length, seq, data_length = FIXED.unpack_from(blob, offset)
    if magic != MAGIC:
        return f"bad magic {magic!r}"
    if version != FORMAT_VERSION:
        return f"unsupported format version {version}"
    length = HEADER_SIZE + key_length + data_length
    if length > left:
        return f"truncated record (header says {length} bytes, {left} left)"
    view = memoryview(blob)
    key_start = offset + HEADER_SIZE
    key = bytes(view[key_start : key_start + key_length])
    data = view[key_start + key_length : offset + length]
    if (
        checksum(view[offset : offset + FIXED.size], key, data)
        != blob[offset + FIXED.size : key_start]
    ):
        return "checksum mismatch"
    if kind not in (PUT, REMOVE):
        return f"unknown record kind {kind}"
    decoded_key = key.decode("ascii", errors="replace")
    if KEY.fullmatch(decoded_key) is None:
        return f"invalid key {key!r}"
    return Record(kind, decoded_key, seq, bytes(data), offset, length)


def scan(blob: bytes) -> tuple[list[Record], list[Damage]]:
    """Every valid record of a segment, in file order, and every damaged region.

    After damage the scan resynchronises at the next offset where a whole record parses
    and its checksum holds (a false match needs a 256-bit checksum to agree by chance).
    """
    records: list[Record] = []
    damages: list[Damage] = []
    offset = 0
    while offset < len(blob):
        parsed = parse_record(blob, offset)
        if isinstance(parsed, Record):
            records.append(parsed)
            offset += parsed.length
            continue
        damages.append(Damage(offset, parsed))
        offset = _resync(blob, offset + 1)
    return records, damages


def _resync(blob: bytes, start: int) -> int:
    candidate = blob.find(MAGIC, start)
    while candidate != -1:
        if isinstance(parse_record(blob, candidate), Record):
            return candidate
        candidate = blob.find(MAGIC, candidate + 1)
    return len(blob)


def parse_legacy(blob: bytes, expected_key: str) -> tuple[int, bytes] | str:
    """``(seq, data)`` of a whole format-1 entry file, or the reason it is damaged.

    Format 1 has the record layout above with version 1, a reserved zero byte in place
    of the kind, one entry per file named ``<key>.ob``.
    """
    if not blob:
        return "empty file"
    if len(blob) < HEADER_SIZE:
        return f"truncated header ({len(blob)} of {HEADER_SIZE} bytes)"
    magic, version, _, key_length, seq, data_length = FIXED.unpack_from(blob)
    if magic != MAGIC:
        return f"bad magic {magic!r}"
    if version != LEGACY_VERSION:
        return f"unsupported format version {version}"
    expected_size = HEADER_SIZE + key_length + data_length
    if len(blob) != expected_size:
        return f"length mismatch (header says {expected_size} bytes, file has {len(blob)})"
    key = blob[HEADER_SIZE : HEADER_SIZE + key_length]
    data = blob[HEADER_SIZE + key_length :]
    if checksum(blob[: FIXED.size], key, data) != blob[FIXED.size : HEADER_SIZE]:
        return "checksum mismatch"
    if key != expected_key.encode("ascii"):
        return f"key mismatch (file name says {expected_key!r}, header says {key!r})"
    return seq, data


# --- files ---------------------------------------------------------------------------------


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``: one ``os.write`` unless the kernel takes less."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_directory(path: Path) -> None:
    """Make the directory's entries (created, renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(where: list[tuple[Path, int, int]]) -> list[bytes]:
    """The bytes at each ``(path, offset, length)``, opening each file once."""
    found: list[bytes] = []
    fds: dict[Path, int] = {}
    try:
        for path, offset, length in where:
            if path not in fds:
                fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            record = os.pread(fds[path], length, offset)
            if len(record) != length:
                raise OSError(errno.EIO, f"{str(path)!r} is shorter than its index says")
            found.append(record)
    finally:
        for fd in fds.values():
            os.close(fd)
    return found


def copy_aside(blob: bytes, quarantine: Path, name: str, *, fsync: bool) -> Path:
    """Write ``blob`` to a new file named after ``name`` in ``quarantine``."""
    quarantine.mkdir(mode=0o700, exist_ok=True)
    copy = quarantine / f"{name}.{secrets.token_hex(4)}"
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, blob)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return copy


def move_aside(path: Path, quarantine: Path) -> Path:
    """Move ``path`` into ``quarantine`` under its name and a random suffix."""
    quarantine.mkdir(mode=0o700, exist_ok=True)
    target = quarantine / f"{path.name}.{secrets.token_hex(4)}"
    # Not fsynced: if a power loss undoes the move, the next open quarantines it again.
    os.replace(path, target)
    return target


def read_legacy(directory: Path) -> tuple[list[tuple[str, bytes, Path]], list[tuple[Path, str]]]:
    """The whole format-1 entries in ``directory`` as ``(key, data, path)`` in the order
    they were put, and the damaged ones as ``(path, reason)``."""
    found: list[tuple[int, str, bytes, Path]] = []
    damaged: list[tuple[Path, str]] = []
    for path in directory.iterdir():
        if not path.name.endswith(LEGACY_SUFFIX) or not path.is_file():
            continue
        key = path.name[: -len(LEGACY_SUFFIX)]
        if KEY.fullmatch(key) is None:
            damaged.append((path, "file name is not a valid key"))
            continue
        parsed = parse_legacy(path.read_bytes(), key)
        if isinstance(parsed, str):
            damaged.append((path, parsed))
        else:
            found.append((parsed[0], key, parsed[1], path))
    found.sort(key=lambda entry: (entry[0], entry[1]))
    return [(key, data, path) for _, key, data, path in found], damaged


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the files of writes a crash interrupted; return their paths."""
    removed = []
    for path in directory.iterdir():
        if path.name.endswith(TEMP_SUFFIX) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
