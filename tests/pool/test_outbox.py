"""The Pool's outbox: order, format, crash points (F14), corruption (F15), full disk (F16)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from structlog.testing import capture_logs

from actorwork.errors import OutboxError
from actorwork.pool import _outbox_format as fmt
from actorwork.pool import outbox as outbox_module
from actorwork.pool.outbox import CRASH_POINTS, Outbox
from actorwork.runtime.child import child_environment

SEGMENT_1 = "segment-00000001.log"


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def no_fd_leaks() -> Iterator[None]:
    """The outbox opens files and directories on every path, errors included."""
    before = _open_fds()
    yield
    leaked = {}
    for fd in _open_fds() - before:
        try:
            leaked[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, already closed
            continue
    assert not leaked, f"file descriptors left open: {leaked}"


@pytest.fixture(autouse=True)
def no_crash_hook() -> Iterator[None]:
    yield
    outbox_module.crash_hook = None


def _segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("segment-"))


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _quarantined(box: Outbox) -> list[str]:
    if not box.quarantine_directory.exists():
        return []
    return sorted(p.name for p in box.quarantine_directory.iterdir())


def _disk(directory: Path) -> int:
    return sum((directory / name).stat().st_size for name in _segments(directory))


def _record_size(key: str, data: bytes) -> int:
    return fmt.HEADER_SIZE + len(key) + len(data)


# --- the API -------------------------------------------------------------------------------


def test_open_returns_entries_in_the_order_they_were_put(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    assert box.open() == []
    box.put("job-b:1", b"second? no, first")
    box.put("job-a:1", b"")
    box.put_many([("job-c:2", b"c"), ("job-d:1", b"d")])
    box.put("job-b:1", b"replaced")  # a replaced entry moves to the end

    expected = [("job-a:1", b""), ("job-c:2", b"c"), ("job-d:1", b"d"), ("job-b:1", b"replaced")]
    assert box.open() == expected
    assert Outbox(tmp_path / "outbox").open() == expected
    assert Outbox(tmp_path / "outbox").keys() == [key for key, _ in expected]


def test_order_survives_rotation_and_compaction(tmp_path: Path) -> None:
    box = Outbox(tmp_path, segment_size=300)
    model: dict[str, bytes] = {}
    for i in range(60):
        key = f"job-{i % 7}:1"
        box.put(key, bytes([i]) * (i % 40))
        model.pop(key, None)
        model[key] = bytes([i]) * (i % 40)
        if i % 3 == 0:
            box.remove(f"job-{(i + 2) % 7}:1")
            model.pop(f"job-{(i + 2) % 7}:1", None)
    assert box.open() == list(model.items())
    assert Outbox(tmp_path, segment_size=300).open() == list(model.items())


def test_sequence_continues_after_reopening(tmp_path: Path) -> None:
    Outbox(tmp_path).put_many([("a", b"1"), ("b", b"2")])
    box = Outbox(tmp_path)
    box.put("c", b"3")  # put before open() must still sort after what is on disk
    box.put("a", b"4")
    assert Outbox(tmp_path).open() == [("b", b"2"), ("c", b"3"), ("a", b"4")]


def test_remove_keys_len_contains(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put_many([("a", b"1"), ("b", b"2"), ("c", b"3"), ("d", b"4")])
    assert len(box) == 4
    assert "b" in box
    assert 42 not in box

    box.remove("b")
    box.remove("b")  # idempotent
    box.remove("never-put")
    box.remove_many(["a", "c", "a"])
    assert box.keys() == ["d"]
    assert len(box) == 1
    assert "b" not in box
    assert Outbox(tmp_path).open() == [("d", b"4")]
    assert _segments(tmp_path) == [SEGMENT_1]


def test_remove_then_put_again_is_present(tmp_path: Path) -> None:
    box = Outbox(tmp_path, segment_size=200)
    box.put("a", b"first")
    box.remove("a")
    box.put("a", b"second")
    assert Outbox(tmp_path).open() == [("a", b"second")]
    box.put("filler", b"x" * 300)  # the next write goes to a new segment
    box.remove("a")
    box.put("a", b"third")
    box.remove("a")
    assert Outbox(tmp_path).open() == [("filler", b"x" * 300)]


def test_open_is_idempotent(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put_many([("x", b"1"), ("y", b"2")])
    first = box.open()
    assert box.open() == first
    assert box.keys() == ["x", "y"]


def test_valid_keys(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    keys = [".", "..", "a" * 200, "Job_01-x.y:3", "x.tmp", "y.ob", "segment-00000009.log"]
    for key in keys:
        box.put(key, key.encode())
    assert Outbox(tmp_path).open() == [(key, key.encode()) for key in keys]


@pytest.mark.parametrize(
    "key", ["", "a/b", "../x", "a b", "caf\u00e9", "nul\x00", "a" * 201, "tab\t", "x\n"]
)
def test_an_invalid_key_is_refused_by_name(tmp_path: Path, key: str) -> None:
    box = Outbox(tmp_path)
    with pytest.raises(ValueError, match="invalid outbox key") as info:
        box.put(key, b"data")
    assert repr(key) in str(info.value)
    with pytest.raises(ValueError, match="invalid outbox key"):
        box.put_many([("fine", b"1"), (key, b"2")])
    with pytest.raises(ValueError, match="invalid outbox key"):
        box.remove(key)
    assert list(tmp_path.iterdir()) == []  # a refused group writes nothing


def test_an_invalid_segment_size_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment_size must be at least 1, got 0"):
        Outbox(tmp_path, segment_size=0)


def test_directory_is_created_private_and_leftover_temporaries_removed(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "outbox"
    box = Outbox(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    box.put("kept", b"kept")
    assert stat.S_IMODE((directory / SEGMENT_1).stat().st_mode) == 0o600
    (directory / "segment-00000002.log.tmp").write_bytes(b"half a compaction")
    (directory / "notes.txt").write_bytes(b"not ours")

    with capture_logs() as logs:
        reopened = Outbox(directory)
    assert _temporaries(directory) == []
    assert (directory / "notes.txt").exists()
    assert [e["event"] for e in logs] == ["outbox_temporary_removed"]
    assert reopened.open() == [("kept", b"kept")]


def test_the_log_has_the_documented_format(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put("first", b"")
    box.put("job-7:2", b"the result")
    box.remove("first")
    blob = (tmp_path / SEGMENT_1).read_bytes()

    def record(offset: int, kind: int, key: bytes, seq: int, data: bytes) -> int:
        fixed = struct.unpack_from(">4sBBHQQ", blob, offset)
        assert fixed == (b"AWOB", 2, kind, len(key), seq, len(data))
        body = offset + 56
        assert blob[body : body + len(key)] == key
        assert blob[body + len(key) : body + len(key) + len(data)] == data
        end = body + len(key) + len(data)
        digest = hashlib.blake2b(blob[offset + 4 : offset + 24] + blob[body:end], digest_size=32)
        assert blob[offset + 24 : body] == digest.digest()
        return end

    offset = record(0, 1, b"first", 1, b"")
    offset = record(offset, 1, b"job-7:2", 2, b"the result")
    offset = record(offset, 2, b"first", 1, b"")  # a remove names the put it cancels
    assert offset == len(blob)


def test_the_write_path_reaches_every_crash_point_in_order(tmp_path: Path) -> None:
    reached: list[str] = []
    outbox_module.crash_hook = reached.append
    box = Outbox(tmp_path, segment_size=200)
    box.put("one", b"1")
    box.put_many([("a", b"1"), ("b", b"2")])
    box.remove_many(["one", "a"])  # removals are not a step a crash can tear
    assert reached == ["appended", "synced"] * 2

    reached.clear()
    box.put("c", b"3")  # the segment is full and mostly dead: compacted first
    assert reached == ["compaction_written", "compaction_renamed", "appended", "synced"]
    assert set(reached) == set(CRASH_POINTS)
    assert Outbox(tmp_path).open() == [("b", b"2"), ("c", b"3")]


@pytest.mark.parametrize("fsync", [True, False])
def test_data_is_synced_before_the_point_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    box = Outbox(tmp_path, fsync=fsync, segment_size=200)
    steps: list[str] = []

    def spy(name: str, real: Callable[[int], None]) -> Callable[[int], None]:
        def recording(fd: int) -> None:
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
            steps.append(f"{name} {'directory' if target.is_dir() else target.suffix}")
            real(fd)

        return recording

    monkeypatch.setattr(os, "fsync", spy("fsync", os.fsync))
    monkeypatch.setattr(os, "fdatasync", spy("fdatasync", os.fdatasync))
    outbox_module.crash_hook = steps.append
    box.put("one", b"1")
    box.put_many([("a", b"1"), ("b", b"2")])
    box.remove_many(["a", "one"])  # a lost removal means a resend: no sync
    box.put("c", b"3")  # compacts
    monkeypatch.undo()

    put = ["appended", "fdatasync .log", "synced"]
    compaction = ["fdatasync .tmp", "compaction_written", "fsync directory"]
    compaction.append("compaction_renamed")
    expected = ["fsync directory", *put, *put, *compaction, *put]  # the first creates
    assert steps == (expected if fsync else [s for s in expected if " " not in s])


# --- F14: a crash at every point of the write path -----------------------------------------

_CHILD = """
import os, signal, sys
from actorwork.pool import outbox

