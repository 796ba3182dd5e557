"""Actor messaging over each transport, beside a raw baseline measured in the same run.

Run from the repository root::

    .venv/bin/python bench/transports.py             # full run, a minute or two
    .venv/bin/python bench/transports.py --quick     # smoke run, a few seconds
    .venv/bin/python bench/transports.py --markdown  # the table as markdown
    .venv/bin/python bench/transports.py --only inproc,tcp --repeat 5

Two patterns per transport:

``one-way``
    N tells to a sink actor, then one ask that returns how many it has counted (the
    mailbox is FIFO, so the answer comes after all N); the count is checked.
``ask``
    N sequential asks, each echoed back: round trips per second.

The baseline does the same with no actor runtime:

``inproc``
    ``asyncio.Queue`` between two tasks (bounded like a mailbox) and ping-pong over two
    queues. Objects are handed over; the actor row goes through the inproc transport,
    which encodes, so its targets are lower. The ``local ref`` row (no transport) is
    shown against the same baseline, for reference.
``unix``, ``tcp``
    8-byte big-endian length-prefixed MessagePack frames over asyncio streams to a
    server in a child process, which decodes every frame; it counts one-way frames and
    answers once with the count, or echoes each frame in ping-pong. The actor system
    with the sink runs in a child process too, the client in this one.
``pipe``
    ``multiprocessing.Pipe`` ``send_bytes``/``recv_bytes`` of MessagePack payloads to
    a child process, in blocking calls with no event loop on either side: a stricter
    baseline than the framed streams, especially for round trips. The actor row uses
    ``ActorSystem.spawn_child`` (the pipe transport).

Every cell is the best of ``--repeat`` runs after a short warm-up, and the runs of an
actor row and of its baseline take turns, so that load from elsewhere on the machine
falls on both. The ``met`` column is information, never an assertion: on a shared
machine rates move by 2x between runs (round trips most), so compare ratios within one
run, and rerun before believing a change of less than that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import multiprocessing
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import assert_never

import msgspec
from _table import (
    format_rows,
    host_line,
    parse_table_arguments,
    quiet_logs,
    ratio,
    stdout_to_stderr,
    table_arguments,
)

import actorwork as aw

# --- messages and the sink actor ---------------------------------------------------------


class BenchPing(aw.Message, tag="bench.ping"):
    """Counted by the sink; echoed back when it came by ask."""

    n: int = 0


class BenchCount(aw.Message, tag="bench.count"):
    """Ask the sink how many BenchPing it has handled."""


class BenchCounted(aw.Message, tag="bench.counted"):
    count: int


class BenchSink(aw.Actor):
    """Counts BenchPing and echoes it (the echo is dropped for a tell)."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: BenchPing | BenchCount) -> BenchPing | BenchCounted:
        match message:
            case BenchPing():
                self.count += 1
                return message
            case BenchCount():
                return BenchCounted(self.count)
            case _:
                assert_never(message)


# --- constants ---------------------------------------------------------------------------

TRANSPORTS = ("inproc", "pipe", "unix", "tcp")
HEADER = struct.Struct(">Q")
ASK_TIMEOUT = 120.0  # generous: a stalled run should fail, not hang
READY = "READY "

#: Targets as the minimum ratio actor/baseline. Pipe has none given; it is held to the
#: same bar as the other byte-stream transports.
TARGETS: dict[tuple[str, str], float] = {
    ("inproc", "one-way"): 0.25,
    ("inproc", "ask"): 0.50,
    ("pipe", "one-way"): 0.50,
    ("pipe", "ask"): 0.50,
    ("unix", "one-way"): 0.50,
    ("unix", "ask"): 0.50,
    ("tcp", "one-way"): 0.50,
    ("tcp", "ask"): 0.50,
}

_encode = msgspec.msgpack.Encoder().encode
_decode_ping = msgspec.msgpack.Decoder(BenchPing).decode
_decode_counted = msgspec.msgpack.Decoder(BenchCounted).decode
_decode_mode = msgspec.msgpack.Decoder(tuple[str, int]).decode

Rate = float  # operations per second


@dataclass(frozen=True)
class Sizes:
    """How many operations each measurement does, and how often it is repeated."""

    inproc_oneway: int
    stream_oneway: int
    round_trips: int
    repeat: int


