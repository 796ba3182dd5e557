"""Public test helpers: the transport conformance suite and its harnesses.

Every transport must pass the same checks. A harness knows how to serve and connect
for one scheme; each ``check_*`` coroutine takes a harness and asserts one part of
the contract in :mod:`actorwork.transports.base`. A third-party transport is
checked by writing a harness for it and running :data:`CONFORMANCE_CHECKS`::

    @pytest.mark.parametrize("check", CONFORMANCE_CHECKS, ids=lambda c: c.__name__)
    async def test_conformance(check, tmp_path):
        await check(MyHarness(tmp_path))

Run ``python -m actorwork.testing echo ADDRESS`` to get an echo peer in another
process (it prints the bound address on its first line of output).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
import msgspec
from structlog.testing import capture_logs

from actorwork.addressing import parse_address
from actorwork.errors import (
    AuthenticationError,
    ConnectionBroken,
    EndOfStream,
    FrameTooLarge,
    TransportError,
)
from actorwork.messages import Ping, Pong
from actorwork.runtime.child import child_environment
from actorwork.runtime.system import ActorSystem
from actorwork.transports._framing import HEADER, FramedStream
from actorwork.transports._handshake import client_handshake
from actorwork.transports.base import Connection, ConnectionOptions, Transport
from actorwork.transports.docker import SECRET_VARIABLE, DockerTransport
from actorwork.transports.registry import resolve_transport

__all__ = [
    "CONFORMANCE_CHECKS",
    "HARNESSES",
    "DockerHarness",
    "InProcHarness",
    "NotApplicable",
    "PipeHarness",
    "TCPHarness",
    "TransportHarness",
    "UnixHarness",
]

SMALL_CAP = 64 * 1024


class NotApplicable(Exception):
    """Raised by a check that does not apply to the harness's transport."""


class PeerProcess(Protocol):
    """What a check needs of a peer's process: a pid on this host to signal."""

    @property
    def pid(self) -> int: ...


class TransportHarness:
    """Serves and connects for one scheme. Subclasses set ``scheme`` and ``new_address``."""

    scheme = ""
    #: Whether a peer can live in another process (and so be killed with SIGKILL).
    crosses_processes = True
    #: Whether the wire is a byte stream (so raw, unframed bytes can be injected).
    byte_stream = True

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def new_address(self) -> str:
        raise NotImplementedError

    def listen_transport(self) -> Transport | None:
        """The transport this process's listeners use; None: the registry's."""
        return None

    @asynccontextmanager
    async def serving(
        self, handler: Callable[[Connection], Awaitable[None]], options: ConnectionOptions
    ) -> AsyncIterator[Callable[[ConnectionOptions], Awaitable[Connection]]]:
        """Serve ``handler`` in this process; yield a function that opens client connections."""
        address, transport = resolve_transport(self.new_address(), self.listen_transport())
        listener = await transport.listen(address, options)
        async with anyio.create_task_group() as tg:
            await tg.start(listener.serve, handler)

            async def connect(client_options: ConnectionOptions) -> Connection:
                bound, chosen = resolve_transport(listener.address)
                return await chosen.connect(bound, client_options)

            try:
                yield connect
            finally:
                await listener.aclose()
                tg.cancel_scope.cancel()

    @asynccontextmanager
    async def system(self, **kwargs: Any) -> AsyncIterator[ActorSystem]:
        """An actor system listening on a fresh address of this scheme."""
        async with ActorSystem(
            "conformance-server",
            listen=self.new_address(),
            transport=self.listen_transport(),
            **kwargs,
        ) as system:
            yield system

    async def raw_stream(self, address: str) -> anyio.abc.ByteStream:
        """An unframed byte stream to a listener of this scheme, before any handshake."""
        parsed = parse_address(address)
        if parsed.scheme == "unix":
            return await anyio.connect_unix(parsed.location)
        if parsed.scheme == "tcp":
            host, _, port = parsed.location.rpartition(":")
            return await anyio.connect_tcp(host, int(port))
        raise NotImplementedError(f"no raw stream for {address!r}")

    @asynccontextmanager
    async def echo_peer(self) -> AsyncIterator[tuple[PeerProcess, Connection]]:
        """An echo server in a child process, and a connection to it."""
        command = [sys.executable, "-m", "actorwork.testing", "echo", self.new_address()]
        async with await anyio.open_process(
            command, stdin=None, stderr=None, env=child_environment()
        ) as process:
            assert process.stdout is not None
            line = await _read_line(process.stdout)
            async with _echo_session(process, line) as connection:
                yield process, connection