directory, mode, point, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
box = outbox.Outbox(directory, segment_size=int(sys.argv[5]))
box.open()
reached = 0

def crash(name):
    global reached
    if name == point:
        reached += 1
        if reached == nth:
            os.kill(os.getpid(), signal.SIGKILL)

outbox.crash_hook = crash
if mode == "put":
    box.put("job-1:1", bytes.fromhex(sys.argv[6]) * 4096)
else:
    box.put_many([(f"job-{i}:1", bytes([i]) * 65536) for i in (1, 2, 3)])
sys.exit(3)  # the crash point was never reached
"""


def _crash_child(
    directory: Path, mode: str, point: str, fill: bytes = b"", segment_size: int = 1 << 22
) -> None:
    argv = [str(directory), mode, point, "1", str(segment_size), fill.hex()]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv],
        env=child_environment(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()


def _recovered(directory: Path) -> dict[str, bytes]:
    """Reopen after the crash; nothing may be torn, so nothing may be quarantined."""
    box = Outbox(directory)
    assert _temporaries(directory) == []
    entries = box.open()
    assert _quarantined(box) == []
    return dict(entries)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["appended", "synced"])
@pytest.mark.parametrize("replacing", [False, True], ids=["new", "replacing"])
def test_a_crash_during_put_leaves_the_entry_whole(
    tmp_path: Path, point: str, replacing: bool
) -> None:
    before = Outbox(tmp_path)
    before.put("other:1", b"untouched")
    if replacing:
        before.put("job-1:1", b"old" * 4096)
    new_fill = b"new-result-bytes"

    _crash_child(tmp_path, "put", point, new_fill)

    # Written in one call: a SIGKILL after it (unlike a power loss) cannot undo it.
    assert _recovered(tmp_path) == {"other:1": b"untouched", "job-1:1": new_fill * 4096}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["appended", "synced"])
def test_a_crash_during_put_many_keeps_every_entry_whole(tmp_path: Path, point: str) -> None:
    Outbox(tmp_path).put("other:1", b"untouched")

    _crash_child(tmp_path, "put_many", point)

    entries = _recovered(tmp_path)
    assert entries.pop("other:1") == b"untouched"
    assert entries == {f"job-{i}:1": bytes([i]) * 65536 for i in (1, 2, 3)}


def _full_of_dead_records(directory: Path) -> Outbox:
    """An outbox (segment size 256) whose next put compacts: "other:1" is all it keeps."""
    box = Outbox(directory, segment_size=256)
    box.put("other:1", b"untouched")
    box.put("acked:1", b"a" * 120)  # 255 bytes in all, one short of full
    box.remove("acked:1")  # now full and mostly dead
    return box


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_during_a_compaction_loses_nothing(tmp_path: Path, point: str) -> None:
    _full_of_dead_records(tmp_path)

    _crash_child(tmp_path, "put", point, b"new", segment_size=256)

    entries = _recovered(tmp_path)
    assert entries.pop("other:1") == b"untouched"
    put = point in ("appended", "synced")  # reached after the compaction
    assert entries == ({"job-1:1": b"new" * 4096} if put else {})
    assert len(_segments(tmp_path)) == 1  # the reopen deleted what the compaction left


# --- F15: segments damaged while the Pool is down ------------------------------------------


def _write_segment(directory: Path, names: list[str]) -> list[int]:
    """Put one entry per name (data: the name 50 times); return each record's offset."""
    box = Outbox(directory, fsync=False)
    offsets = []
    for name in names:
        offsets.append(_disk(directory))
        box.put(name, name.encode() * 50)
    return offsets