FULL = Sizes(inproc_oneway=200_000, stream_oneway=100_000, round_trips=20_000, repeat=3)
QUICK = Sizes(inproc_oneway=20_000, stream_oneway=10_000, round_trips=2_000, repeat=1)


@dataclass
class Row:
    """One line of the table; a rate of None was not measured (``note`` says why)."""

    transport: str
    pattern: str
    actor: Rate | None
    baseline: Rate | None
    baseline_kind: str
    target: float | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.actor, self.baseline)

    @property
    def met(self) -> str:
        ratio = self.ratio
        if self.target is None or ratio is None:
            return "-"
        return "yes" if ratio >= self.target else "NO"


# --- measuring ---------------------------------------------------------------------------


Run = Callable[[int], Awaitable[Rate]]


async def interleaved(runs: dict[str, Run], n: int, repeat: int) -> dict[str, Rate]:
    """The best rate of each ``run(n)`` over ``repeat`` rounds, after a warm-up of each.

    Every round runs each candidate once, so that a burst of load from elsewhere on
    the machine falls on the actor and its baseline alike rather than on one of them.
    """
    for run in runs.values():
        await run(max(n // 20, 50))
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeat):
        for key, run in runs.items():
            gc.collect()
            best[key] = max(best[key], await run(n))
    return best


def blocking(run: Callable[[int], Rate]) -> Run:
    """A blocking run as a Run; it holds up the event loop, which has nothing else to do."""

    async def wrapped(n: int) -> Rate:
        return run(n)

    return wrapped


def _rate(n: int, start: float) -> Rate:
    return n / (time.perf_counter() - start)


# --- actor side ------------------------------------------------------------------------------


async def actor_oneway(ref: aw.ActorRef, n: int) -> Rate:
    """N tells, then an ask for the count; the count must have grown by N."""
    before: BenchCounted = await ref.ask(BenchCount(), timeout=ASK_TIMEOUT)
    tell = ref.tell
    start = time.perf_counter()
    for i in range(n):
        await tell(BenchPing(i))
    after: BenchCounted = await ref.ask(BenchCount(), timeout=ASK_TIMEOUT)
    rate = _rate(n, start)
    if after.count - before.count != n:
        raise RuntimeError(f"sink counted {after.count - before.count} of {n} tells")
    return rate


async def actor_ask(ref: aw.ActorRef, n: int) -> Rate:
    """N sequential asks, each echoed."""
    ask = ref.ask
    start = time.perf_counter()
    for i in range(n):
        await ask(BenchPing(i), timeout=ASK_TIMEOUT)
    return _rate(n, start)


# --- inproc ------------------------------------------------------------------------------


async def queue_oneway(n: int) -> Rate:
    """Producer and consumer task around one bounded asyncio.Queue."""
    queue: asyncio.Queue[BenchPing] = asyncio.Queue(maxsize=1024)

    async def consume() -> None:
        get = queue.get
        for _ in range(n):
            await get()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(consume())
        put = queue.put
        for i in range(n):
            await put(BenchPing(i))
    return _rate(n, start)


async def queue_pingpong(n: int) -> Rate:
    """Round trips through two asyncio.Queues and an echo task."""
    there: asyncio.Queue[BenchPing] = asyncio.Queue()
    back: asyncio.Queue[BenchPing] = asyncio.Queue()

    async def echo() -> None:
        for _ in range(n):
            await back.put(await there.get())

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(echo())
        for i in range(n):
            await there.put(BenchPing(i))
            await back.get()
    return _rate(n, start)


async def bench_inproc(sizes: Sizes) -> list[Row]:
    n, trips, repeat = sizes.inproc_oneway, sizes.round_trips, sizes.repeat
    async with aw.ActorSystem("bench-server", listen="inproc://bench") as server:
        local = await server.spawn(BenchSink(), name="sink")
        async with aw.ActorSystem("bench-client") as client:
            remote = await client.remote(server.address or "inproc://bench", "sink")
            oneway = await interleaved(
                {
                    "raw": queue_oneway,
                    "inproc": lambda k: actor_oneway(remote, k),
                    "local": lambda k: actor_oneway(local, k),
                },
                n,
                repeat,
            )
            ask = await interleaved(
                {
                    "raw": queue_pingpong,
                    "inproc": lambda k: actor_ask(remote, k),
                    "local": lambda k: actor_ask(local, k),
                },
                trips,
                repeat,
            )
    queue, queues = "asyncio.Queue", "2 queues"
    return [
        Row(
            "inproc",
            "one-way",
            oneway["inproc"],
            oneway["raw"],
            queue,
            TARGETS["inproc", "one-way"],
        ),
        Row("inproc", "ask", ask["inproc"], ask["raw"], queues, TARGETS["inproc", "ask"]),
        Row("local ref", "one-way", oneway["local"], oneway["raw"], queue, None),
        Row("local ref", "ask", ask["local"], ask["raw"], queues, None),
    ]


# --- child processes -----------------------------------------------------------------------


@contextlib.contextmanager
def child(*args: str, pass_fds: tuple[int, ...] = ()) -> Iterator[str]:
    """Run this file with ``--serve ...`` in a child; yield the address it announces.

    The child serves until its stdin closes, which is how it is stopped.
    """
    command = [sys.executable, __file__, "--serve", *args]
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=pass_fds
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY):
                yield line[len(READY) :].strip()
                break
        else:
            raise RuntimeError(f"child {args!r} exited with {proc.wait()} before it was ready")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def announce(address: str) -> None:
    print(f"{READY}{address}", flush=True)


