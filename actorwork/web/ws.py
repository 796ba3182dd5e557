"""The event stream pushed over a WebSocket: ``/ws`` on the API app.

One socket carries any number of subscriptions, each one :meth:`Client.events`
subscription at the Scheduler. Frames are JSON text; a client sends::

    {"op": "subscribe", "sub": "<its own id>", "filter": {"job_id": ..., "work": ...,
        "queue": ..., "workflow": ..., "status": [...], "kinds": [...]}}
                                                             every filter field optional
    {"op": "unsubscribe", "sub": "<id>"}
    {"op": "ping"}

and gets::

    {"op": "subscribed", "sub": "<id>"}                      before any of its events
    {"op": "events", "sub": "<id>", "events": [<event>, ...]}
    {"op": "lost", "sub": "<id>", "count": n}                resync from a snapshot
    {"op": "error", "sub": "<id>" | null, "error": "...", "field": "...", "value": ...}
    {"op": "pong"}

Each event is ``msgspec.to_builtins`` of an :mod:`actorwork.events` type. What is
ready is sent together, at most one round of frames per :data:`COALESCE` seconds
while busy; an event that comes alone goes out at once.

The Scheduler never waits for a socket: each subscription holds at most
:data:`BUFFER` events for it, and all of a socket's subscriptions together at most
:data:`BUFFER_BYTES`. A socket that does not read blocks only its own sender; past
the buffer the waiting events are dropped and counted, and the socket
is told ``lost`` before the events that came after. A bad frame is answered with
``error`` naming the field and value, and the socket stays open; a client that sends
without reading (its answers pile up past :data:`MAX_ANSWERS`) is closed (1008), and a
frame past the server's own limit (uvicorn's ``ws_max_size``, 16 MiB) closes the
socket (1009) before it is read.
Who may open a socket is decided on the upgrade (:mod:`actorwork.web.security`).
"""

from __future__ import annotations

from collections import deque
from typing import Any, get_args

import anyio
import anyio.abc
import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from actorwork._log import get_logger
from actorwork.client import Client
from actorwork.errors import ActorStopped, ActorworkError
from actorwork.events import EVENT_KINDS, Event, EventsLost
from actorwork.messages import MAX_NAME, JobStatus

__all__ = [
    "BUFFER",
    "BUFFER_BYTES",
    "COALESCE",
    "FRAME_BYTES",
    "MAX_ANSWERS",
    "MAX_FRAME",
    "MAX_SUBSCRIPTIONS",
    "FrameError",
    "SocketFilter",
    "parse_filter",
    "serve_socket",
]

log = get_logger(__name__)

#: Events one subscription holds for a socket that has not taken them yet.
BUFFER = 1000
#: Seconds between two rounds of frames while events keep coming.
COALESCE = 0.05
#: The longest frame a client may send, in characters.
MAX_FRAME = 16 * 1024
#: Subscriptions one socket may hold at once.
MAX_SUBSCRIPTIONS = 64
#: Answers (subscribed, error, pong) waiting for a socket that does not read.
MAX_ANSWERS = 256
#: Bytes of events all the subscriptions of one socket hold for it, together.
BUFFER_BYTES = 8 * 1024 * 1024
#: Seconds to wait for a socket to take the close frame the server sends.
CLOSE_TIMEOUT = 5.0
#: Events in one ``events`` frame, and its size in bytes unless one event is larger.
MAX_BATCH = 500
FRAME_BYTES = 256 * 1024

_STATUSES = frozenset(get_args(JobStatus))
_KINDS = frozenset(EVENT_KINDS.values())
_FILTER_NAMES = ("job_id", "work", "queue", "workflow")
_FILTER_LISTS = {"status": _STATUSES, "kinds": _KINDS}


class FrameError(ActorworkError):
    """A frame the socket refuses: what is wrong, and the field and value at fault."""

    def __init__(self, error: str, field: str | None = None, value: Any = None) -> None:
        super().__init__(error)
        self.error, self.field, self.value = error, field, value
        #: The subscription the frame named, if it named one.
        self.sub: str | None = None