class InProcHarness(TransportHarness):
    scheme = "inproc"
    crosses_processes = False
    byte_stream = False

    def new_address(self) -> str:
        return f"inproc://conformance-{uuid.uuid4().hex[:12]}"


class UnixHarness(TransportHarness):
    scheme = "unix"

    def new_address(self) -> str:
        return f"unix://{self.tmp_path / f's-{uuid.uuid4().hex[:8]}.sock'}"


class TCPHarness(TransportHarness):
    scheme = "tcp"

    def new_address(self) -> str:
        return "tcp://127.0.0.1:0"


class PipeHarness(TransportHarness):
    """Each connection is a fresh ``multiprocessing.Pipe``; its server end served here."""

    scheme = "pipe"

    def new_address(self) -> str:
        raise NotImplementedError("pipe addresses exist only once a pipe is made")

    @asynccontextmanager
    async def serving(
        self, handler: Callable[[Connection], Awaitable[None]], options: ConnectionOptions
    ) -> AsyncIterator[Callable[[ConnectionOptions], Awaitable[Connection]]]:
        async with anyio.create_task_group() as tg:
            listeners: list[Any] = []

            async def connect(client_options: ConnectionOptions) -> Connection:
                server_fd, client_fd = _pipe_fds()
                address, transport = resolve_transport(f"pipe://{server_fd}")
                listener = await transport.listen(address, options)
                listeners.append(listener)
                await tg.start(listener.serve, handler)
                bound, chosen = resolve_transport(f"pipe://{client_fd}")
                return await chosen.connect(bound, client_options)

            try:
                yield connect
            finally:
                for listener in listeners:
                    await listener.aclose()
                tg.cancel_scope.cancel()

    @asynccontextmanager
    async def system(self, **kwargs: Any) -> AsyncIterator[ActorSystem]:
        async with ActorSystem("conformance-server", **kwargs) as system:
            self._system = system
            yield system

    async def raw_stream(self, address: str) -> anyio.abc.ByteStream:
        raise NotImplementedError

    async def attach_raw(self, system: ActorSystem) -> anyio.abc.ByteStream:
        """A raw pipe end whose other end ``system`` serves."""
        server_fd, client_fd = _pipe_fds()
        address, transport = resolve_transport(f"pipe://{server_fd}")
        listener = await transport.listen(address, system.options)
        system._task_group().start_soon(listener.serve, system.serve_connection)  # noqa: SLF001
        import socket

        return await anyio.abc.UNIXSocketStream.from_socket(socket.socket(fileno=client_fd))

    @asynccontextmanager
    async def echo_peer(self) -> AsyncIterator[tuple[PeerProcess, Connection]]:
        server_fd, client_fd = _pipe_fds()
        command = [sys.executable, "-m", "actorwork.testing", "echo", f"pipe://{server_fd}"]
        try:
            process = await anyio.open_process(
                command, stdin=None, stderr=None, env=child_environment(), pass_fds=(server_fd,)
            )
        finally:
            os.close(server_fd)
        async with process:
            assert process.stdout is not None
            await _read_line(process.stdout)
            async with _echo_session(process, f"pipe://{client_fd}") as connection:
                yield process, connection


class _ContainerPeer:
    """A container seen as a peer process: ``pid`` is its init process on this host."""

    def __init__(self, pid: int) -> None:
        self.pid = pid


