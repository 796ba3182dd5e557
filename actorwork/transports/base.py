"""The transport interfaces: :class:`Transport`, :class:`Listener`, :class:`Connection`.

A transport turns an address into connections that carry *frames* (``bytes``) in
both directions. It knows how to connect, listen and perform the handshake
(protocol version, optional shared-secret authentication); it knows nothing about
messages, which only :mod:`actorwork.codec` turns frames into.

Contract shared by every transport, checked by :mod:`actorwork.testing`:

* frames sent on one connection arrive in order, each whole, or not at all;
* a frame over ``max_frame_size`` is refused (:class:`~actorwork.errors.FrameTooLarge`)
  and, on the receiving side, closes that connection;
* a connection is handed to the caller only after the handshake succeeded;
* ``aclose()`` is idempotent and never raises for an already broken connection.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from anyio.abc import AsyncResource, TaskStatus

from actorwork.addressing import Address
from actorwork.transports._framing import DEFAULT_MAX_FRAME_SIZE, HEADER

__all__ = [
    "DEFAULT_FRAME_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "Connection",
    "ConnectionHandler",
    "ConnectionOptions",
    "FrameSink",
    "Listener",
    "Transport",
]

#: Takes frames, in order, on behalf of a reader waiting in ``receive_many``: True if
#: it took them all, False to decline them all (``receive_many`` then returns them).
#: Runs synchronously wherever the frames arrive (a sender's task, a loop callback),
#: so it must not block, and it raises only for bugs.
FrameSink = Callable[[Sequence[bytes]], bool]

DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_FRAME_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 512


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """What both ends of every connection agree on, whatever the transport.

    ``name`` is this side's system name, sent in the handshake for diagnostics.
    ``secret`` enables the HMAC challenge; a listener with a secret refuses peers
    without it, and a client with a secret refuses a listener that cannot prove it.
    """

    name: str = "actorwork"
    secret: bytes | None = None
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    handshake_timeout: float = 5.0
    #: A listener closes an accepted connection that sends nothing for this long after
    #: the handshake (None: never), unless the runtime says the peer may be silent
    #: (:attr:`Connection.peer_may_be_silent`: it waits for our replies). A Pool
    #: heartbeats every few seconds and a client's long poll is 20 s, so 60 s leaves
    #: room for several missed beats.
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    #: A listener closes an accepted connection whose frame, once begun, is not whole
    #: this much later (None: never); 30 s lets a full 16 MiB frame through at 0.6 MB/s.
    frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT
    #: Bytes the connections of one listener may hold in their receive buffers, all
    #: together; a frame that would pass it waits until others finish. None: four
    #: frames of ``max_frame_size``.
    max_buffered: int | None = None
    #: Connections one listener holds at once, handshaking or not; more are closed at once.
    #: Under the common 1024 open files of a process, to leave room for everything else.
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if self.max_frame_size < 1024:
            raise ValueError(
                f"max_frame_size must be at least 1024 bytes, got {self.max_frame_size!r}"
            )
        if not self.handshake_timeout > 0:
            raise ValueError(f"handshake_timeout must be positive, got {self.handshake_timeout!r}")
        for key in ("idle_timeout", "frame_timeout"):
            value = getattr(self, key)
            if value is not None and not 0 < value < math.inf:
                raise ValueError(f"{key} must be positive and finite (or None), got {value!r}")
        if self.max_buffered is not None and self.max_buffered < self.max_frame_size + HEADER.size:
            raise ValueError(
                f"max_buffered must hold one whole frame (at least max_frame_size + "
                f"{HEADER.size} = {self.max_frame_size + HEADER.size}), got {self.max_buffered!r}"
            )
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections!r}")

    @property
    def buffer_limit(self) -> int:
        """``max_buffered``, or its default: four frames of ``max_frame_size``."""
        if self.max_buffered is not None:
            return self.max_buffered
        return 4 * (self.max_frame_size + HEADER.size)


class Connection(AsyncResource):
    """A handshaken, bidirectional channel of frames to one peer; ``async with`` closes it."""

    #: The peer's system name, as it announced itself in the handshake.
    peer_name: str = ""
    #: A human-readable description of the other end, for logs.
    peer_description: str = ""
    #: Set by whoever reads the connection: True while the peer may stay silent for
    #: longer than ``idle_timeout`` (it waits for our answer), so the listener's idle
    #: deadline does not close it. Called only when the deadline passes.
    peer_may_be_silent: Callable[[], bool] | None = None

    @abstractmethod
    async def send(self, frame: bytes) -> None:
        """Send one frame.

        Raises FrameTooLarge (nothing sent), ConnectionClosed after ``aclose()``,
        ConnectionBroken if the peer is gone.
        """

    async def send_many(self, frames: Sequence[bytes]) -> None:
        """Send several frames, in order; transports override this to write them at once."""
        for frame in frames:
            await self.send(frame)

    def send_nowait(self, frames: Sequence[bytes]) -> bool:
        """Send ``frames``, in order, if that needs no waiting; False if it would.

        False means nothing was sent and the caller should ``await send_many(frames)``
        instead, which also raises the proper error when the connection is closed or
        broken. Never raises for those itself; raises FrameTooLarge (nothing sent) like
        ``send``. The base class always returns False; transports that can take frames
        synchronously override it, which spares the caller a task switch per send.
        """
        return False

    @abstractmethod
    async def receive(self) -> bytes:
        """The next frame from the peer.

        Raises EndOfStream when the peer closed in an orderly way, ConnectionBroken when
        it vanished or cut a frame short, FrameTooLarge for a frame over the cap (the
        caller must then close the connection), ConnectionClosed after ``aclose()``.
        """

    async def receive_many(self, sink: FrameSink | None = None) -> list[bytes]:
        """Every complete frame already received, in order; waits for at least one.

        Raises as ``receive`` does, but only once the frames before the problem have
        been returned. Transports override this to hand out a whole buffer at once.
        While it waits with nothing buffered, a transport may offer arriving frames to
        ``sink`` instead, which spares waking the reader; frames the sink took are not
        returned, frames it declined are.
        """
        return [await self.receive()]

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection. Idempotent; never raises for a broken peer."""


