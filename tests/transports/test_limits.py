"""What a listener's peers may hold (F23): idle and frame deadlines, one buffer budget
across all connections, a cap on connections.

Real sockets and real peers throughout: each stranger completes the handshake over a
raw stream and then misbehaves byte by byte. Deadlines are small here because they are
configuration; nothing asserts how long anything took.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSStream

from actorwork.addressing import parse_address
from actorwork.errors import ConnectionBroken, HandshakeError, TransportError
from actorwork.transports._framing import HEADER, BufferBudget, FramedStream
from actorwork.transports._handshake import client_handshake
from actorwork.transports._socket import SocketListener
from actorwork.transports._stream import StreamListener
from actorwork.transports.base import Connection, ConnectionOptions, Listener
from actorwork.transports.tcp import TCPTransport
from actorwork.transports.unix import UnixTransport

pytestmark = pytest.mark.usefixtures("no_leaks")


async def until(condition: Callable[[], bool], *, limit: float = 30) -> None:
    """Return once ``condition()`` holds; the state polled has no event to wait on."""
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - counters of the runtime, not events
            await anyio.sleep(0.01)


MiB = 1024 * 1024


@dataclass
class Served:
    """A listener whose handler reads every connection until it ends, and what it saw."""

    listener: Listener
    address: str
    frames: list[bytes] = field(default_factory=list)
    ends: list[Exception] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # "frame" and "end", in order
    ended: anyio.Event = field(default_factory=anyio.Event)
    expect: int = 0

    @property
    def budget(self) -> BufferBudget:
        assert isinstance(self.listener, (SocketListener, StreamListener))
        return self.listener.budget

    async def handle(self, connection: Connection) -> None:
        while True:
            try:
                self.frames.append(await connection.receive())
                self.events.append("frame")
            except TransportError as exc:
                self.ends.append(exc)
                self.events.append("end")
                if len(self.ends) >= self.expect:
                    self.ended.set()
                return

    async def wait_for_ends(self, count: int) -> list[Exception]:
        self.expect = count
        self.ended = anyio.Event()
        if len(self.ends) >= count:
            self.ended.set()
        with anyio.fail_after(30):
            await self.ended.wait()
        return self.ends


@asynccontextmanager
async def serving(
    scheme: str, tmp_path: Path, options: ConnectionOptions, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Served]:
    if scheme == "unix":
        address = parse_address(f"unix://{tmp_path / 's.sock'}")
        listener = await UnixTransport().listen(address, options)
    else:
        address = parse_address("tcp://127.0.0.1:0")
        listener = await TCPTransport(server_ssl=tls).listen(address, options)
    served = Served(listener, listener.address)
    async with anyio.create_task_group() as tg, listener:
        await tg.start(listener.serve, served.handle)
        yield served
        tg.cancel_scope.cancel()


Connect = Callable[[str], Awaitable[anyio.abc.ByteStream]]


async def plain_stream(address: str) -> anyio.abc.ByteStream:
    parsed = parse_address(address)
    if parsed.scheme == "unix":
        return await anyio.connect_unix(parsed.location)
    host, _, port = parsed.location.rpartition(":")
    return await anyio.connect_tcp(host, int(port))


@asynccontextmanager
async def stranger(address: str, connect: Connect = plain_stream) -> AsyncIterator[FramedStream]:
    """A peer that completes the handshake, then does as the test says with raw bytes."""
    framed = FramedStream(await connect(address), max_frame_size=32 * MiB)
    try:
        await client_handshake(framed, ConnectionOptions(name="stranger"))
        yield framed
    finally:
        await framed.aclose()


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
async def test_ten_idle_peers_are_closed_by_the_idle_deadline(scheme: str, tmp_path: Path) -> None:
    options = ConnectionOptions(idle_timeout=0.3, frame_timeout=None)
    async with serving(scheme, tmp_path, options) as served, anyio.create_task_group() as tg:
        closed: list[bytes] = []

        async def idle_peer() -> None:
            async with stranger(served.address) as framed:
                # The server closes the connection: the peer sees the end of the stream.
                with anyio.fail_after(30), pytest.raises(TransportError):
                    await framed.receive()
                closed.append(b"")

        for _ in range(10):
            tg.start_soon(idle_peer)
        ends = await served.wait_for_ends(10)
    assert len(closed) == 10
    assert all(isinstance(end, ConnectionBroken) for end in ends), ends
    assert all("idle_timeout=0.3" in str(end) for end in ends), ends


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
async def test_ten_peers_sending_a_byte_at_a_time_are_closed_by_the_frame_deadline(
    scheme: str, tmp_path: Path
) -> None:
    # Each byte is new activity, so the idle deadline alone would never close them.
    options = ConnectionOptions(idle_timeout=0.3, frame_timeout=0.6)
    frame = HEADER.pack(1000) + b"x" * 1000
    async with serving(scheme, tmp_path, options) as served, anyio.create_task_group() as tg:

        async def dribbling_peer() -> None:
            async with stranger(served.address) as framed:
                try:
                    for byte in frame:
                        await framed.stream.send(bytes([byte]))
                        await anyio.sleep(0.05)
                except (anyio.BrokenResourceError, OSError):
                    return  # closed by the server, as it should be
                raise AssertionError("a peer sent a whole frame a byte at a time")

        for _ in range(10):
            tg.start_soon(dribbling_peer)
        ends = await served.wait_for_ends(10)
    assert all("frame_timeout=0.6" in str(end) for end in ends), ends
    assert served.frames == []


async def test_sixteen_stalled_large_frames_stay_within_the_buffer_budget(tmp_path: Path) -> None:
    """16 peers announce 8 MiB and send all but a byte: the budget (64 MiB) holds."""
    options = ConnectionOptions(idle_timeout=None, frame_timeout=None)  # the default caps
    limit = options.buffer_limit
    assert limit == 4 * (16 * MiB + HEADER.size)
    body = b"x" * (8 * MiB)
    async with serving("unix", tmp_path, options) as served, anyio.create_task_group() as tg:
        budget = served.budget
        stop = anyio.Event()

        async def stalling_peer() -> None:
            async with stranger(served.address) as framed:
                try:
                    await framed.stream.send(HEADER.pack(len(body)) + body[:-1])
                except (anyio.BrokenResourceError, OSError):
                    return
                await stop.wait()

        for _ in range(16):
            tg.start_soon(stalling_peer)
        # Some frames fit and are taken in full; the others wait for room.
        await until(lambda: len(budget._waiters) + budget.used // len(body) >= 16, limit=60)
        held, waiting = budget.used, len(budget._waiters)
        assert 0 < waiting < 16
        # Room taken for whole frames, plus what each waiting peer sent in its first read.
        assert held <= limit + waiting * 256 * 1024, (held, waiting)
        assert held < limit + 4 * MiB < 16 * len(body)
        stop.set()  # the peers leave, each in the middle of its frame
        await served.wait_for_ends(16)
        assert all(isinstance(end, ConnectionBroken) for end in served.ends)
        assert budget.used == 0
        assert not budget._waiters


async def test_a_frame_that_waited_for_room_arrives_once_stalled_peers_expire(
    tmp_path: Path,
) -> None:
    options = ConnectionOptions(
        max_frame_size=1 * MiB, max_buffered=2 * MiB, idle_timeout=None, frame_timeout=0.5
    )
    body = b"y" * (MiB - 1024)
    async with serving("unix", tmp_path, options) as served, anyio.create_task_group() as tg:
        budget = served.budget

        async def stalling_peer() -> None:
            async with stranger(served.address) as framed:
                try:
                    await framed.stream.send(HEADER.pack(len(body)) + body[:-1])
                    await framed.receive()
                except TransportError:
                    return

        tg.start_soon(stalling_peer)
        tg.start_soon(stalling_peer)
        await until(lambda: budget.used >= 2 * len(body))
        async with stranger(served.address) as honest:
            await honest.send(body)  # waits for room; its own deadline does not run meanwhile
            await until(lambda: bool(served.frames))
        assert served.frames == [body]
        # The budget held the frame back until both stalled peers were gone.
        assert served.events[:3] == ["end", "end", "frame"], served.events
        ends = await served.wait_for_ends(3)
    assert sum("frame_timeout" in str(end) for end in ends) == 2, ends
    assert budget.used == 0


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
async def test_connections_over_the_cap_are_closed_and_slots_come_back(
    scheme: str, tmp_path: Path
) -> None:
    options = ConnectionOptions(max_connections=4)
    transport = UnixTransport() if scheme == "unix" else TCPTransport()
    async with serving(scheme, tmp_path, options) as served:
        address = parse_address(served.address)
        held = [await transport.connect(address, options) for _ in range(4)]
        try:
            for _ in range(2):
                with pytest.raises(HandshakeError, match="closed the connection"):
                    await transport.connect(address, options)
            await held.pop().aclose()
            await served.wait_for_ends(1)
            held.append(await transport.connect(address, options))
        finally:
            for connection in held:
                await connection.aclose()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_deadlines_and_budget_hold_over_tls(tmp_path: Path, ca: trustme.CA) -> None:
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)

    async def tls_stream(address: str) -> anyio.abc.ByteStream:
        raw = await plain_stream(address)
        return await TLSStream.wrap(
            raw, ssl_context=client_ssl, hostname="127.0.0.1", standard_compatible=False
        )

    options = ConnectionOptions(
        max_frame_size=1 * MiB, max_buffered=2 * MiB, idle_timeout=0.6, frame_timeout=0.3
    )
    body = b"z" * (MiB - 1024)
    async with serving("tcp", tmp_path, options, tls=server_ssl) as served:
        async with stranger(served.address, tls_stream) as idle:
            ends = await served.wait_for_ends(1)
            assert "idle_timeout=0.6" in str(ends[-1])
            with pytest.raises(TransportError):
                await idle.receive()
        async with stranger(served.address, tls_stream) as stalling:
            await stalling.stream.send(HEADER.pack(len(body)) + body[:-1])
            await until(lambda: served.budget.used >= len(body))
            ends = await served.wait_for_ends(2)
            assert "frame_timeout=0.3" in str(ends[-1])
        assert served.budget.used == 0


def test_the_limits_come_from_the_system_settings(tmp_path: Path) -> None:
    from actorwork.config import load_config
    from actorwork.node import system_from_settings

    path = tmp_path / "actorwork.toml"
    path.write_text(
        "[system]\nidle_timeout = 0\nframe_timeout = 12.5\n"
        "max_buffered = 40000000\nmax_connections = 9\n"
    )
    options = system_from_settings(load_config(path, env={}).system).options
    assert (options.idle_timeout, options.frame_timeout) == (None, 12.5)
    assert (options.buffer_limit, options.max_connections) == (40_000_000, 9)
    path.write_text("[system]\n")
    defaults = system_from_settings(load_config(path, env={}).system).options
    assert defaults == ConnectionOptions(name=defaults.name)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("idle_timeout = nan", "system.idle_timeout = nan"),
        ("frame_timeout = -1.0", "system.frame_timeout = -1.0"),
        ("max_buffered = 1000", "system.max_buffered = 1000"),
        ("max_connections = 0", "system.max_connections = 0"),
    ],
)
def test_bad_limits_in_the_settings_are_refused_by_name(
    tmp_path: Path, line: str, named: str
) -> None:
    from actorwork.config import load_config
    from actorwork.errors import ConfigError

    path = tmp_path / "actorwork.toml"
    path.write_text(f"[system]\n{line}\n")
    with pytest.raises(ConfigError, match=named):
        load_config(path, env={})