class DockerHarness(TransportHarness):
    """``docker://`` over a socket in the test's directory; the echo peer runs in a container.

    The container runs ``$ACTORWORK_TEST_IMAGE`` (default: the worker image, built by
    :func:`actorwork.docker.images.ensure_worker_image` if missing) with this process's
    actorwork mounted read-only over the image's, so the peer runs the code under
    test. The check that needs a peer is not applicable when no Docker Engine answers.
    """

    scheme = "docker"

    def new_address(self) -> str:
        return f"docker://{self.tmp_path / f'd-{uuid.uuid4().hex[:8]}.sock'}"

    def listen_transport(self) -> Transport:
        # Only this process connects to its own listeners: a socket of its user's alone
        # needs no secret, where the default 0o666 one would be refused without one.
        return DockerTransport(mode=0o600)

    async def raw_stream(self, address: str) -> anyio.abc.ByteStream:
        parsed = parse_address(address)
        if parsed.location.startswith("/"):
            return await anyio.connect_unix(parsed.location)
        return await super().raw_stream(f"tcp://{parsed.location}")

    @asynccontextmanager
    async def echo_peer(self) -> AsyncIterator[tuple[PeerProcess, Connection]]:
        from actorwork.docker.engine import Engine
        from actorwork.docker.images import ensure_worker_image, source_mounts
        from actorwork.errors import EngineUnavailable

        engine = Engine()
        try:
            await engine.open()
        except EngineUnavailable as exc:
            raise NotApplicable(f"docker:// peers need a Docker Engine: {exc}") from exc
        async with engine:
            image = await ensure_worker_image(engine)
            inside, name = "/run/actorwork-echo", f"e-{uuid.uuid4().hex[:8]}.sock"
            secret = os.urandom(16)  # the container's socket is 0o666: strangers need keeping out
            self.tmp_path.chmod(0o777)  # the container's user writes its socket here
            source, environment = source_mounts()
            config = {
                "Image": image,
                "Cmd": ["python3", "-m", "actorwork.testing", "echo", f"docker://{inside}/{name}"],
                "Env": [
                    f"{key}={value}"
                    for key, value in {**environment, SECRET_VARIABLE: secret.hex()}.items()
                ],
                "Labels": {"org.actorwork.image.test": "1"},
                "HostConfig": {
                    "Binds": [f"{self.tmp_path}:{inside}", *source],
                    "NetworkMode": "none",
                },
            }
            container = await engine.run(f"actorwork-echo-{uuid.uuid4().hex[:8]}", config)
            try:
                pid = int((await engine.inspect(container))["State"]["Pid"])
                address = f"docker://{self.tmp_path / name}"
                async with await _connect_soon(address, secret) as connection:
                    yield _ContainerPeer(pid), connection
            finally:
                with anyio.CancelScope(shield=True):
                    await engine.remove(container)


HARNESSES: dict[str, type[TransportHarness]] = {
    "inproc": InProcHarness,
    "pipe": PipeHarness,
    "unix": UnixHarness,
    "tcp": TCPHarness,
    "docker": DockerHarness,
}


async def _connect_soon(address: str, secret: bytes | None = None) -> Connection:
    """Connect to a peer that is about to listen (its socket file may precede listen())."""
    bound, transport = resolve_transport(address)
    options = ConnectionOptions(name="client", secret=secret)
    with anyio.fail_after(60):
        while True:
            try:
                return await transport.connect(bound, options)
            except TransportError:
                await anyio.sleep(0.05)


def _pipe_fds() -> tuple[int, int]:
    a, b = multiprocessing.Pipe(duplex=True)
    fds = os.dup(a.fileno()), os.dup(b.fileno())
    a.close()
    b.close()
    return fds


@asynccontextmanager
async def _echo_session(process: anyio.abc.Process, address: str) -> AsyncIterator[Connection]:
    """A connection to the echo peer ``process`` at ``address``; the peer is gone after."""
    bound, transport = resolve_transport(address)
    connection = await transport.connect(bound, ConnectionOptions(name="client"))
    try:
        yield connection
    finally:
        await connection.aclose()
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _read_line(stream: anyio.abc.ByteReceiveStream) -> str:
    data = b""
    with anyio.fail_after(30):
        while not data.endswith(b"\n"):
            data += await stream.receive(1)
    return data.decode().strip()


async def _echo(connection: Connection) -> None:
    try:
        while True:
            await connection.send(await connection.receive())
    except TransportError:
        pass


async def _closed_by_peer(connection: Connection) -> bool:
    """True once the peer closed ``connection`` (bounded wait: a hang is a failure)."""
    with anyio.fail_after(10):
        try:
            while True:
                await connection.receive()
        except (EndOfStream, ConnectionBroken):
            return True


# --- the checks ------------------------------------------------------------------------


