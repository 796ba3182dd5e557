"""Length-prefixed frames over a byte stream: the only place that knows the wire layout.

A frame is an 8-byte big-endian unsigned length followed by that many bytes. The
length is checked against the cap *before* any buffer for the body is grown, so a
hostile peer announcing 2**63 bytes costs us eight bytes of memory and a closed
connection. Reads pull whole chunks from the stream and hand out every complete frame
already buffered without touching the stream again, which is what makes small
messages cheap; writes of several frames go out as one ``send``.

Every byte-stream transport (unix, tcp, pipe, docker) uses these frames;
:class:`FramedStream` frames an anyio stream (TLS), ``_socket`` a raw socket, and
errors of the underlying stream are translated here into actorwork's tree.

A listener bounds what its peers can hold (F23): a :class:`BufferBudget` caps the
bytes all its connections buffer together, and each connection's :class:`Intake`
charges it and decides, as a pure function of the time, when a peer has been idle or
has kept a frame unfinished for too long. The shells (``FramedStream``, the socket
protocol) only read the clock, wait and close.
"""

from __future__ import annotations

import ssl
import struct
from collections import deque
from collections.abc import Callable, Sequence

import anyio
import anyio.abc

from actorwork._log import get_logger
from actorwork.errors import ConnectionBroken, ConnectionClosed, EndOfStream, FrameTooLarge

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER",
    "BufferBudget",
    "FramedStream",
    "Intake",
    "encode_frame",
    "scan_frames",
]

log = get_logger(__name__)

HEADER = struct.Struct(">Q")
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
_CHUNK = 256 * 1024


def encode_frame(payload: bytes) -> bytes:
    """One frame: header and payload."""
    return HEADER.pack(len(payload)) + payload


def scan_frames(buffer: bytearray, scan: int, cap: int) -> tuple[int, int]:
    """Step over the whole frames in ``buffer`` from offset ``scan``.

    Returns where the first unfinished frame starts (``len(buffer)`` if none) and
    where it will end: the end its header announces, or ``len(buffer)`` while its
    header is incomplete or over ``cap`` (the reader refuses that one).
    """
    size = len(buffer)
    while size - scan >= HEADER.size:
        (length,) = HEADER.unpack_from(buffer, scan)
        if length > cap:
            break
        end = scan + HEADER.size + length
        if end > size:
            return scan, end
        scan = end
    return scan, size


class BufferBudget:
    """The bytes that the connections of one listener may buffer, together.

    A connection charges what it holds plus the rest of a frame whose header came in,
    so a peer that announces a large frame takes room for all of it before sending it.
    When that would pass ``limit`` the connection stops reading and waits: a retry
    callback is called, in order, whenever room is given back, and returns True once
    it took the room it needed. Bytes already received are always counted, so
    ``used`` passes ``limit`` by at most what waiting connections had read.
    """

    __slots__ = ("_waiters", "limit", "used")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a buffer budget needs a positive limit, got {limit!r}")
        self.limit = limit
        #: Bytes charged by every connection together; never negative.
        self.used = 0
        self._waiters: deque[Callable[[], bool]] = deque()

    def reserve(self, held: int, wanted: int) -> bool:
        """Move a charge from ``held`` to ``wanted`` bytes if that fits; a decrease always does."""
        grow = wanted - held
        if grow > 0 and self.used + grow > self.limit:
            return False
        self.used += grow
        if grow < 0:
            self._wake()
        return True

    def force(self, held: int, wanted: int) -> None:
        """Move a charge whatever the limit: bytes that are in memory already."""
        self.used += wanted - held
        if wanted < held:
            self._wake()

    def wait(self, retry: Callable[[], bool]) -> None:
        """Call ``retry`` whenever room is given back, until it returns True."""
        self._waiters.append(retry)

    def cancel(self, retry: Callable[[], bool]) -> None:
        """Stop calling ``retry`` (it may already have been dropped)."""
        try:
            self._waiters.remove(retry)
        except ValueError:
            pass

    def _wake(self) -> None:
        for retry in list(self._waiters):
            if self.used >= self.limit:
                return
            if retry():
                self.cancel(retry)

    def __repr__(self) -> str:
        return f"<BufferBudget {self.used}/{self.limit} bytes, {len(self._waiters)} waiting>"