def test_damage_is_quarantined_with_its_reason_and_the_rest_kept(tmp_path: Path) -> None:
    names = ["good-1", "flipped", "good-2", "overwritten", "good-3", "truncated"]
    offsets = dict(zip(names, _write_segment(tmp_path, names), strict=True))
    path = tmp_path / SEGMENT_1
    blob = bytearray(path.read_bytes())
    blob[offsets["flipped"] + 70] ^= 0x10
    blob[offsets["overwritten"] : offsets["overwritten"] + 8] = b"garbage!"
    path.write_bytes(bytes(blob[:-100]))

    with capture_logs() as logs:
        reopened = Outbox(tmp_path)
        entries = reopened.open()

    good = [f"good-{n}" for n in (1, 2, 3)]
    assert entries == [(name, name.encode() * 50) for name in good]
    assert reopened.keys() == good
    [copy] = _quarantined(reopened)
    assert copy.startswith(f"{SEGMENT_1}.")
    assert (reopened.quarantine_directory / copy).read_bytes() == bytes(blob[:-100])
    damaged = [e for e in logs if e["event"] == "outbox_segment_quarantined"]
    assert all(e["log_level"] == "warning" for e in damaged)
    assert all(e["path"] == str(path) for e in damaged)
    assert [(e["offset"], e["reason"]) for e in damaged] == [
        (offsets["flipped"], "checksum mismatch"),
        (offsets["overwritten"], "bad magic b'garb'"),
        (offsets["truncated"], "truncated record (header says 515 bytes, 415 left)"),
    ]
    assert [e["event"] for e in logs if e not in damaged] == ["outbox_compacted"]
    assert _segments(tmp_path) == ["segment-00000002.log"]  # salvaged, damaged one deleted

    with capture_logs() as again:  # the damage is gone for good
        assert Outbox(tmp_path).open() == entries
    assert again == []