async def until_stdin_closes() -> None:
    await asyncio.to_thread(sys.stdin.read)


# --- raw framed streams (unix, tcp) --------------------------------------------------------


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return await reader.readexactly(length)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


async def handle_raw_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Server side of one raw run: a mode frame, then one-way or ping-pong frames."""
    try:
        mode, n = _decode_mode(await read_frame(reader))
        if mode == "oneway":
            count = 0
            for _ in range(n):
                _decode_ping(await read_frame(reader))
                count += 1
            writer.write(frame(_encode(BenchCounted(count))))
        else:
            for _ in range(n):
                message = _decode_ping(await read_frame(reader))
                writer.write(frame(_encode(message)))
                await writer.drain()
        await writer.drain()
        await reader.read()  # until the client closes
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_raw_stream(listen: str) -> None:
    address = aw.parse_address(listen)
    if address.scheme == "unix":
        server = await asyncio.start_unix_server(handle_raw_stream, address.location)
        bound = listen
    else:
        host, _, port = address.location.rpartition(":")
        server = await asyncio.start_server(handle_raw_stream, host, int(port))
        bound = "tcp://{}:{}".format(*server.sockets[0].getsockname()[:2])
    async with server:
        announce(bound)
        await until_stdin_closes()


async def open_stream(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parsed = aw.parse_address(address)
    if parsed.scheme == "unix":
        return await asyncio.open_unix_connection(parsed.location)
    host, _, port = parsed.location.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def raw_stream_oneway(address: str, n: int) -> Rate:
    reader, writer = await open_stream(address)
    try:
        writer.write(frame(_encode(("oneway", n))))
        write, drain, encode = writer.write, writer.drain, _encode
        start = time.perf_counter()
        for i in range(n):
            payload = encode(BenchPing(i))
            write(HEADER.pack(len(payload)) + payload)
            if i & 127 == 127:
                await drain()
        await drain()
        counted = _decode_counted(await read_frame(reader))
        rate = _rate(n, start)
    finally:
        writer.close()
        await writer.wait_closed()
    if counted.count != n:
        raise RuntimeError(f"raw server counted {counted.count} of {n} frames")
    return rate


async def raw_stream_pingpong(address: str, n: int) -> Rate:
    reader, writer = await open_stream(address)
    try:
        writer.write(frame(_encode(("pingpong", n))))
        start = time.perf_counter()
        for i in range(n):
            writer.write(frame(_encode(BenchPing(i))))
            await writer.drain()
            _decode_ping(await read_frame(reader))
        rate = _rate(n, start)
    finally:
        writer.close()
        await writer.wait_closed()
    return rate


async def serve_actor(listen: str) -> None:
    async with aw.ActorSystem("bench-server", listen=listen) as system:
        await system.spawn(BenchSink(), name="sink")
        announce(system.address or listen)
        await until_stdin_closes()


async def bench_stream(scheme: str, sizes: Sizes) -> list[Row]:
    n, trips, repeat = sizes.stream_oneway, sizes.round_trips, sizes.repeat
    with tempfile.TemporaryDirectory(prefix="aw-bench-") as tmp:
        if scheme == "unix":
            raw_listen, actor_listen = f"unix://{tmp}/raw.sock", f"unix://{tmp}/actor.sock"
        else:
            raw_listen = actor_listen = "tcp://127.0.0.1:0"
        with (
            child("raw-stream", "--listen", raw_listen) as raw,
            child("actor", "--listen", actor_listen) as address,
        ):
            async with aw.ActorSystem("bench-client") as client:
                ref = await client.remote(address, "sink")
                oneway = await interleaved(
                    {
                        "raw": lambda k: raw_stream_oneway(raw, k),
                        "actor": lambda k: actor_oneway(ref, k),
                    },
                    n,
                    repeat,
                )
                ask = await interleaved(
                    {
                        "raw": lambda k: raw_stream_pingpong(raw, k),
                        "actor": lambda k: actor_ask(ref, k),
                    },
                    trips,
                    repeat,
                )
    kind = f"framed {scheme} stream"
    return [
        Row(scheme, "one-way", oneway["actor"], oneway["raw"], kind, TARGETS[scheme, "one-way"]),
        Row(scheme, "ask", ask["actor"], ask["raw"], kind, TARGETS[scheme, "ask"]),
    ]


# --- pipe ----------------------------------------------------------------------------------


def serve_raw_pipe(fd: int) -> None:
    """Server side of the pipe baseline; runs until the parent closes its end."""
    connection = Connection(fd)
    announce(f"fd:{fd}")
    recv, send = connection.recv_bytes, connection.send_bytes
    try:
        while True:
            mode, n = _decode_mode(recv())
            if mode == "oneway":
                count = 0
                for _ in range(n):
                    _decode_ping(recv())
                    count += 1
                send(_encode(BenchCounted(count)))
            else:
                for _ in range(n):
                    send(_encode(_decode_ping(recv())))
    except EOFError:
        pass
    finally:
        connection.close()


def raw_pipe_oneway(connection: Connection, n: int) -> Rate:
    send, encode = connection.send_bytes, _encode
    send(encode(("oneway", n)))
    start = time.perf_counter()
    for i in range(n):
        send(encode(BenchPing(i)))
    counted = _decode_counted(connection.recv_bytes())
    rate = _rate(n, start)
    if counted.count != n:
        raise RuntimeError(f"pipe server counted {counted.count} of {n} payloads")
    return rate


def raw_pipe_pingpong(connection: Connection, n: int) -> Rate:
    send, recv, encode = connection.send_bytes, connection.recv_bytes, _encode
    send(encode(("pingpong", n)))
    start = time.perf_counter()
    for i in range(n):
        send(encode(BenchPing(i)))
        _decode_ping(recv())
    return _rate(n, start)


def pipe_transport_status() -> str:
    """'' if the pipe transport's spawn API is there, else why the actor row is empty."""
    if importlib.util.find_spec("actorwork.transports.pipe") is None:
        return "actorwork.transports.pipe not written yet"
    if not hasattr(aw.ActorSystem, "spawn_child"):
        return "ActorSystem.spawn_child not available yet"
    return ""