class Intake:
    """One accepted connection's share of its listener's limits: charge and deadlines.

    Pure bookkeeping: the shell passes its buffer, the offset of the first byte not yet
    handed out and the time, and asks :meth:`overdue` whether the peer must be dropped.
    Time the shell spends not reading (its reader is busy, or the budget is full) is
    bracketed by :meth:`pause` and :meth:`resume` and counts against nobody.

    Invariants: ``pos <= scan <= len(buffer)``; ``charge`` is what this connection has
    charged to ``budget`` (0 once released); ``frame_since`` is None exactly when the
    buffer ends on a frame boundary.
    """

    __slots__ = (
        "budget",
        "cap",
        "charge",
        "frame_since",
        "frame_timeout",
        "idle_timeout",
        "last",
        "need",
        "paused_at",
        "scan",
    )

    def __init__(
        self,
        budget: BufferBudget | None,
        *,
        cap: int,
        idle_timeout: float | None,
        frame_timeout: float | None,
        now: float,
    ) -> None:
        self.budget = budget
        self.cap = cap
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.charge = 0
        self.scan = 0  # where the first unfinished frame starts
        self.need = 0  # where it ends, as far as its header tells
        self.frame_since: float | None = None
        self.last = now  # when the peer last sent anything
        self.paused_at: float | None = None

    def received(self, buffer: bytearray, pos: int, now: float) -> bool:
        """Account for bytes just added; False if the connection must wait for room.

        After False the shell stops reading and registers :meth:`retry` with the budget.
        """
        scan, need = scan_frames(buffer, self.scan, self.cap)
        size = len(buffer)
        if scan == size:
            self.frame_since = None
        elif scan != self.scan or self.frame_since is None:
            self.frame_since = now  # a new frame began
        self.scan, self.need, self.last = scan, need, now
        wanted = max(size, need) - pos
        if wanted <= self.charge or self.budget is None:
            return True
        if self.budget.reserve(self.charge, wanted):
            self.charge = wanted
            return True
        held = max(self.charge, size - pos)
        self.budget.force(self.charge, held)
        self.charge = held
        return False

    def retry(self, buffer: bytearray, pos: int) -> bool:
        """Take the room the unfinished frame needs, if there is now enough."""
        wanted = max(len(buffer), self.need) - pos
        if self.budget is None or self.budget.reserve(self.charge, wanted):
            self.charge = max(self.charge, wanted)
            return True
        return False

    def consumed(self, buffer: bytearray, pos: int, removed: int = 0) -> None:
        """Frames were handed out up to ``pos``, and ``removed`` bytes cut from the front."""
        self.scan -= removed
        self.need -= removed
        if self.budget is None:
            return
        wanted = max(len(buffer), self.need) - pos
        if wanted < self.charge:
            held, self.charge = self.charge, wanted
            self.budget.reserve(held, wanted)

    def cut(self, buffer: bytearray) -> int:
        """The peer is gone: drop its unfinished frame; the bytes dropped."""
        dropped = len(buffer) - self.scan
        if dropped:
            del buffer[self.scan :]
        self.need = self.scan
        self.frame_since = None
        return dropped

    def release(self) -> None:
        """Give back everything this connection charged. Idempotent."""
        if self.budget is not None and self.charge:
            held, self.charge = self.charge, 0
            self.budget.reserve(held, 0)

    def pause(self, now: float) -> None:
        """The shell stopped reading: from now on the peer is not to blame."""
        if self.paused_at is None:
            self.paused_at = now

    def resume(self, now: float) -> None:
        """The shell reads again: deadlines move on by the time it did not."""
        if self.paused_at is None:
            return
        gap, self.paused_at = now - self.paused_at, None
        self.last += gap
        if self.frame_since is not None:
            self.frame_since += gap

    def overdue(
        self, now: float, peer_may_be_silent: Callable[[], bool] | None
    ) -> tuple[str | None, float]:
        """Why the peer must be dropped now (None if it need not), and when to look again."""
        if self.paused_at is not None:  # we are not reading: nothing is the peer's fault
            return None, now + min(self.idle_timeout or 1.0, self.frame_timeout or 1.0)
        due = float("inf")
        if self.frame_timeout is not None and self.frame_since is not None:
            due = self.frame_since + self.frame_timeout
            if now >= due:
                return (
                    f"frame not finished within frame_timeout={self.frame_timeout}s "
                    f"({self.need - self.scan} bytes announced)",
                    due,
                )
        if self.idle_timeout is not None:
            idle_due = self.last + self.idle_timeout
            if now >= idle_due:
                if peer_may_be_silent is None or not peer_may_be_silent():
                    return f"nothing received within idle_timeout={self.idle_timeout}s", idle_due
                self.last = now  # it waits for us; look again a whole period later
                idle_due = now + self.idle_timeout
            due = min(due, idle_due)
        return None, due