class SocketFilter(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription's filter: the Scheduler's (``client.events`` keywords) and the
    statuses, when more than one, that this socket checks itself."""

    events: dict[str, Any]
    statuses: frozenset[str] | None = None

    def passes(self, event: Event) -> bool:
        """Whether ``event`` passes the part of the filter checked here."""
        return self.statuses is None or event.status in self.statuses


def _shown(value: Any) -> Any:
    """``value`` as an error frame shows it: short, and JSON whatever it was."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text[:80]


def parse_filter(raw: Any) -> SocketFilter:
    """The :class:`SocketFilter` of a subscribe frame's ``filter``; FrameError names
    the field (``filter.kinds``) and the value at fault. Pure."""
    if raw is None:
        return SocketFilter(events={})
    if not isinstance(raw, dict):
        raise FrameError("filter must be an object", "filter", _shown(raw))
    unknown = sorted(set(raw) - {*_FILTER_NAMES, *_FILTER_LISTS})
    if unknown:
        known = ", ".join((*_FILTER_NAMES, *_FILTER_LISTS))
        raise FrameError(
            f"unknown filter field {unknown[0]!r} (known: {known})", "filter", unknown[0]
        )
    events: dict[str, Any] = {}
    for name in _FILTER_NAMES:
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
            raise FrameError(
                f"filter.{name} must be a string of 1 to {MAX_NAME} characters or null",
                f"filter.{name}",
                _shown(value),
            )
        events[name] = value
    lists = {name: _names(raw.get(name), name, known) for name, known in _FILTER_LISTS.items()}
    if lists["kinds"] is not None:
        events["kinds"] = sorted(lists["kinds"])
    statuses = lists["status"]
    if statuses is not None and len(statuses) == 1:
        events["status"] = next(iter(statuses))
        statuses = None
    return SocketFilter(events=events, statuses=statuses)


def _names(value: Any, name: str, known: frozenset[str]) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > len(known):
        raise FrameError(
            f"filter.{name} must be a list of 1 to {len(known)} names or null",
            f"filter.{name}",
            _shown(value),
        )
    for item in value:
        if item not in known:
            raise FrameError(
                f"unknown {name} {_shown(item)!r} in filter.{name} (known: "
                f"{', '.join(sorted(known))})",
                f"filter.{name}",
                _shown(item),
            )
    return frozenset(value)


class _Held:
    """The bytes of events a socket's subscriptions hold, together."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0


class _Subscription:
    """One subscription's events waiting for the socket, encoded: at most
    :data:`BUFFER` of them, within the socket's :data:`BUFFER_BYTES` (``held``)."""

    def __init__(self, sub: str, filter: SocketFilter, held: _Held) -> None:
        self.sub = sub
        self.filter = filter
        self.held = held
        self.pending: deque[bytes] = deque()
        #: Bytes in ``pending``; counted in ``held`` as well.
        self.size = 0
        self.lost = 0
        self.scope = anyio.CancelScope()
        self.closed = False

    def close(self) -> None:
        """Stop following, and give back what was held to the socket's count."""
        self.closed = True
        self.scope.cancel()
        self.drop(0)

    def add(self, event: Event) -> None:
        if self.closed:  # an event already on its way when the subscription ended
            return
        if type(event) is EventsLost:  # lost at the Scheduler or in the client
            self.drop(event.count)
        elif self.filter.passes(event):
            encoded = msgspec.json.encode(event)
            if len(self.pending) >= BUFFER or self.held.size + len(encoded) > BUFFER_BYTES:
                self.drop(1)
            else:
                self.pending.append(encoded)
                self.size += len(encoded)
                self.held.size += len(encoded)

    def drop(self, count: int) -> None:
        """Count ``count`` events lost, and the waiting ones with them: the client
        resyncs from a snapshot, so the events it gets are those after the loss."""
        self.lost += count + len(self.pending)
        self.pending.clear()
        self.forget()

    def forget(self) -> None:
        """Take what ``pending`` held off the socket's count (it was sent or dropped)."""
        self.held.size -= self.size
        self.size = 0

    def frames(self) -> list[bytes]:
        """The frames that carry what waits, each at most :data:`MAX_BATCH` events and
        (unless one event is larger) :data:`FRAME_BYTES`; and forget it."""
        frames: list[bytes] = []
        if self.lost:
            frames.append(msgspec.json.encode({"op": "lost", "sub": self.sub, "count": self.lost}))
            self.lost = 0
        head = b'{"op":"events","sub":' + msgspec.json.encode(self.sub) + b',"events":['
        while self.pending:
            batch = [self.pending.popleft()]
            size = len(batch[0])
            while self.pending and len(batch) < MAX_BATCH:
                size += len(self.pending[0]) + 1
                if size > FRAME_BYTES:
                    break
                batch.append(self.pending.popleft())
            frames.append(head + b",".join(batch) + b"]}")
        self.forget()
        return frames


class _Session:
    """One socket: its subscriptions, the answers waiting, and the task that sends."""

    def __init__(self, websocket: WebSocket, client: Client, group: anyio.abc.TaskGroup) -> None:
        self.websocket = websocket
        self.client = client
        self.group = group
        self.subs: dict[str, _Subscription] = {}
        self.held = _Held()
        self.answers: deque[dict[str, Any]] = deque()
        self.wake = anyio.Event()
        #: The code to close the socket with once the session ends, if not the client's.
        self.close_code: int | None = None

    def answer(self, frame: dict[str, Any]) -> None:
        if len(self.answers) >= MAX_ANSWERS:
            self.end(1008, "the client sends frames without reading the answers")
            return
        self.answers.append(frame)
        self.wake.set()

    def end(self, code: int, reason: str) -> None:
        log.info("websocket_closing", code=code, reason=reason)
        self.close_code = code
        self.group.cancel_scope.cancel()

    async def send_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = anyio.Event()
            try:
                while self.answers:
                    await self._send(self.answers.popleft())
                for subscription in list(self.subs.values()):
                    for frame in subscription.frames():
                        await self.websocket.send_text(frame.decode())
            except WebSocketDisconnect:
                self.group.cancel_scope.cancel()
                return
            await anyio.sleep(COALESCE)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.websocket.send_text(msgspec.json.encode(frame).decode())

    async def receive_loop(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                await self.handle(message.get("text"), message.get("bytes"))
            except FrameError as exc:
                error = {"error": exc.error, "field": exc.field, "value": exc.value}
                self.answer({"op": "error", "sub": exc.sub, **error})

    async def handle(self, text: str | None, data: bytes | None) -> None:
        """Act on one frame; FrameError says what is wrong with it."""
        if text is None:
            size = len(data or b"")
            raise FrameError("frames must be JSON text, not binary", "frame", size)
        if len(text) > MAX_FRAME:
            raise FrameError(f"a frame is at most {MAX_FRAME} characters", "frame", len(text))
        try:
            frame = msgspec.json.decode(text)
        except (msgspec.DecodeError, RecursionError) as exc:  # deep nesting: RecursionError
            raise FrameError(f"the frame is not JSON: {exc}", "frame", _shown(text)) from None
        if not isinstance(frame, dict):
            raise FrameError("a frame must be a JSON object", "frame", _shown(frame))
        try:
            await self._dispatch(frame)
        except FrameError as exc:
            sub = frame.get("sub")
            if exc.sub is None and isinstance(sub, str):
                exc.sub = sub[:MAX_NAME]
            raise

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        match frame.get("op"):
            case "subscribe":
                await self.subscribe(frame)
            case "unsubscribe":
                self.unsubscribe(frame)
            case "ping":
                self.answer({"op": "pong"})
            case op:
                known = "subscribe, unsubscribe, ping"
                raise FrameError(f"unknown op {_shown(op)!r} (known: {known})", "op", _shown(op))

    async def subscribe(self, frame: dict[str, Any]) -> None:
        sub = _sub_id(frame)
        if sub in self.subs:
            raise FrameError(f"subscription {sub!r} exists on this socket", "sub", sub)
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            raise FrameError(
                f"a socket holds at most {MAX_SUBSCRIPTIONS} subscriptions", "sub", sub
            )
        subscription = _Subscription(sub, parse_filter(frame.get("filter")), self.held)
        self.subs[sub] = subscription
        try:
            await self.group.start(self._follow, subscription)
        except ActorworkError as exc:
            del self.subs[sub]
            raise FrameError(f"the Scheduler could not subscribe: {exc}", "sub", sub) from exc

    def unsubscribe(self, frame: dict[str, Any]) -> None:
        sub = _sub_id(frame)
        subscription = self.subs.pop(sub, None)
        if subscription is None:
            raise FrameError(f"no subscription {sub!r} on this socket", "sub", sub)
        subscription.close()

    async def _follow(
        self, subscription: _Subscription, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        with subscription.scope:
            filter = subscription.filter.events
            async with self.client.events(**filter, buffer=BUFFER) as stream:
                self.answer({"op": "subscribed", "sub": subscription.sub})
                task_status.started()
                try:
                    async for event in stream:
                        subscription.add(event)
                        self.wake.set()
                except ActorStopped as exc:
                    # The browser reconnects and subscribes again, to this Scheduler or the next.
                    self.end(1012, str(exc))


def _sub_id(frame: dict[str, Any]) -> str:
    sub = frame.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_NAME:
        raise FrameError(f"sub must be a string of 1 to {MAX_NAME} characters", "sub", _shown(sub))
    return sub


async def serve_socket(websocket: WebSocket, client: Client) -> None:
    """Serve one accepted-to-be ``websocket`` over ``client`` until either side ends it."""
    await websocket.accept()
    async with anyio.create_task_group() as group:
        session = _Session(websocket, client, group)
        group.start_soon(session.send_loop)
        await session.receive_loop()
        group.cancel_scope.cancel()
    if session.close_code is not None:
        # A client that does not read never takes the close frame: returning without it
        # closes the connection all the same.
        with anyio.move_on_after(CLOSE_TIMEOUT):
            try:
                await websocket.close(session.close_code)
            except (WebSocketDisconnect, RuntimeError):
                pass  # the client went first