async def check_order_kept(harness: TransportHarness) -> None:
    """Frames on one connection arrive in the order sent, each intact."""
    options = ConnectionOptions(name="server")
    async with (
        harness.serving(_echo, options) as connect,
        await connect(ConnectionOptions(name="client")) as connection,
    ):
        sent = [i.to_bytes(4, "big") * (i % 7) for i in range(2000)]

        async def sender() -> None:
            for frame in sent:
                await connection.send(frame)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            received = [await connection.receive() for _ in sent]
        assert received == sent


async def check_many_connections(harness: TransportHarness) -> None:
    """Many concurrent connections each get their own frames back, none mixed up."""
    options = ConnectionOptions(name="server")
    async with harness.serving(_echo, options) as connect:
        results: dict[int, list[bytes]] = {}

        async def client(index: int) -> None:
            async with await connect(ConnectionOptions(name=f"client-{index}")) as connection:
                frames = [f"{index}:{n}".encode() for n in range(50)]
                for frame in frames:
                    await connection.send(frame)
                results[index] = [await connection.receive() for _ in frames]

        async with anyio.create_task_group() as tg:
            for index in range(20):
                tg.start_soon(client, index)
        for index in range(20):
            assert results[index] == [f"{index}:{n}".encode() for n in range(50)]


async def check_sizes_up_to_cap(harness: TransportHarness) -> None:
    """Frames from empty to exactly the cap pass; one byte over is refused before sending."""
    options = ConnectionOptions(name="server", max_frame_size=SMALL_CAP)
    async with harness.serving(_echo, options) as connect:
        client_options = ConnectionOptions(name="client", max_frame_size=SMALL_CAP)
        async with await connect(client_options) as connection:
            for size in (0, 1, 255, 4096, SMALL_CAP - 1, SMALL_CAP):
                frame = random.randbytes(size)
                await connection.send(frame)
                assert await connection.receive() == frame
            try:
                await connection.send(b"x" * (SMALL_CAP + 1))
            except FrameTooLarge:
                pass
            else:
                raise AssertionError("a frame over the cap was sent")
            await connection.send(b"still usable")
            assert await connection.receive() == b"still usable"


async def _count_until_error(connection: Connection) -> None:
    """Receive without ever sending, so only the receiving side's cap can end this."""
    try:
        while True:
            frame = await connection.receive()
            if frame == b"fine":
                await connection.send(frame)
    except TransportError:
        pass


async def check_over_cap_closes_receiver(harness: TransportHarness) -> None:
    """A peer that sends a frame over the receiver's cap gets that connection closed."""
    options = ConnectionOptions(name="server", max_frame_size=SMALL_CAP)
    async with harness.serving(_count_until_error, options) as connect:
        big = ConnectionOptions(name="client", max_frame_size=4 * SMALL_CAP)
        async with await connect(big) as victim, await connect(big) as bystander:
            await victim.send(b"y" * (SMALL_CAP + 1))
            assert await _closed_by_peer(victim)
            await bystander.send(b"fine")
            assert await bystander.receive() == b"fine"


def _hostile_payloads(cap: int) -> dict[str, bytes]:
    """Raw bytes a hostile peer might write after a valid handshake."""
    good = HEADER.pack(3) + b"\x93\x01\x02"
    return {
        "random bytes": random.Random(7).randbytes(5000),
        "truncated frame": HEADER.pack(100) + b"\x95" * 10,
        "2**63 length": HEADER.pack(2**63) + b"\x00" * 16,
        "length over cap": HEADER.pack(cap + 1) + b"\x00" * 16,
        "deep nesting": _framed(b"\x95" + b"\x91" * 100_000 + b"\x00"),
        "wrong schema": _framed(msgspec.msgpack.encode({"hello": "world"})),
        "envelope with an undecodable body": _framed(
            b"\x95\x00\x00"
            + msgspec.msgpack.encode("_system")
            + msgspec.msgpack.encode("")
            + b"\xc1"
        ),
        "incomplete msgpack": good,
    }


