"""A :class:`Link` is the runtime's side of one connection to another actor system.

It owns two tasks: the reader takes every frame the connection has buffered, decodes
the envelopes and routes them synchronously (to a local mailbox, or to the future of
a pending ask); the writer drains an outbox of encoded frames, sending everything
queued in one ``send_many`` so that many small messages cost one system call. While
the writer is idle a frame skips it and goes straight to the connection
(``send_nowait``), which saves a task switch per message and keeps the order, since
nothing is queued ahead of it. When either side ends, the link fails every pending ask with
:class:`~actorwork.errors.ActorStopped`, tells watchers of actors behind it that they
are :class:`~actorwork.messages.Terminated`, and leaves the system.

A peer whose host died or was cut off sends no FIN: the connection stays open and
silent, and an ask would wait out its whole timeout, which cannot tell a dead peer
from a slow answer. So a link this system opened watches the peer while it owes
answers: after half of ``liveness_timeout`` with nothing heard it sends the peer's
``_system`` actor a :class:`~actorwork.messages.Ping`, which a live system answers at
once however long the asks take; if the rest of the period passes in silence too, the
link is declared lost and its pending asks fail with
:class:`~actorwork.errors.ConnectionBroken`, so the asker can go elsewhere.

A peer that asked and waits for the answer may be silent for as long as the answer
takes: the link tells the transport so (``peer_may_be_silent``), and a listener's
idle deadline then spares the connection. Watches a peer placed on local actors
(``WatchActor``) belong to its link and are dropped with it, so peers that come and
go leave nothing behind.

A frame that is not an envelope closes the link (the peer is broken or hostile);
a well-formed envelope with a body that does not decode, or that its recipient does
not accept, fails only that message — an ask gets a FailureReply naming the problem.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from itertools import count
from typing import TYPE_CHECKING, Any

import anyio

from actorwork._log import get_logger
from actorwork.codec import Codec, Envelope
from actorwork.errors import (
    ActorNotFound,
    ActorStopped,
    ConnectionBroken,
    ConnectionClosed,
    EndOfStream,
    FrameTooLarge,
    MessageEncodeError,
    MessageRejected,
    ProtocolError,
    RemoteActorError,
    TransportError,
)
from actorwork.messages import FailureReply, Message, Ping, Terminated
from actorwork.runtime.ref import (
    ASK,
    FAILURE,
    REPLY,
    TELL,
    ActorRef,
    Deadlines,
    RemoteRef,
    WireReply,
    failure_error,
)

if TYPE_CHECKING:
    from actorwork.runtime.system import ActorSystem, _Cell
    from actorwork.transports.base import Connection

__all__ = ["Link"]

log = get_logger(__name__)

_HIGH_WATER = 1024  # frames queued before senders wait for the writer
_BACKLOG = 1024  # deliveries parked behind full mailboxes before the reader stops reading
_MAX_WATCHES = 4096  # watches one peer may hold on local actors at once
_PROBE = b"alive?"  # what the liveness probe carries


class Link:
    """One connection, seen from this system. Created and run by :class:`ActorSystem`."""

    def __init__(
        self, system: ActorSystem, connection: Connection, *, address: str | None, codec: Codec
    ) -> None:
        self.system = system
        self.connection = connection
        self.address = address
        self.codec = codec
        self.peer_name = connection.peer_name
        self.closed = False
        self.close_reason = ""
        self._max_frame_size = system.options.max_frame_size
        # Cached: asking asyncio for the running loop costs a getpid() per call.
        self._loop = asyncio.get_running_loop()
        #: When this link's pending asks time out.
        self.deadlines = Deadlines(self._loop)
        self._cells = system._cells  # noqa: SLF001 - the actors messages are routed to
        self._outbox: deque[bytes] = deque()
        #: True while the writer task is inside ``send_many``; frames sent meanwhile
        #: must queue behind the ones it is writing.
        self._writing = False
        self._writer_wake: asyncio.Future[None] | None = None
        self._drained: deque[asyncio.Future[None]] = deque()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._corr = count(1)
        self._senders: dict[str, RemoteRef] = {}
        self._watchers: dict[str, set[ActorRef]] = {}
        self._done = anyio.Event()
        # Deliveries waiting for room in a full mailbox, in arrival order. While any
        # wait, later ones queue behind them (per-connection order is kept), but the
        # reader goes on reading, so replies on this connection are never stuck.
        self._backlog: deque[tuple[Any, Any, Envelope]] = deque()
        self._backlog_wake: asyncio.Future[None] | None = None
        self._backlog_room: asyncio.Future[None] | None = None
        #: Asks from the peer that it still waits to hear about (their corr ids).
        self._owed: set[int] = set()
        #: Watches the peer holds on local actors: dropped when this link ends.
        self._held_watches: set[tuple[_Cell, ActorRef]] = set()
        connection.peer_may_be_silent = self._peer_waits
        #: Seconds the peer may stay silent while it owes answers (None: for ever);
        #: only links this system opened watch, its own peers come to it.
        self.liveness_timeout = system.liveness_timeout if address is not None else None
        #: Probes sent to the peer's ``_system`` actor, for diagnostics.
        self.probes = 0
        #: Set whenever frames arrive; the liveness watch clears it each half period.
        self._heard = False
        #: Woken by the first ask while none is pending, to start the watch.
        self._owing: asyncio.Future[None] | None = None
        #: The peer went silent while it owed answers: its pending asks are broken.
        self._lost = False

    def __repr__(self) -> str:
        return f"<Link to {self.peer_name!r} ({self.connection.peer_description})>"

    # --- sending -------------------------------------------------------------------

    def enqueue(self, frame: bytes) -> bool:
        """Send or queue a frame without waiting; False once senders should wait.

        False means the outbox is over its high-water mark: tells and asks then
        ``await drained()``, replies and control frames go on regardless, so that a
        slow peer never holds up an actor's answer.
        """
        if self.closed:
            raise ActorStopped(f"connection to {self.peer_name!r} is closed: {self.close_reason}")
        if len(frame) > self._max_frame_size:
            raise FrameTooLarge(
                f"message of {len(frame)} bytes exceeds max_frame_size={self._max_frame_size}"
            )
        outbox = self._outbox
        # Nothing queued and no write in flight: hand the frame over now instead of
        # waking the writer task, which would cost a loop iteration per message.
        if not outbox and not self._writing and self.connection.send_nowait((frame,)):
            return True
        outbox.append(frame)
        wake = self._writer_wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return len(outbox) <= _HIGH_WATER

    async def drained(self) -> None:
        """Wait until the outbox is back under its high-water mark, or the link closed."""
        while len(self._outbox) > _HIGH_WATER and not self.closed:
            waiter = self._loop.create_future()
            self._drained.append(waiter)
            await waiter

    def new_ask(self) -> tuple[int, asyncio.Future[Any]]:
        if self.closed:
            raise ActorStopped(f"connection to {self.peer_name!r} is closed: {self.close_reason}")
        corr = next(self._corr)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending[corr] = future
        owing = self._owing
        if owing is not None and not owing.done():
            owing.set_result(None)
        return corr, future

    def forget_ask(self, corr: int) -> None:
        self._pending.pop(corr, None)

    def _peer_waits(self) -> bool:
        """True while the peer waits for answers from here: its silence is ours."""
        return bool(self._owed or self._backlog)

    def reply(self, corr: int, result: Any) -> None:
        self._owed.discard(corr)
        if self.closed:
            return
        if result is not None and not isinstance(result, Message):
            self.reply_failure(
                corr, MessageEncodeError(f"reply of type {type(result).__name__} is not a Message")
            )
            return
        try:
            frame = self.codec.encode(REPLY, corr, "", "", result)
            self.enqueue(frame)
        except (MessageEncodeError, FrameTooLarge) as exc:
            self.reply_failure(corr, exc)

    def reply_failure(self, corr: int, error: Exception) -> None:
        self._owed.discard(corr)
        if self.closed:
            return
        raised_by_handler = isinstance(error, RemoteActorError)
        failure = FailureReply(
            error_type=getattr(error, "error_type", "") or type(error).__name__,
            message=str(error),
            actor=getattr(error, "actor", ""),
            raised_by_handler=raised_by_handler,
        )
        self.enqueue(self.codec.encode(FAILURE, corr, "", "", failure))

    def watch(self, name: str, watcher: ActorRef) -> None:
        self._watchers.setdefault(name, set()).add(watcher)

    def hold_watch(self, cell: _Cell, watcher: ActorRef) -> bool:
        """Record that ``watcher``, reached over this link, watches ``cell``.

        False if the link is closed (the watch would outlive its watcher) or the peer
        already holds ``_MAX_WATCHES`` watches; the caller then does not add it.
        """
        if self.closed:
            return False
        if len(self._held_watches) >= _MAX_WATCHES and (cell, watcher) not in self._held_watches:
            log.warning(
                "watch_refused",
                peer=self.peer_name,
                actor=cell.name,
                watcher=watcher.name,
                reason=f"the peer holds {_MAX_WATCHES} watches already",
            )
            return False
        self._held_watches.add((cell, watcher))
        return True

    # --- running -------------------------------------------------------------------

    async def run(self) -> None:
        """Read and write until the connection ends; then clean up. Never raises."""
        reason = "closed"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write_loop, tg.cancel_scope)
                tg.start_soon(self._drain_backlog)
                if self.liveness_timeout is not None:
                    tg.start_soon(self._watch_peer, tg.cancel_scope, self.liveness_timeout / 2)
                reason = await self._read_loop()
                tg.cancel_scope.cancel()
        except Exception as exc:  # a bug here must not take the system down
            reason = f"link failed: {exc!r}"
            log.exception("link_failed", peer=self.peer_name)
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown(reason)

    async def _read_loop(self) -> str:
        receive_many = self.connection.receive_many
        decode = self.codec.decode_envelope
        backlog = self._backlog
        while True:
            try:
                frames = await receive_many(self._route_now)
            except EndOfStream:
                return "peer closed the connection"
            except ConnectionClosed:
                return self.close_reason or "closed by this side"
            except FrameTooLarge as exc:
                log.warning("connection_closed", peer=self.peer_name, reason=str(exc))
                return str(exc)
            except TransportError as exc:
                return f"connection broken: {exc}"
            self._heard = True
            for frame in frames:
                try:
                    envelope = decode(frame)
                except ProtocolError as exc:
                    log.warning(
                        "connection_closed",
                        peer=self.peer_name,
                        peer_address=self.connection.peer_description,
                        reason=str(exc),
                    )
                    return str(exc)
                self._route(envelope)
                # Stop reading only when too many deliveries wait for full mailboxes.
                while len(backlog) >= _BACKLOG:
                    self._backlog_room = self._loop.create_future()
                    await self._backlog_room

    def _route_now(self, frames: Sequence[bytes]) -> bool:
        """The reader's FrameSink: route frames that arrive while the reader is idle.

        The transport calls this where the frames arrive, which saves waking the
        reader task, a loop iteration per message. It declines whatever needs the
        reader: a frame that is not an envelope (the reader closes the link), and
        any frame while deliveries wait for full mailboxes (the reader keeps order and
        stops reading when too many wait).
        """
        self._heard = True
        if self._backlog:
            return False
        decode = self.codec.decode_envelope
        try:
            envelopes = [decode(frame) for frame in frames]
        except ProtocolError:
            return False
        for envelope in envelopes:
            self._route(envelope)
        return True

    def _route(self, envelope: Envelope) -> None:
        kind = envelope.kind
        if kind is TELL or kind is ASK:
            self._deliver(envelope)
        else:
            self._complete(envelope)

    async def _write_loop(self, scope: anyio.CancelScope) -> None:
        outbox = self._outbox
        try:
            while True:
                while not outbox:
                    self._writer_wake = self._loop.create_future()
                    await self._writer_wake
                frames = list(outbox)
                outbox.clear()
                while self._drained:
                    waiter = self._drained.popleft()
                    if not waiter.done():
                        waiter.set_result(None)
                self._writing = True
                await self.connection.send_many(frames)
                self._writing = False
        except TransportError as exc:
            self.close_reason = self.close_reason or f"send failed: {exc}"
            scope.cancel()

    async def _watch_peer(self, scope: anyio.CancelScope, half: float) -> None:
        """Declare the peer lost when it owes answers and stays silent for two halves
        of ``liveness_timeout``, probed after the first (see the module docstring)."""
        probed = False
        while True:
            if not self._pending:
                self._owing = self._loop.create_future()
                await self._owing
                self._owing = None
                self._heard = probed = False
            await anyio.sleep(half)
            if self._heard or not self._pending:
                self._heard = probed = False
            elif not probed:
                probed = True
                self.probes += 1
                self.enqueue(self.codec.encode(ASK, next(self._corr), "_system", "", Ping(_PROBE)))
            else:
                self._lost = True
                self.close_reason = self.close_reason or (
                    f"nothing heard within liveness_timeout={self.liveness_timeout}s "
                    "while answers were owed (a probe went unanswered)"
                )
                log.warning("peer_lost", peer=self.peer_name, reason=self.close_reason)
                scope.cancel()
                return

    def _deliver(self, envelope: Envelope) -> None:
        ask = envelope.kind is ASK
        cell = self._cells.get(envelope.recipient)
        if cell is None:
            self._reject(
                envelope,
                ActorNotFound(
                    f"no actor named {envelope.recipient!r} in system {self.system.name!r}"
                ),
            )
            return
        try:
            body = self.codec.decode_body(envelope.body)
        except ProtocolError as exc:
            self._reject(envelope, MessageRejected(f"message for {envelope.recipient!r}: {exc}"))
            return
        if body is None or not isinstance(body, cell.accepts):
            self._reject(envelope, MessageRejected(cell.rejection(body)))
            return
        if self._watchers and isinstance(body, Terminated) and body.name in self._watchers:
            # The peer reported the stop itself: the end of this link must not repeat it.
            self._watchers[body.name].discard(cell.ref)
        sender = self._sender_ref(envelope.sender) if envelope.sender else None
        item = (body, sender, WireReply(self, envelope.corr) if ask else None)
        if ask:
            self._owed.add(envelope.corr)
        backlog = self._backlog
        if not backlog:
            try:
                if cell.mailbox.put_nowait(item):
                    return
            except ActorStopped as exc:
                self._reject(envelope, exc)
                return
        backlog.append((cell, item, envelope))
        wake = self._backlog_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _drain_backlog(self) -> None:
        backlog = self._backlog
        while True:
            while not backlog:
                self._backlog_wake = self._loop.create_future()
                await self._backlog_wake
            cell, item, envelope = backlog[0]
            mailbox = cell.mailbox
            try:
                if not mailbox.put_nowait(item):
                    await mailbox.put(item)
            except ActorStopped as exc:
                self._reject(envelope, exc)
            backlog.popleft()
            room = self._backlog_room
            if room is not None and not room.done():
                room.set_result(None)

    def _reject(self, envelope: Envelope, error: Exception) -> None:
        if isinstance(error, ActorStopped):
            # The peer sent it before it could know the actor stopped (an event batch to
            # a subscriber that just left): an expected race, not a fault of either side.
            log.debug(
                "message_dropped",
                peer=self.peer_name,
                recipient=envelope.recipient,
                reason=str(error),
            )
        else:
            log.warning(
                "message_rejected",
                peer=self.peer_name,
                recipient=envelope.recipient,
                reason=str(error),
            )
        if envelope.kind is ASK:
            self.reply_failure(envelope.corr, error)

    def _sender_ref(self, name: str) -> RemoteRef:
        ref = self._senders.get(name)
        if ref is None:
            if len(self._senders) > 4096:
                self._senders.clear()
            ref = self._senders[name] = RemoteRef(self.system, name, link=self)
        return ref

    def _complete(self, envelope: Envelope) -> None:
        future = self._pending.pop(envelope.corr, None)
        if future is None or future.done():
            return  # the asker timed out meanwhile
        try:
            body = self.codec.decode_body(envelope.body)
        except ProtocolError as exc:
            future.set_exception(exc)
            return
        if envelope.kind is FAILURE and isinstance(body, FailureReply):
            future.set_exception(failure_error(body))
        else:
            future.set_result(body)

    async def aclose(self, reason: str = "closed by this side") -> None:
        """Close the connection; :meth:`run` then cleans up. Idempotent."""
        if not self.close_reason:
            self.close_reason = reason
        await self.connection.aclose()
        await self._done.wait()

    async def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = self.close_reason or reason
        await self.connection.aclose()
        # A silent peer may still be running: whether it acted on an ask is unknown.
        error = ConnectionBroken if self._lost else ActorStopped
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    error(
                        f"connection to {self.peer_name!r} lost before the reply: "
                        f"{self.close_reason}"
                    )
                )
        self._pending.clear()
        for waiter in self._drained:
            if not waiter.done():
                waiter.set_result(None)
        for _cell, (_body, _sender, reply), _envelope in self._backlog:
            if reply is not None:
                reply.fail(ActorStopped("connection closed before the message was delivered"))
        self._backlog.clear()
        self._owed.clear()
        for cell, watcher in self._held_watches:
            cell.watchers.discard(watcher)
        self._held_watches.clear()
        self.system._forget_link(self)  # noqa: SLF001
        log.debug("link_closed", peer=self.peer_name, reason=self.close_reason)
        for name, watchers in self._watchers.items():
            for watcher in watchers:
                await self.system._notify(watcher, Terminated(name, self.close_reason))  # noqa: SLF001
        self._done.set()