def test_every_single_bit_flip_is_caught_and_the_other_record_kept(tmp_path: Path) -> None:
    original = tmp_path / "original"
    Outbox(original, fsync=False).put_many([("k:1", b"12345678"), ("k:2", b"abc")])
    blob = (original / SEGMENT_1).read_bytes()
    second = _record_size("k:1", b"12345678")
    for bit in range(len(blob) * 8):
        directory = tmp_path / str(bit)
        directory.mkdir()
        damaged = bytearray(blob)
        damaged[bit // 8] ^= 1 << (bit % 8)
        (directory / SEGMENT_1).write_bytes(bytes(damaged))
        with capture_logs() as logs:
            box = Outbox(directory, fsync=False)
            kept = box.open()
        assert kept == ([("k:2", b"abc")] if bit < second * 8 else [("k:1", b"12345678")]), bit
        assert len(_quarantined(box)) == 1
        assert [e["event"] for e in logs] == ["outbox_segment_quarantined", "outbox_compacted"]
        shutil.rmtree(directory)


def test_an_unknown_format_version_is_quarantined_not_lost(tmp_path: Path) -> None:
    _write_segment(tmp_path, ["old", "future", "also-old"])
    path = tmp_path / SEGMENT_1
    blob = bytearray(path.read_bytes())
    blob[_record_size("old", b"old" * 50) + 4] = 3
    path.write_bytes(bytes(blob))
    with capture_logs() as logs:
        box = Outbox(tmp_path)
        assert box.keys() == ["old", "also-old"]
    assert logs[0]["reason"] == "unsupported format version 3"
    [kept] = box.quarantine_directory.iterdir()
    assert kept.read_bytes() == bytes(blob)


def test_an_unknown_record_kind_is_quarantined(tmp_path: Path) -> None:
    fixed = struct.pack(">4sBBHQQ", b"AWOB", 2, 7, 1, 9, 0)
    record = fixed + hashlib.blake2b(fixed[4:] + b"k", digest_size=32).digest() + b"k"
    _write_segment(tmp_path, ["before"])
    with open(tmp_path / SEGMENT_1, "ab") as segment:
        segment.write(record)
    with capture_logs() as logs:
        assert Outbox(tmp_path).keys() == ["before"]
    assert logs[0]["reason"] == "unknown record kind 7"


# --- format 1 ------------------------------------------------------------------------------


def _legacy_file(directory: Path, key: str, seq: int, data: bytes) -> Path:
    fixed = struct.pack(">4sBBHQQ", b"AWOB", 1, 0, len(key), seq, len(data))
    digest = hashlib.blake2b(fixed[4:] + key.encode() + data, digest_size=32).digest()
    path = directory / f"{key}.ob"
    path.write_bytes(fixed + digest + key.encode() + data)
    return path


def test_format_1_files_are_migrated_into_the_log(tmp_path: Path) -> None:
    _legacy_file(tmp_path, "job-b:1", 7, b"second")
    _legacy_file(tmp_path, "job-a:1", 3, b"first")
    damaged = _legacy_file(tmp_path, "job-c:1", 9, b"third")
    damaged.write_bytes(damaged.read_bytes()[:-1])
    _legacy_file(tmp_path, "renamed", 4, b"x").rename(tmp_path / "other.ob")

    with capture_logs() as logs:
        box = Outbox(tmp_path)
        assert box.open() == [("job-a:1", b"first"), ("job-b:1", b"second")]
    reasons = {Path(e["path"]).name: e["reason"] for e in logs if "reason" in e}
    assert reasons["job-c:1.ob"].startswith("length mismatch")
    assert reasons["other.ob"].startswith("key mismatch")
    assert logs[-1]["event"] == "outbox_migrated"
    assert sorted(p.name for p in tmp_path.glob("*.ob")) == []
    assert len(_quarantined(box)) == 2

    box.put("job-d:1", b"fourth")
    assert Outbox(tmp_path).keys() == ["job-a:1", "job-b:1", "job-d:1"]


# --- rotation and compaction ---------------------------------------------------------------


@pytest.mark.parametrize("stuck_every", [0, 7])
def test_rotation_and_compaction_keep_the_disk_bounded(tmp_path: Path, stuck_every: int) -> None:
    """A Pool's steady state: results put, most acknowledged soon, some much later."""
    size = 1024
    box = Outbox(tmp_path, fsync=False, segment_size=size)
    live: dict[str, int] = {}
    most_segments = 0
    for i in range(1500):
        key = f"job-{i}:1"
        box.put(key, bytes(100))
        live[key] = _record_size(key, bytes(100))
        if i >= 5:  # acknowledged five puts later, unless stuck until the end
            late = f"job-{i - 5}:1"
            if not stuck_every or (i - 5) % stuck_every or i > 1200:
                box.remove(late)
                live.pop(late, None)
        if stuck_every and i == 1200:  # the stuck ones are acknowledged at last
            box.remove_many([k for k in live if int(k[4:-2]) % stuck_every == 0])
            live = {k: v for k, v in live.items() if int(k[4:-2]) % stuck_every}
        # Dead bytes never exceed the live ones by more than a segment and a record.
        assert _disk(tmp_path) <= 2 * sum(live.values()) + size + 200, i
        most_segments = max(most_segments, len(_segments(tmp_path)))
    assert box.keys() == list(live)
    assert Outbox(tmp_path).keys() == list(live)
    assert len(_segments(tmp_path)) <= 2
    assert most_segments <= (2 * 1500 * 200 // stuck_every // size + 3 if stuck_every else 2)


def test_a_failed_compaction_falls_back_to_a_new_segment(tmp_path: Path) -> None:
    box = _full_of_dead_records(tmp_path)

    def fail(point: str) -> None:
        if point == "compaction_written":
            raise OSError(errno.ENOSPC, "No space left on device")

    outbox_module.crash_hook = fail
    with capture_logs() as logs:
        box.put("new", b"n")
    assert "outbox_compaction_failed" in [e["event"] for e in logs]
    assert _temporaries(tmp_path) == []
    assert Outbox(tmp_path).open() == [("other:1", b"untouched"), ("new", b"n")]


# --- F16: a full disk, and other write errors ----------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, always unmounted afterwards; skipped where mounting is not allowed."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the injected ENOSPC tests cover the error path")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mount.returncode != 0:
        reason = mount.stderr.decode().strip()
        pytest.skip(f"cannot mount a tmpfs ({reason}): the injected ENOSPC tests cover it")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_full_disk_raises_persists_nothing_and_recovers(tiny_tmpfs: Path) -> None:
    directory = tiny_tmpfs / "outbox"
    box = Outbox(directory, segment_size=8192)

    with pytest.raises(OutboxError) as too_big:  # fails in the middle of the write
        box.put("huge:1", b"x" * 200_000)
    assert too_big.value.errno == errno.ENOSPC
    assert "huge:1" not in box
    assert _disk(directory) == 0  # cut back

    persisted: list[str] = []
    for i in range(100):  # 3 KiB entries; the 64 KiB file system holds a few of them
        key = f"job-{i}:1"
        try:
            box.put(key, bytes([i]) * 3000)
        except OutboxError as exc:
            failure = exc
            failed_key = key
            break
        persisted.append(key)
    else:
        pytest.fail("the tmpfs never filled up")

    assert failure.errno == errno.ENOSPC
    assert isinstance(failure.__cause__, OSError)
    assert repr(failed_key) in str(failure)
    assert str(directory) in str(failure)
    assert failed_key not in box
    assert box.keys() == persisted
    assert Outbox(directory).keys() == persisted

    box.remove_many(persisted[:-1])  # acknowledged: their segments die and space frees
    box.put(failed_key, bytes([99]) * 3000)
    assert Outbox(directory).open() == [
        (persisted[-1], bytes([len(persisted) - 1]) * 3000),
        (failed_key, bytes([99]) * 3000),
    ]


@pytest.mark.parametrize("syscall", ["write", "fdatasync"])
@pytest.mark.parametrize("replacing", [False, True], ids=["new", "replacing"])
def test_enospc_from_the_disk_persists_nothing_and_the_outbox_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syscall: str, replacing: bool
) -> None:
    # A fake: a real full disk cannot be had in a unit test (the tmpfs test above needs
    # root). The write fails after writing half of what it was given, as a disk that
    # fills up mid-write does; fdatasync fails after the whole write.
    box = Outbox(tmp_path)
    box.put("other:1", b"kept")
    if replacing:
        box.put("job-1:1", b"old")
    size_before = _disk(tmp_path)
    real_write = os.write

    def full_write(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def full_sync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if syscall == "write":
        monkeypatch.setattr(os, "write", full_write)
    else:
        monkeypatch.setattr(os, "fdatasync", full_sync)
    with pytest.raises(OutboxError) as info:
        box.put_many([("job-1:1", b"new"), ("job-2:1", b"two")])
    monkeypatch.undo()

    assert info.value.errno == errno.ENOSPC
    assert isinstance(info.value.__cause__, OSError)
    assert "'job-1:1'" in str(info.value)
    assert str(tmp_path) in str(info.value)
    assert _disk(tmp_path) == size_before  # cut back to where it was
    previous = [("other:1", b"kept"), *([("job-1:1", b"old")] if replacing else [])]
    assert box.open() == previous
    assert Outbox(tmp_path).open() == previous

    box.put_many([("job-1:1", b"new"), ("job-2:1", b"two")])
    after = [("other:1", b"kept"), ("job-1:1", b"new"), ("job-2:1", b"two")]
    assert box.open() == after
    assert Outbox(tmp_path).open() == after


@pytest.mark.parametrize("point", ["appended", "synced"])
@pytest.mark.parametrize("code", [errno.EIO, errno.EROFS, errno.EACCES])
def test_an_injected_write_error_persists_none_of_the_group(
    tmp_path: Path, point: str, code: int
) -> None:
    box = Outbox(tmp_path)
    box.put("before", b"0")

    def fail(reached: str) -> None:
        if reached == point:
            raise OSError(code, os.strerror(code))

    outbox_module.crash_hook = fail
    with pytest.raises(OutboxError) as info:
        box.put_many([("a", b"1"), ("b", b"2"), ("c", b"3")])
    assert info.value.errno == code
    assert box.keys() == ["before"]
    assert Outbox(tmp_path).open() == [("before", b"0")]


def test_a_removal_that_cannot_be_written_still_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Outbox(tmp_path)
    box.put_many([("a", b"1"), ("b", b"2")])

    def full_write(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_write)  # a fake full disk, as above
    with capture_logs() as logs:
        box.remove("a")
    monkeypatch.undo()
    assert [e["event"] for e in logs][-1] == "outbox_removal_not_recorded"
    assert box.keys() == ["b"]
    # Not on disk: a restart brings it back, to be reported again (the Scheduler dedupes).
    assert Outbox(tmp_path).keys() == ["a", "b"]


def test_an_unusable_directory_is_an_outbox_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutboxError, match="cannot create the outbox") as info:
        Outbox(tmp_path / "file")
    assert isinstance(info.value.__cause__, OSError)


# --- one outbox, one Pool ------------------------------------------------------------------


def test_a_second_exclusive_outbox_is_refused_naming_the_directory_and_the_holder(
    tmp_path: Path,
) -> None:
    first = Outbox(tmp_path, exclusive=True)
    try:
        with pytest.raises(OutboxError) as info:
            Outbox(tmp_path, exclusive=True)
        assert info.value.errno == errno.EBUSY
        assert repr(str(tmp_path)) in str(info.value)
        assert f"(pid {os.getpid()})" in str(info.value)
        assert stat.S_IMODE((tmp_path / "lock").stat().st_mode) == 0o600
    finally:
        first.close()


def test_a_refused_outbox_leaves_the_holders_files_alone(tmp_path: Path) -> None:
    """The holder may be compacting: its temporary file is not the newcomer's to delete."""
    first = Outbox(tmp_path, exclusive=True)
    try:
        (tmp_path / f"segment-00000002.log{fmt.TEMP_SUFFIX}").write_bytes(b"being written")
        with pytest.raises(OutboxError, match="in use by another Pool"):
            Outbox(tmp_path, exclusive=True)
        assert _temporaries(tmp_path) == [f"segment-00000002.log{fmt.TEMP_SUFFIX}"]
    finally:
        first.close()


def test_close_releases_the_lock_and_keeps_the_entries(tmp_path: Path) -> None:
    first = Outbox(tmp_path, exclusive=True)
    first.put("a", b"1")
    first.close()
    first.close()  # idempotent
    second = Outbox(tmp_path, exclusive=True)
    try:
        assert second.open() == [("a", b"1")]
    finally:
        second.close()


def test_an_exclusive_outbox_dropped_without_close_releases_the_lock(tmp_path: Path) -> None:
    Outbox(tmp_path, exclusive=True)  # collected at once
    Outbox(tmp_path, exclusive=True).close()


_HOLDER = """
import sys, time
from actorwork.pool.outbox import Outbox
box = Outbox(sys.argv[1], exclusive=True)
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_the_lock_of_a_killed_holder_is_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        env=child_environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(OutboxError, match=rf"\(pid {holder.pid}\)"):
            Outbox(tmp_path, exclusive=True)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    Outbox(tmp_path, exclusive=True).close()


# --- the model ------------------------------------------------------------------------------

_keys = st.sampled_from(["a", "b", "job-1:1", "job-1:2", "x.y_z"])
_data = st.binary(max_size=24)


class OutboxAgainstADict(RuleBasedStateMachine):
    """Any run of put, put_many, remove, remove_many and reopen keeps ``open()`` equal to
    a dict in which a put key is (re)inserted at the end; small segments make it rotate,
    compact and delete segments all the time."""

    def __init__(self) -> None:
        super().__init__()
        self.temporary = tempfile.TemporaryDirectory()
        self.box = self._open()
        self.model: dict[str, bytes] = {}

    def _open(self) -> Outbox:
        return Outbox(self.temporary.name, fsync=False, segment_size=150)

    @rule(key=_keys, data=_data)
    def put(self, key: str, data: bytes) -> None:
        self.box.put(key, data)
        self.model.pop(key, None)
        self.model[key] = data

    @rule(items=st.lists(st.tuples(_keys, _data), max_size=4))
    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        self.box.put_many(items)
        for key, data in items:
            self.model.pop(key, None)
            self.model[key] = data

    @rule(key=_keys)
    def remove(self, key: str) -> None:
        self.box.remove(key)
        self.model.pop(key, None)

    @rule(keys=st.lists(_keys, max_size=3))
    def remove_many(self, keys: list[str]) -> None:
        self.box.remove_many(keys)
        for key in keys:
            self.model.pop(key, None)

    @rule()
    def reopen(self) -> None:
        self.box = self._open()

    @invariant()
    def open_equals_the_model(self) -> None:
        assert self.box.open() == list(self.model.items())
        assert self.box.keys() == list(self.model)

    def teardown(self) -> None:
        self.temporary.cleanup()


TestOutboxAgainstADict = OutboxAgainstADict.TestCase
TestOutboxAgainstADict.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