def _framed(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def _hostile_frames(cap: int) -> dict[str, bytes]:
    """Frames a hostile peer might send on a transport that is not a byte stream."""
    return {
        "random bytes": random.Random(7).randbytes(5000),
        "over cap": b"\x00" * (cap + 1),
        "deep nesting": b"\x95" + b"\x91" * 100_000 + b"\x00",
        "wrong schema": msgspec.msgpack.encode({"hello": "world"}),
        "not msgpack": b"\xc1\xc1\xc1",
    }


async def _assert_system_healthy(system: ActorSystem, harness: TransportHarness) -> None:
    """A fresh, well-behaved connection to ``system`` still gets answers."""
    async with ActorSystem("conformance-probe") as probe:
        if isinstance(harness, PipeHarness):
            stream = await harness.attach_raw(system)
            framed = FramedStream(stream, max_frame_size=system.options.max_frame_size)
            await client_handshake(framed, probe.options)
            from actorwork.transports._stream import StreamConnection

            link = probe.adopt(
                StreamConnection(framed, peer_name="server", peer_description="pipe")
            )
            from actorwork.runtime.ref import RemoteRef

            ref = RemoteRef(probe, "_system", link=link)
        else:
            assert system.address is not None
            ref = await probe.remote(system.address, "_system")
        assert await ref.ask(Ping(b"ok"), timeout=10) == Pong(b"ok")


async def check_hostile_input_closes_only_that_connection(harness: TransportHarness) -> None:
    """Malformed or hostile input closes only its own connection, with a logged reason."""
    async with harness.system(max_frame_size=SMALL_CAP) as system:
        cases = _hostile_payloads(SMALL_CAP) if harness.byte_stream else _hostile_frames(SMALL_CAP)
        for label, payload in cases.items():
            with capture_logs() as logs:
                closed = await _send_hostile(harness, system, payload)
            assert closed, f"{label}: connection was not closed"
            reasons = [
                e
                for e in logs
                if e["event"] in ("connection_closed", "link_closed")
                or e["event"] == "message_rejected"
            ]
            assert reasons or label == "truncated frame", f"{label}: no logged reason in {logs}"
            await _assert_system_healthy(system, harness)


async def _send_hostile(harness: TransportHarness, system: ActorSystem, payload: bytes) -> bool:
    options = ConnectionOptions(name="hostile", max_frame_size=4 * SMALL_CAP)
    if not harness.byte_stream:
        assert system.address is not None
        address, transport = resolve_transport(system.address)
        async with await transport.connect(address, options) as connection:
            await connection.send(payload)
            return await _closed_by_peer(connection)
    if isinstance(harness, PipeHarness):
        stream = await harness.attach_raw(system)
    else:
        assert system.address is not None
        stream = await harness.raw_stream(system.address)
    framed = FramedStream(stream, max_frame_size=options.max_frame_size)
    try:
        await client_handshake(framed, options)
        await stream.send(payload)
        if payload.startswith(HEADER.pack(100)):  # truncated: end the stream mid-frame
            assert isinstance(stream, anyio.abc.SocketStream)
            await stream.send_eof()
        with anyio.fail_after(10):
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return True
        return False
    finally:
        await framed.aclose()


async def check_peer_killed_detected(harness: TransportHarness) -> None:
    """A peer process killed with SIGKILL is noticed: receive ends instead of hanging."""
    if not harness.crosses_processes:
        raise NotApplicable(f"{harness.scheme}:// peers share this process")
    async with harness.echo_peer() as (process, connection):
        await connection.send(b"ping")
        assert await connection.receive() == b"ping"
        os.kill(process.pid, signal.SIGKILL)
        assert await _closed_by_peer(connection)


async def check_aclose_idempotent(harness: TransportHarness) -> None:
    """Closing twice is fine; using a closed connection raises a TransportError."""
    options = ConnectionOptions(name="server")
    async with harness.serving(_echo, options) as connect:
        connection = await connect(ConnectionOptions(name="client"))
        await connection.send(b"a")
        assert await connection.receive() == b"a"
        await connection.aclose()
        await connection.aclose()
        try:
            await connection.send(b"b")
        except TransportError:
            pass
        else:
            raise AssertionError("send on a closed connection did not raise")


async def check_auth(harness: TransportHarness) -> None:
    """With a shared secret: no key, a wrong key and a silent client are refused."""
    options = ConnectionOptions(name="server", secret=b"s3cret", handshake_timeout=1.0)
    served: list[str] = []

    async def handler(connection: Connection) -> None:
        served.append(connection.peer_name)
        await _echo(connection)

    async with harness.serving(handler, options) as connect:
        for label, secret in (("no key", None), ("wrong key", b"guess")):
            try:
                await connect(ConnectionOptions(name=label, secret=secret, handshake_timeout=5.0))
            except AuthenticationError:
                pass
            else:
                raise AssertionError(f"{label}: connection accepted")
        async with await connect(ConnectionOptions(name="right", secret=b"s3cret")) as good:
            await good.send(b"in")
            assert await good.receive() == b"in"
        assert served == ["right"], served


async def check_silent_client_refused(harness: TransportHarness) -> None:
    """A client that never completes the handshake is dropped at the deadline."""
    if not harness.byte_stream or isinstance(harness, PipeHarness):
        raise NotApplicable(f"{harness.scheme}:// has no listener a stranger can reach")
    async with harness.system(secret=b"s3cret", handshake_timeout=0.5) as system:
        assert system.address is not None
        stream = await harness.raw_stream(system.address)
        async with stream:
            with capture_logs() as logs:
                with anyio.fail_after(10):
                    try:
                        while await stream.receive():
                            pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                        pass
            assert any(e["event"] == "handshake_refused" for e in logs), logs


async def check_handshake_version_mismatch(harness: TransportHarness) -> None:
    """A peer speaking another protocol version is refused with a message saying so."""
    if not harness.byte_stream or isinstance(harness, PipeHarness):
        raise NotApplicable(f"{harness.scheme}:// has no listener a stranger can reach")
    from actorwork.transports import _handshake

    async with harness.system() as system:
        assert system.address is not None
        stream = await harness.raw_stream(system.address)
        framed = FramedStream(stream, max_frame_size=1024)
        async with framed.stream:
            hello = _handshake.Hello(_handshake.PROTOCOL_VERSION + 1, "future", b"n" * 32)
            await framed.send(msgspec.msgpack.encode(hello))
            reply = msgspec.msgpack.decode(await framed.receive(), type=_handshake.Refused)
            assert "protocol version" in reply.reason


async def check_forged_proof_refused(harness: TransportHarness) -> None:
    """A client that skips verifying the server and sends a made-up proof is refused."""
    if not harness.byte_stream or isinstance(harness, PipeHarness):
        raise NotApplicable(f"{harness.scheme}:// has no listener a stranger can reach")
    from actorwork.transports import _handshake

    async with harness.system(secret=b"s3cret") as system:
        assert system.address is not None
        stream = await harness.raw_stream(system.address)
        framed = FramedStream(stream, max_frame_size=1024)
        async with framed.stream:
            hello = _handshake.Hello(_handshake.PROTOCOL_VERSION, "forger", b"n" * 32)
            await framed.send(msgspec.msgpack.encode(hello))
            challenge = msgspec.msgpack.decode(await framed.receive(), type=_handshake.Challenge)
            assert challenge.auth
            await framed.send(msgspec.msgpack.encode(_handshake.Proof(b"\x00" * 32)))
            reply = msgspec.msgpack.decode(await framed.receive(), type=_handshake.Refused)
            assert "wrong shared secret" in reply.reason


CONFORMANCE_CHECKS: list[Callable[[TransportHarness], Awaitable[None]]] = [
    check_order_kept,
    check_many_connections,
    check_sizes_up_to_cap,
    check_over_cap_closes_receiver,
    check_hostile_input_closes_only_that_connection,
    check_peer_killed_detected,
    check_aclose_idempotent,
    check_auth,
    check_forged_proof_refused,
    check_silent_client_refused,
    check_handshake_version_mismatch,
]


# --- the echo peer process -------------------------------------------------------------


async def _serve_echo(address_text: str) -> None:
    address = parse_address(address_text)
    _, transport = resolve_transport(address)
    secret = os.environ.get(SECRET_VARIABLE)  # set for a peer that others could reach
    options = ConnectionOptions(name="echo", secret=bytes.fromhex(secret) if secret else None)
    listener = await transport.listen(address, options)
    async with anyio.create_task_group() as tg:
        await tg.start(listener.serve, _echo)
        sys.stdout.write(f"{listener.address}\n")
        sys.stdout.flush()


def main(argv: list[str]) -> None:
    """``python -m actorwork.testing echo ADDRESS``: serve an echo peer at ``ADDRESS``."""
    if len(argv) != 2 or argv[0] != "echo":
        raise SystemExit("usage: python -m actorwork.testing echo ADDRESS")
    anyio.run(_serve_echo, argv[1])