@contextlib.asynccontextmanager
async def pipe_sink() -> AsyncIterator[aw.ActorRef]:
    """The sink in a child actor system over pipe://, spawned there by import path.

    The child runs ``python -m actorwork.cli.child`` with this process's sys.path,
    so it imports this file by its stem (``transports``); ``init`` quiets its logs.
    """
    module = Path(__file__).stem
    async with aw.ActorSystem("bench-client") as system:
        with stdout_to_stderr():  # the child inherits fd 1 and logs before init runs
            handle = await system.spawn_child("bench-child", init=f"{module}:quiet_child")
        try:
            yield await handle.spawn(f"{module}:BenchSink", name="sink")
        finally:
            await handle.aclose()


def quiet_child(system: aw.ActorSystem) -> None:
    """``init`` hook of the pipe child: its logs would otherwise print debug to our stdout."""
    quiet_logs()


async def bench_pipe(sizes: Sizes) -> list[Row]:
    n, trips, repeat = sizes.stream_oneway, sizes.round_trips, sizes.repeat
    note = pipe_transport_status()
    ours, theirs = multiprocessing.Pipe()
    try:
        with child("raw-pipe", "--fd", str(theirs.fileno()), pass_fds=(theirs.fileno(),)):
            theirs.close()
            oneway_runs = {"raw": blocking(lambda k: raw_pipe_oneway(ours, k))}
            ask_runs = {"raw": blocking(lambda k: raw_pipe_pingpong(ours, k))}
            async with contextlib.AsyncExitStack() as stack:
                if not note:
                    try:
                        ref = await stack.enter_async_context(pipe_sink())
                    except Exception as exc:
                        note = f"cannot start the pipe child: {exc!r}"
                    else:
                        oneway_runs["actor"] = lambda k: actor_oneway(ref, k)
                        ask_runs["actor"] = lambda k: actor_ask(ref, k)
                oneway = await interleaved(oneway_runs, n, repeat)
                ask = await interleaved(ask_runs, trips, repeat)
            ours.close()  # the raw child's signal to exit
    finally:
        ours.close()
        theirs.close()
    kind = "multiprocessing.Pipe"
    return [
        Row(
            "pipe",
            "one-way",
            oneway.get("actor"),
            oneway["raw"],
            kind,
            TARGETS["pipe", "one-way"],
            note,
        ),
        Row("pipe", "ask", ask.get("actor"), ask["raw"], kind, TARGETS["pipe", "ask"], note),
    ]