class FramedStream:
    """Frames over an anyio byte stream.

    Not safe for concurrent ``receive`` calls, nor concurrent ``send`` calls; one
    reader task and one writer task at a time, which is how the runtime uses it.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_pos",
        "description",
        "intake",
        "max_frame_size",
        "peer_may_be_silent",
        "stream",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        *,
        max_frame_size: int,
        intake: Intake | None = None,
        description: str = "",
    ) -> None:
        self.stream = stream
        self.max_frame_size = max_frame_size
        #: Set on the accepting side: the listener's limits for this connection.
        self.intake = intake
        #: See :attr:`~actorwork.transports.base.Connection.peer_may_be_silent`.
        self.peer_may_be_silent: Callable[[], bool] | None = None
        self.description = description
        self._buffer = bytearray()
        self._pos = 0
        self._closed = False

    async def send(self, payload: bytes) -> None:
        """Send one frame. Raises FrameTooLarge before writing anything if over the cap."""
        await self.send_many((payload,))

    async def send_many(self, payloads: Sequence[bytes]) -> None:
        """Send several frames in one write. All-or-nothing with respect to the cap."""
        parts: list[bytes] = []
        for payload in payloads:
            if len(payload) > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {len(payload)} bytes exceeds max_frame_size={self.max_frame_size}"
                )
            parts.append(HEADER.pack(len(payload)))
            parts.append(payload)
        await self._send_raw(b"".join(parts))

    async def _send_raw(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosed("connection is closed")
        try:
            await self.stream.send(data)
        except anyio.ClosedResourceError as exc:
            raise ConnectionClosed("connection is closed") from exc
        except (anyio.BrokenResourceError, OSError, ssl.SSLError) as exc:
            raise ConnectionBroken(f"send failed: {exc!r}") from exc

    async def receive(self, max_frame_size: int | None = None) -> bytes:
        """The next frame's payload.

        Raises EndOfStream if the peer closed between frames, ConnectionBroken if it
        closed mid-frame or the stream failed, FrameTooLarge for an oversized header.
        """
        cap = self.max_frame_size if max_frame_size is None else max_frame_size
        while (payload := self._pop_frame(cap)) is None:
            await self._fill(len(self._buffer) - self._pos)
        return payload

    async def receive_many(self) -> list[bytes]:
        """The next frame and every complete frame buffered behind it; errors as ``receive``."""
        frames = [await self.receive()]
        try:
            while (payload := self._pop_frame(self.max_frame_size)) is not None:
                frames.append(payload)
        except FrameTooLarge:
            pass  # raised again by the next call, once these frames are handled
        return frames

    def _pop_frame(self, cap: int) -> bytes | None:
        """The next complete frame in the buffer, or None; FrameTooLarge if over ``cap``."""
        buffer, pos = self._buffer, self._pos
        if len(buffer) - pos < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(buffer, pos)
        if length > cap:
            raise FrameTooLarge(f"peer announced a frame of {length} bytes; cap is {cap}")
        end = pos + HEADER.size + length
        if len(buffer) < end:
            return None
        payload = bytes(buffer[pos + HEADER.size : end])
        removed = 0
        if end == len(buffer):
            removed = end
            buffer.clear()
            self._pos = 0
        else:
            self._pos = end
        if self.intake is not None:
            self.intake.consumed(buffer, self._pos, removed)
        return payload

    async def _fill(self, available: int) -> None:
        removed = 0
        if self._pos and self._pos > len(self._buffer) // 2:
            removed = self._pos
            del self._buffer[: self._pos]
            self._pos = 0
        if self._closed:
            raise ConnectionClosed("connection is closed")
        intake = self.intake
        if intake is None:
            self._buffer += await self._receive_chunk(available)
            return
        intake.consumed(self._buffer, self._pos, removed)
        clock = anyio.current_time
        intake.resume(clock())
        try:
            chunk = await self._receive_within_deadlines(intake, available)
            self._buffer += chunk
            if not intake.received(self._buffer, self._pos, clock()):
                await self._wait_for_room(intake)
        finally:
            intake.pause(clock())

    async def _receive_within_deadlines(self, intake: Intake, available: int) -> bytes:
        while True:
            now = anyio.current_time()
            reason, due = intake.overdue(now, self.peer_may_be_silent)
            if reason is not None:
                log.warning("connection_expired", peer=self.description, reason=reason)
                raise ConnectionBroken(reason)
            with anyio.move_on_after(due - now):
                return await self._receive_chunk(available)

    async def _wait_for_room(self, intake: Intake) -> None:
        """Stop reading until the budget has room for the frame begun (deadlines paused)."""
        assert intake.budget is not None
        intake.pause(anyio.current_time())
        room = anyio.Event()

        def retry() -> bool:
            if intake.retry(self._buffer, self._pos):
                room.set()
                return True
            return False

        intake.budget.wait(retry)
        try:
            await room.wait()
        finally:
            intake.budget.cancel(retry)

    async def _receive_chunk(self, available: int) -> bytes:
        try:
            return await self.stream.receive(_CHUNK)
        except anyio.EndOfStream:
            if available:
                raise ConnectionBroken(
                    f"peer closed the connection in the middle of a frame ({available} bytes "
                    "buffered)"
                ) from None
            raise EndOfStream("peer closed the connection") from None
        except anyio.ClosedResourceError as exc:
            raise ConnectionClosed("connection is closed") from exc
        except (anyio.BrokenResourceError, OSError, ssl.SSLError) as exc:
            raise ConnectionBroken(f"receive failed: {exc!r}") from exc

    async def aclose(self) -> None:
        """Close the stream. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()  # a half-frame's memory goes back at once
        self._pos = 0
        if self.intake is not None:
            self.intake.release()
        try:
            await self.stream.aclose()
        except (anyio.BrokenResourceError, OSError, ssl.SSLError):
            pass
