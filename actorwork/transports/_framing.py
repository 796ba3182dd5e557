"""Length-prefixed frames over a byte stream: the only place that knows the wire layout.

A frame is an 8-byte big-endian unsigned length followed by that many bytes. The
length is checked against the cap *before* any buffer for the body is grown, so a
hostile peer announcing 2**63 bytes costs us eight bytes of memory and a closed
connection. Reads pull whole chunks from the stream and hand out every complete frame
already buffered without touching the stream again, which is what makes small
messages cheap; writes of several frames go out as one ``send``.

Every byte-stream transport (unix, tcp, pipe, docker) uses :class:`FramedStream`;
errors of the underlying stream are translated here into actorwork's tree.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Sequence

import anyio
import anyio.abc

from actorwork.errors import ConnectionBroken, ConnectionClosed, EndOfStream, FrameTooLarge

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "HEADER", "FramedStream", "encode_frame"]

HEADER = struct.Struct(">Q")
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
_CHUNK = 256 * 1024


def encode_frame(payload: bytes) -> bytes:
    """One frame: header and payload."""
    return HEADER.pack(len(payload)) + payload


class FramedStream:
    """Frames over an anyio byte stream.

    Not safe for concurrent ``receive`` calls, nor concurrent ``send`` calls; one
    reader task and one writer task at a time, which is how the runtime uses it.
    """

    __slots__ = ("_buffer", "_closed", "_pos", "max_frame_size", "stream")

    def __init__(self, stream: anyio.abc.ByteStream, *, max_frame_size: int) -> None:
        self.stream = stream
        self.max_frame_size = max_frame_size
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
        if end == len(buffer):
            buffer.clear()
            self._pos = 0
        else:
            self._pos = end
        return payload

    async def _fill(self, available: int) -> None:
        if self._pos and self._pos > len(self._buffer) // 2:
            del self._buffer[: self._pos]
            self._pos = 0
        if self._closed:
            raise ConnectionClosed("connection is closed")
        try:
            chunk = await self.stream.receive(_CHUNK)
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
        self._buffer += chunk

    async def aclose(self) -> None:
        """Close the stream. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.stream.aclose()
        except (anyio.BrokenResourceError, OSError, ssl.SSLError):
            pass
