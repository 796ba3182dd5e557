"""References to actors: :class:`ActorRef` and its local and remote kinds.

A ref is how anything talks to an actor: ``await ref.tell(message)`` (fire and
forget, waits only when the target's mailbox or connection is full) and
``await ref.ask(message, timeout=...)`` (returns the handler's result). Local and
remote refs behave the same, except that messages to a remote actor are encoded and
checked against the receiving system's types on arrival.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from actorwork.codec import Kind
from actorwork.errors import ActorStopped, AskTimeout, MessageRejected, RemoteActorError
from actorwork.messages import ActorSpawned, FailureReply, Message, SpawnActor

if TYPE_CHECKING:
    from actorwork.runtime.link import Link
    from actorwork.runtime.system import ActorSystem, _Cell

__all__ = ["ActorRef", "Deadlines", "LocalRef", "PeerSystem", "RemoteRef", "current_actor"]

# Envelope kinds as plain names: on Python 3.11 each ``Kind.X`` lookup goes through the
# enum's descriptor (about 0.15 µs), and sending and routing need several a message.
TELL, ASK, REPLY, FAILURE = Kind.TELL, Kind.ASK, Kind.REPLY, Kind.FAILURE

#: The ref of the actor whose task is running, used as the default sender.
_current: contextvars.ContextVar[ActorRef | None] = contextvars.ContextVar(
    "actorwork_current_actor", default=None
)


def current_actor() -> ActorRef | None:
    """The actor on whose behalf the current task runs, if any."""
    return _current.get()


class ActorRef(ABC):
    """An address of one actor that messages can be sent to."""

    name: str

    @abstractmethod
    async def tell(self, message: Message, *, sender: ActorRef | None = None) -> None:
        """Deliver ``message`` without waiting for it to be handled.

        ``sender`` defaults to the actor this is called from. Raises MessageRejected
        (locally known to be unacceptable), MessageEncodeError (remote, unencodable),
        ActorStopped or a TransportError when it cannot be delivered.
        """

    @abstractmethod
    async def ask(self, message: Message, *, timeout: float | None = None) -> Any:
        """Deliver ``message`` and return the handler's result.

        ``timeout`` defaults to the system's ``ask_timeout``. Raises AskTimeout,
        RemoteActorError if the handler raised, ActorStopped if the actor stopped or
        its connection broke first, plus whatever ``tell`` raises.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class Deadlines:
    """The reply deadlines of pending asks, behind one timer.

    A timer per ask (``call_later``, then ``cancel`` once answered) costs about 2.7 µs,
    a tenth of an ask between two systems in one process. Here an ask costs a heap
    push; one timer waits for the earliest deadline and fails every future whose
    deadline passed with AskTimeout. Answered asks are dropped lazily, when their
    deadline comes or when they make up most of the heap.
    """

    __slots__ = ("_compact_at", "_heap", "_loop", "_seq", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, asyncio.Future[Any], float, str]] = []
        self._seq = itertools.count()  # ties on the deadline never compare futures
        self._timer: asyncio.TimerHandle | None = None
        self._compact_at = _COMPACT_AT

    def add(self, future: asyncio.Future[Any], timeout: float, target: str) -> None:
        """Fail ``future`` with AskTimeout if it is not done within ``timeout`` seconds."""
        when = self._loop.time() + timeout
        heap = self._heap
        heapq.heappush(heap, (when, next(self._seq), future, timeout, target))
        if len(heap) >= self._compact_at:
            heap[:] = [entry for entry in heap if not entry[2].done()]
            heapq.heapify(heap)
            self._compact_at = max(_COMPACT_AT, 2 * len(heap))
        timer = self._timer
        if timer is None or when < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        heap, now = self._heap, self._loop.time()
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            _when, _seq, future, timeout, target = heapq.heappop(heap)
            if not future.done():
                future.set_exception(AskTimeout(f"no reply from {target!r} within {timeout}s"))
        if heap:
            self._timer = self._loop.call_at(heap[0][0], self._expire)


_COMPACT_AT = 1024  # entries before answered asks are swept out of a Deadlines heap


def failure_error(failure: FailureReply) -> Exception:
    """The exception an asker sees for a FailureReply."""
    if failure.raised_by_handler:
        return RemoteActorError(failure.message, error_type=failure.error_type, actor=failure.actor)
    if failure.error_type == "ActorStopped":
        return ActorStopped(failure.message)
    if failure.error_type == "ActorNotFound":
        from actorwork.errors import ActorNotFound

        return ActorNotFound(failure.message)
    if failure.error_type == "MessageRejected":
        return MessageRejected(failure.message)
    return RemoteActorError(failure.message, error_type=failure.error_type, actor=failure.actor)