# --- the table -------------------------------------------------------------------------------

COLUMNS = ("transport", "pattern", "actor/s", "baseline/s", "baseline", "ratio", "target", "met")


def cells(row: Row) -> list[str]:
    def rate(value: Rate | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    ratio = row.ratio
    return [
        row.transport,
        row.pattern,
        rate(row.actor),
        rate(row.baseline),
        row.baseline_kind,
        "-" if ratio is None else f"{ratio:.2f}",
        "-" if row.target is None else f">= {row.target:.2f}",
        row.met,
    ]


def table(rows: list[Row], *, markdown: bool) -> str:
    notes = ((row.transport, row.note) for row in rows)
    return format_rows(COLUMNS, rows, cells, notes, numeric={2, 3, 5}, markdown=markdown)


def describe(sizes: Sizes) -> str:
    return (
        f"{host_line()}; one-way n={sizes.inproc_oneway:,} inproc / "
        f"{sizes.stream_oneway:,} pipe+sockets, round trips n={sizes.round_trips:,}; "
        f"best of {sizes.repeat}"
    )


# --- entry points ----------------------------------------------------------------------------


async def run_benchmarks(selected: list[str], sizes: Sizes) -> list[Row]:
    benches: dict[str, Callable[[Sizes], Awaitable[list[Row]]]] = {
        "inproc": bench_inproc,
        "pipe": bench_pipe,
        "unix": lambda s: bench_stream("unix", s),
        "tcp": lambda s: bench_stream("tcp", s),
    }
    rows: list[Row] = []
    for name in selected:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(await benches[name](sizes))
        except Exception as exc:
            note = f"failed: {exc!r}"
            rows.extend(
                Row(name, p, None, None, "", TARGETS.get((name, p)), note)
                for p in ("one-way", "ask")
            )
    return rows


def serve(args: argparse.Namespace) -> None:
    if args.serve == "raw-pipe":
        serve_raw_pipe(args.fd)
    elif args.serve == "raw-stream":
        asyncio.run(serve_raw_stream(args.listen))
    else:
        asyncio.run(serve_actor(args.listen))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    table_arguments(parser, TRANSPORTS, "transport")
    parser.add_argument(
        "--serve", choices=("raw-stream", "raw-pipe", "actor"), help=argparse.SUPPRESS
    )
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    return parse_table_arguments(parser, argv, TRANSPORTS, "transport")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_logs()
    if args.serve:
        serve(args)
        return
    sizes = QUICK if args.quick else FULL
    if args.repeat is not None:
        sizes = Sizes(sizes.inproc_oneway, sizes.stream_oneway, sizes.round_trips, args.repeat)
    rows = asyncio.run(run_benchmarks(args.only, sizes))
    print(describe(sizes))
    print()
    print(table(rows, markdown=args.markdown))


if __name__ == "__main__":
    main()
