"""The outbox's write path: one group write against single puts, time per entry.

Run from the repository root::

    .venv/bin/python bench/outbox.py                      # in a temporary directory
    .venv/bin/python bench/outbox.py --dir /var/lib/x     # on the disk the Pool will use
    .venv/bin/python bench/outbox.py --entries 200 --repeat 5 --size 2048

Rows, each writing ``--entries`` results of ``--size`` bytes into an empty outbox:

``put``
    one :meth:`Outbox.put` per entry: one append and one ``fdatasync`` each.
``put_many``
    one :meth:`Outbox.put_many` of all entries: one append, one ``fdatasync``.
``put, hook set``
    as ``put`` with a crash hook that does nothing, to show what the hook costs when set
    (unset, it is one global read and a comparison per step).
``put, fsync=False`` / ``put_many, fsync=False``
    no sync at all: what the ``fdatasync`` costs.

The first put of each run also creates the first segment (one directory fsync); with
the default 4 MiB segments no run rotates.

Every cell is the best of ``--repeat`` runs, and the rows take turns. fsync costs depend
on the file system and the device (tmpfs makes them free; a laptop SSD and a cloud volume
differ by 10x), so run it where the Pool's outbox will live.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from actorwork.pool import outbox as outbox_module
from actorwork.pool.outbox import Outbox


def _single(box: Outbox, items: list[tuple[str, bytes]]) -> None:
    for key, data in items:
        box.put(key, data)


def _group(box: Outbox, items: list[tuple[str, bytes]]) -> None:
    box.put_many(items)


def _idle_hook(point: str) -> None:
    pass


ROWS: list[tuple[str, Callable[[Outbox, list[tuple[str, bytes]]], None], bool, bool]] = [
    ("put", _single, True, False),
    ("put_many", _group, True, False),
    ("put, hook set", _single, True, True),
    ("put, fsync=False", _single, False, False),
    ("put_many, fsync=False", _group, False, False),
]


def _run_once(
    base: Path, row: int, fsync: bool, hook: bool, items: list[tuple[str, bytes]]
) -> float:
    directory = base / f"run-{row}"
    box = Outbox(directory, fsync=fsync)
    box.open()
    write = ROWS[row][1]
    outbox_module.crash_hook = _idle_hook if hook else None
    try:
        started = time.perf_counter()
        write(box, items)
        elapsed = time.perf_counter() - started
    finally:
        outbox_module.crash_hook = None
    assert len(box) == len(items)
    shutil.rmtree(directory)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to write (default: a temporary dir)")
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512, help="bytes per result")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    items = [(f"job-{i:06d}:1", os.urandom(args.size)) for i in range(args.entries)]
    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        print(f"{args.entries} entries of {args.size} bytes in {base}, best of {args.repeat}")
        print(f"{'mode':<24}{'total ms':>10}{'us/entry':>10}{'entries/s':>12}")
        best = [float("inf")] * len(ROWS)
        for _ in range(args.repeat):  # rows take turns, so load from elsewhere hits them all
            for row, (_, _, fsync, hook) in enumerate(ROWS):
                best[row] = min(best[row], _run_once(Path(base), row, fsync, hook, items))
        for (name, *_), elapsed in zip(ROWS, best, strict=True):
            per_entry = elapsed / len(items)
            print(f"{name:<24}{elapsed * 1e3:>10.1f}{per_entry * 1e6:>10.1f}{1 / per_entry:>12.0f}")


if __name__ == "__main__":
    main()