ConnectionHandler = Callable[[Connection], Awaitable[None]]


class Listener(AsyncResource):
    """Accepts connections on one address and hands each, handshaken, to a handler.

    ``async with`` closes it (:meth:`aclose`).
    """

    #: The address peers connect to, with anything chosen at bind time filled in
    #: (for ``tcp://127.0.0.1:0``, the real port).
    address: str

    @abstractmethod
    async def serve(
        self, handler: ConnectionHandler, *, task_status: TaskStatus[None] = ...
    ) -> None:
        """Accept connections until closed or cancelled, calling ``handler`` for each.

        Each handler runs in its own task; when it returns, the connection is closed.
        A failed handshake is logged with its reason and never reaches the handler.
        ``task_status.started()`` is called once the listener accepts connections.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Stop accepting. Idempotent. Connections already handed out stay open."""


class Transport(ABC):
    """Connects to and listens on addresses of one scheme.

    Instances are cheap; settings that are not part of the address (an
    ``ssl.SSLContext``, say) are constructor arguments, so a configured instance can
    be passed wherever an address is accepted.
    """

    scheme: ClassVar[str]

    def check_address(self, address: Address) -> None:  # noqa: B027 - optional hook
        """Raise AddressError if ``address`` can never work with this transport.

        Called when configuration is loaded, so a typo fails at start-up, not at first use.
        """

    @abstractmethod
    async def connect(self, address: Address, options: ConnectionOptions) -> Connection:
        """Open a connection and complete the client side of the handshake."""

    @abstractmethod
    async def listen(self, address: Address, options: ConnectionOptions) -> Listener:
        """Bind ``address``; connections are accepted once :meth:`Listener.serve` runs."""