class LocalRef(ActorRef):
    """A ref to an actor in this system: messages are handed over as objects."""

    __slots__ = ("_cell", "_deadlines", "_loop", "name")

    def __init__(self, cell: _Cell) -> None:
        self._cell = cell
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None
        self.name = cell.name

    @property
    def system(self) -> ActorSystem:
        return self._cell.system

    def _check(self, message: Message) -> None:
        if not isinstance(message, self._cell.accepts):
            raise MessageRejected(self._cell.rejection(message))

    async def tell(self, message: Message, *, sender: ActorRef | None = None) -> None:
        self._check(message)
        item = (message, sender or _current.get(), None)
        mailbox = self._cell.mailbox
        if not mailbox.put_nowait(item):
            await mailbox.put(item)

    async def ask(self, message: Message, *, timeout: float | None = None) -> Any:
        self._check(message)
        loop, deadlines = self._loop, self._deadlines
        if loop is None or deadlines is None:
            # Cached: asking asyncio for the running loop costs a getpid() per call.
            loop = self._loop = asyncio.get_running_loop()
            deadlines = self._deadlines = Deadlines(loop)
        future: asyncio.Future[Any] = loop.create_future()
        item = (message, _current.get(), LocalReply(future))
        mailbox = self._cell.mailbox
        if not mailbox.put_nowait(item):
            await mailbox.put(item)
        if timeout is None:
            timeout = self._cell.system.ask_timeout
        deadlines.add(future, timeout, self.name)
        return await future


class RemoteRef(ActorRef):
    """A ref to an actor in another system, reached over a :class:`Link`.

    A ref made from an address (``ActorSystem.remote``) reconnects on its next use
    after the connection was lost; a ref that arrived as the sender of a message is
    bound to the connection it came on.
    """

    __slots__ = ("_address", "_link", "_system", "name")

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        *,
        link: Link | None = None,
        address: str | None = None,
    ) -> None:
        self._system = system
        self.name = name
        self._link = link
        self._address = address

    @property
    def address(self) -> str | None:
        return self._address

    @property
    def connected(self) -> bool:
        """Whether a send goes out on a live link now, without connecting first."""
        link = self._link
        return link is not None and not link.closed

    async def link(self) -> Link:
        """The live link to the actor's system, connecting again if needed."""
        link = self._link
        if link is not None and not link.closed:
            return link
        return await self._reconnect()

    async def _reconnect(self) -> Link:
        if self._address is None:
            raise ActorStopped(
                f"connection to {self.name!r} is gone and it has no address to reconnect to"
            )
        self._link = link = await self._system.connect(self._address)
        return link

    # tell and ask test the link inline and call nothing that suspends unless the link
    # is lost or full: on the hot path an await that never waits still costs a
    # coroutine each, and a send is just an encode and an enqueue.

    async def tell(self, message: Message, *, sender: ActorRef | None = None) -> None:
        link = self._link
        if link is None or link.closed:
            link = await self._reconnect()
        sender = sender or _current.get()
        frame = link.codec.encode(TELL, 0, self.name, sender.name if sender else "", message)
        if not link.enqueue(frame):
            await link.drained()

    async def ask(self, message: Message, *, timeout: float | None = None) -> Any:
        link = self._link
        if link is None or link.closed:
            link = await self._reconnect()
        sender = _current.get()
        corr, future = link.new_ask()
        try:
            frame = link.codec.encode(ASK, corr, self.name, sender.name if sender else "", message)
            if not link.enqueue(frame):
                await link.drained()
            if timeout is None:
                timeout = self._system.ask_timeout
            link.deadlines.add(future, timeout, self.name)
            return await future
        finally:
            link.forget_ask(corr)

    def __repr__(self) -> str:
        return f"<RemoteRef {self.name!r} at {self._address or 'incoming connection'}>"


class LocalReply:
    """Where the answer to a local ask goes: straight into the asker's future."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    def resolve(self, result: Any) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class WireReply:
    """Where the answer to a remote ask goes: back over the link it came on."""

    __slots__ = ("corr", "link")

    def __init__(self, link: Link, corr: int) -> None:
        self.link = link
        self.corr = corr

    def resolve(self, result: Any) -> None:
        self.link.reply(self.corr, result)

    def fail(self, error: Exception) -> None:
        self.link.reply_failure(self.corr, error)


class PeerSystem:
    """The actor system at the other end of one link: a child process, a container.

    Subclasses set ``system`` (the actor system on this side) and ``link``.
    """

    system: ActorSystem
    link: Link

    def ref(self, name: str) -> RemoteRef:
        """A ref to actor ``name`` in the peer system."""
        return RemoteRef(self.system, name, link=self.link)

    async def spawn(
        self, factory: str, *, name: str, timeout: float | None = None, **kwargs: Any
    ) -> RemoteRef:
        """Create actor ``name`` in the peer from ``"package.module:Class"`` (``kwargs`` to it)."""
        reply = await self.ref("_system").ask(SpawnActor(factory, name, kwargs), timeout=timeout)
        assert isinstance(reply, ActorSpawned)
        return self.ref(reply.name)
