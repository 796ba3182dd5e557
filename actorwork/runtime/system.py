"""The :class:`ActorSystem`: spawns actors, listens, connects, routes, supervises.

::

    async with ActorSystem("demo", listen="tcp://127.0.0.1:7400") as system:
        greeter = await system.spawn(Greeter(), name="greeter")
        reply = await greeter.ask(Greet("ada"))
        other = await system.remote("unix:///tmp/other.sock", "worker")
        await other.tell(Work(...))

Every task the system starts — actors, the listener, links — lives in its task
group and ends when the ``async with`` block does. Supervision: a handler that raises
is logged with the message that caused it, its asker gets a RemoteActorError, the
actor's ``on_failure`` runs, and the actor carries on; nothing an actor or a peer does
can end the system.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from functools import partial
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc

from actorwork._importing import import_object
from actorwork._log import get_logger
from actorwork.addressing import parse_address
from actorwork.codec import Codec, Kind
from actorwork.errors import ActorNotFound, ActorStopped, RemoteActorError
from actorwork.messages import (
    ActorSpawned,
    Message,
    Ping,
    Pong,
    SpawnActor,
    Terminated,
    WatchActor,
)
from actorwork.runtime.actor import Actor
from actorwork.runtime.link import Link
from actorwork.runtime.mailbox import Mailbox
from actorwork.runtime.ref import ActorRef, LocalRef, RemoteRef, _current
from actorwork.transports.base import (
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    Connection,
    ConnectionOptions,
    Listener,
    Transport,
)
from actorwork.transports.registry import resolve_transport

if TYPE_CHECKING:
    from actorwork.runtime.child import ChildProcess

__all__ = ["DEFAULT_LIVENESS_TIMEOUT", "ActorSystem"]

log = get_logger(__name__)

#: Half of the default ask timeout: an ask to a dead peer fails in time to be asked again
#: elsewhere, while a live system, however loaded, answers the ping sent half-way in
#: well under the 7.5 s it is given.
DEFAULT_LIVENESS_TIMEOUT = 15.0
_FAIRNESS = 64  # messages an actor handles back to back before letting others run

Item = tuple[Message, ActorRef | None, Any]


class _Cell:
    """The runtime state of one spawned actor."""

    def __init__(self, system: ActorSystem, actor: Actor, name: str, capacity: int) -> None:
        self.system = system
        self.actor = actor
        self.name = name
        self.accepts = type(actor).accepted_types()
        self.mailbox: Mailbox[Item] = Mailbox(capacity, owner=name)
        self.ref = LocalRef(self)
        self.log = log.bind(actor=name)
        self.watchers: set[ActorRef] = set()
        self.scope = anyio.CancelScope()
        self.stopped = anyio.Event()
        self.task_group: anyio.abc.TaskGroup | None = None
        #: Where the answer to the message being handled goes (None for a tell).
        self.current_reply: Any = None

    def rejection(self, message: object) -> str:
        accepted = ", ".join(sorted(t.__name__ for t in self.accepts))
        return (
            f"actor {self.name!r} ({type(self.actor).__qualname__}) does not accept "
            f"{type(message).__name__} (accepts: {accepted})"
        )

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if self.task_group is None:
            raise RuntimeError(f"actor {self.name!r} is not running")

        async def guarded() -> None:
            try:
                await func(*args)
            except Exception:
                self.log.exception(
                    "actor_task_failed", task=getattr(func, "__qualname__", repr(func))
                )

        self.task_group.start_soon(guarded)


class ActorSystem(anyio.abc.AsyncResource):
    """A set of actors, plus the connections that link them to other systems.

    ``listen`` is an address (or ``None`` to accept no connections); ``transport``
    overrides the registry's choice for it. ``transports`` maps a scheme to the
    transport used for it instead of the registry's, to connect and to listen (a
    ``tcp`` one with TLS contexts, say). ``secret`` enables the shared-secret
    handshake on every connection in and out. ``mailbox_capacity`` bounds each
    actor's mailbox (senders wait when it is full); ``ask_timeout`` is the default
    for :meth:`ActorRef.ask`. ``allow_remote_spawn`` lets peers create actors here
    from importable classes (used by child processes, off by default). On close,
    actors get ``stop_grace`` seconds, together, to finish the message in hand.
    ``liveness_timeout`` is how long a system this one connected to may stay silent
    while it owes answers before the connection is declared lost and those asks fail
    with ConnectionBroken (half-way it is pinged, which a live system answers however
    slow its actors are; None: never, the asks wait out their own timeouts).
    ``idle_timeout``, ``frame_timeout``, ``max_buffered`` and ``max_connections``
    bound what the peers of its listener may hold (see
    :class:`~actorwork.transports.base.ConnectionOptions`).
    """

    def __init__(
        self,
        name: str = "actorwork",
        *,
        listen: str | None = None,
        transport: Transport | None = None,
        transports: Mapping[str, Transport] | None = None,
        secret: bytes | str | None = None,
        max_frame_size: int | None = None,
        handshake_timeout: float = 5.0,
        mailbox_capacity: int = 1024,
        ask_timeout: float = 30.0,
        allow_remote_spawn: bool = False,
        stop_grace: float = 5.0,
        liveness_timeout: float | None = DEFAULT_LIVENESS_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
        max_buffered: int | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        kwargs: dict[str, Any] = {
            "name": name,
            "secret": secret or None,
            "handshake_timeout": handshake_timeout,
            "idle_timeout": idle_timeout,
            "frame_timeout": frame_timeout,
            "max_buffered": max_buffered,
            "max_connections": max_connections,
        }
        if max_frame_size is not None:
            kwargs["max_frame_size"] = max_frame_size
        self.options = ConnectionOptions(**kwargs)
        if liveness_timeout is not None and not 0 < liveness_timeout < math.inf:
            raise ValueError(
                f"liveness_timeout must be positive and finite (or None), got {liveness_timeout!r}"
            )
        if mailbox_capacity < 1:
            raise ValueError(f"mailbox_capacity must be at least 1, got {mailbox_capacity!r}")
        self.name = name
        self.mailbox_capacity = mailbox_capacity
        self.ask_timeout = ask_timeout
        self.allow_remote_spawn = allow_remote_spawn
        self.stop_grace = stop_grace
        self.liveness_timeout = liveness_timeout
        self.codec = Codec()
        self.address: str | None = None
        self._listen = listen
        self._listen_transport = transport
        self._transports = dict(transports or {})
        self._listener: Listener | None = None
        self._cells: dict[str, _Cell] = {}
        self._links: set[Link] = set()
        self._links_by_address: dict[str, Link] = {}
        self._connecting: dict[str, anyio.Lock] = {}
        self._children: set[ChildProcess] = set()
        self._names = itertools.count(1)
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError(f"actor system {self.name!r} is already running")
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(self._shutdown)
            if self._listen is not None:
                parsed = parse_address(self._listen)
                address, transport = resolve_transport(
                    parsed, self._listen_transport or self._transports.get(parsed.scheme)
                )
                listener = await transport.listen(address, self.options)
                self._listener = listener
                self.address = listener.address
                await self._tg.start(self._serve, listener)
            await self.spawn(_SystemActor(), name="_system")
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        log.debug("system_started", system=self.name, address=self.address)
        return self

    async def aclose(self) -> None:
        """Stop every actor, close every connection and the listener. Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(None, None, None)

    async def _shutdown(self) -> None:
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self._listener is not None:
                await self._listener.aclose()
            for child in list(self._children):
                await child.aclose()
            async with anyio.create_task_group() as stopping:
                for cell in reversed(list(self._cells.values())):
                    stopping.start_soon(partial(self._stop_cell, cell, grace=self.stop_grace))
            for link in list(self._links):
                await link.aclose()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        log.debug("system_stopped", system=self.name)

    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None or self._closed:
            raise RuntimeError(f"actor system {self.name!r} is not running; use 'async with'")
        return self._tg

    # --- actors --------------------------------------------------------------------

    async def spawn(
        self, actor: Actor, *, name: str | None = None, mailbox_capacity: int | None = None
    ) -> LocalRef:
        """Start ``actor`` under ``name`` and return its ref once ``on_start`` has run."""
        if not isinstance(actor, Actor):
            raise TypeError(f"spawn() takes an Actor instance, got {actor!r}")
        if actor._cell is not None:  # noqa: SLF001
            raise RuntimeError(f"{actor!r} is already running as {actor._cell.name!r}")  # noqa: SLF001
        tg = self._task_group()
        if name is None:
            name = f"{type(actor).__name__.lower()}-{next(self._names)}"
        if name in self._cells:
            raise ValueError(f"an actor named {name!r} already runs in system {self.name!r}")
        cell = _Cell(self, actor, name, mailbox_capacity or self.mailbox_capacity)
        self._cells[name] = cell
        try:
            await tg.start(self._run_actor, cell)
        except BaseException:
            self._cells.pop(name, None)
            raise
        return cell.ref

    def ref(self, name: str) -> LocalRef:
        """The ref of a local actor; ActorNotFound names the actors that do exist."""
        cell = self._cells.get(name)
        if cell is None:
            known = ", ".join(sorted(n for n in self._cells if not n.startswith("_"))) or "none"
            raise ActorNotFound(
                f"no actor named {name!r} in system {self.name!r} (running: {known})"
            )
        return cell.ref

    async def stop(self, ref: ActorRef | str, *, grace: float = 5.0) -> None:
        """Stop a local actor after the message it is handling (cancelled after ``grace``).

        Messages still in its mailbox are dropped; their askers get ActorStopped.
        """
        if isinstance(ref, RemoteRef):
            raise TypeError(f"stop() stops actors of this system; {ref!r} is remote")
        name = ref if isinstance(ref, str) else ref.name
        cell = self._cells.get(name)
        if cell is not None and (isinstance(ref, str) or cell.ref is ref):
            await self._stop_cell(cell, grace=grace)

    async def _stop_cell(self, cell: _Cell, *, grace: float) -> None:
        self._fail_items(cell, cell.mailbox.close())
        with anyio.move_on_after(grace):
            await cell.stopped.wait()
        if not cell.stopped.is_set():
            cell.scope.cancel()
            await cell.stopped.wait()

    def _fail_items(self, cell: _Cell, items: list[Item]) -> None:
        for _message, _sender, reply in items:
            if reply is not None:
                reply.fail(ActorStopped(f"actor {cell.name!r} stopped before handling the message"))

    def watch(self, target: ActorRef, watcher: ActorRef) -> None:
        """Send ``watcher`` a :class:`Terminated` when ``target`` stops or its connection ends.

        For a remote target the watcher must be a local actor; it may hear twice
        (the actor stopped, then the connection ended).
        """
        if isinstance(target, LocalRef):
            cell = self._cells.get(target.name)
            if cell is None or cell.ref is not target:
                raise ActorNotFound(f"actor {target.name!r} is not running")
            self._add_watcher(cell, watcher)
        elif isinstance(target, RemoteRef):
            link = target._link  # noqa: SLF001
            if link is None or link.closed:
                raise ActorStopped(f"no live connection to {target.name!r}")
            if not isinstance(watcher, LocalRef):
                raise TypeError(f"a watcher of a remote actor must be local, got {watcher!r}")
            link.watch(target.name, watcher)
            link.enqueue(
                self.codec.encode(Kind.TELL, 0, "_system", watcher.name, WatchActor(target.name))
            )
        else:
            raise TypeError(f"cannot watch {target!r}")

    def _add_watcher(self, cell: _Cell, watcher: ActorRef) -> None:
        """Add ``watcher`` to ``cell``; a watcher bound to a link goes when the link does."""
        if isinstance(watcher, RemoteRef) and watcher.address is None:
            link = watcher._link  # noqa: SLF001
            if link is not None and not link.hold_watch(cell, watcher):
                return
        cell.watchers.add(watcher)

    async def _notify(self, watcher: ActorRef, message: Terminated) -> None:
        try:
            await watcher.tell(message)
        except Exception as exc:  # noqa: BLE001 - the watcher may be gone too
            log.debug("watcher_unreachable", watcher=watcher.name, error=repr(exc))

    async def _run_actor(self, cell: _Cell, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        actor = cell.actor
        actor._cell = cell  # noqa: SLF001
        _current.set(cell.ref)
        reason = "stopped"
        start_error: Exception | None = None
        try:
            with cell.scope:
                async with anyio.create_task_group() as tg:
                    cell.task_group = tg
                    try:
                        await actor.on_start()
                    except Exception as exc:  # noqa: BLE001 - re-raised below, outside the group
                        start_error = exc
                    else:
                        task_status.started()
                        reason = await self._handle_messages(cell)
                    tg.cancel_scope.cancel()
        finally:
            await self._finish_actor(cell, reason if start_error is None else "on_start failed")
        if start_error is not None:
            raise start_error

    async def _handle_messages(self, cell: _Cell) -> str:
        actor = cell.actor
        receive = actor.receive
        get = cell.mailbox.get
        handled = 0
        while True:
            try:
                message, sender, reply = await get()
            except ActorStopped:
                return "stopped"
            actor._sender = sender  # noqa: SLF001
            cell.current_reply = reply
            try:
                result = await receive(message)
            except Exception as exc:  # noqa: BLE001 - supervision: any handler error is contained
                if not await self._handler_failed(cell, message, cell.current_reply, exc):
                    return f"on_failure raised after {type(exc).__name__}"
            else:
                reply = cell.current_reply  # None if the handler deferred it
                if reply is not None:
                    reply.resolve(result)
            cell.current_reply = None
            # The sender and the reply hold the message's link: while this waits for the
            # next message they must not keep a closed one alive.
            actor._sender = None  # noqa: SLF001
            del message, sender, reply
            handled += 1
            if handled >= _FAIRNESS:
                handled = 0
                await asyncio.sleep(0)

    async def _handler_failed(
        self, cell: _Cell, message: Message, reply: Any, exc: Exception
    ) -> bool:
        """Log, answer the asker, run on_failure; False if the actor must stop."""
        cell.log.error(
            "actor_handler_failed",
            message_type=type(message).__name__,
            message=_short_repr(message),
            exc_info=exc,
        )
        if reply is not None:
            error = RemoteActorError(
                f"actor {cell.name!r} failed handling {type(message).__name__}: "
                f"{type(exc).__name__}: {exc}",
                error_type=type(exc).__qualname__,
                actor=cell.name,
            )
            error.__cause__ = exc
            reply.fail(error)
        try:
            await cell.actor.on_failure(exc, message)
        except Exception:
            cell.log.exception("actor_on_failure_failed")
            return False
        return True

    async def _finish_actor(self, cell: _Cell, reason: str) -> None:
        with anyio.CancelScope(shield=True):
            if cell.current_reply is not None:  # cancelled mid-handler: the asker still hears
                cell.current_reply.fail(
                    ActorStopped(f"actor {cell.name!r} was stopped while handling the message")
                )
                cell.current_reply = None
            self._fail_items(cell, cell.mailbox.close())
            try:
                await cell.actor.on_stop()
            except Exception:
                cell.log.exception("actor_on_stop_failed")
            if self._cells.get(cell.name) is cell:
                del self._cells[cell.name]
            cell.actor._cell = None  # noqa: SLF001
            cell.stopped.set()
            for watcher in cell.watchers:
                await self._notify(watcher, Terminated(cell.name, reason))

    # --- connections ---------------------------------------------------------------

    async def _serve(self, listener: Listener, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await listener.serve(self._run_connection, task_status=task_status)

    async def _run_connection(self, connection: Connection) -> None:
        await self._new_link(connection, None).run()

    def _new_link(self, connection: Connection, address: str | None) -> Link:
        link = Link(self, connection, address=address, codec=self.codec)
        self._links.add(link)
        if address is not None:
            self._links_by_address[address] = link
        log.debug("link_opened", system=self.name, peer=link.peer_name, address=address)
        return link

    async def serve_connection(self, connection: Connection) -> None:
        """Route messages over an already handshaken ``connection`` until it ends."""
        self._task_group()
        await self._run_connection(connection)

    def adopt(self, connection: Connection) -> Link:
        """Run an already handshaken ``connection`` in the background; its link."""
        tg = self._task_group()  # before the link is registered: a closing system must
        link = self._new_link(connection, None)  # not keep a link that never runs
        tg.start_soon(link.run)
        return link

    async def spawn_child(
        self, name: str, *, init: str | None = None, env: dict[str, str] | None = None
    ) -> ChildProcess:
        """Start a child process with its own actor system, linked over ``pipe://``.

        See :func:`actorwork.runtime.child.start_child`. The child is stopped when
        this system closes, and is killed by the OS if this process dies.
        """
        from actorwork.runtime.child import start_child

        self._task_group()
        child = await start_child(self, name, init=init, env=env)
        self._children.add(child)
        return child

    def _forget_child(self, child: ChildProcess) -> None:
        self._children.discard(child)

    def _forget_link(self, link: Link) -> None:
        self._links.discard(link)
        if link.address is not None and self._links_by_address.get(link.address) is link:
            del self._links_by_address[link.address]

    async def connect(self, address: str, *, transport: Transport | None = None) -> Link:
        """The link to the system at ``address``, connecting if there is none."""
        link = self._links_by_address.get(address)
        if link is not None and not link.closed:
            return link
        lock = self._connecting.setdefault(address, anyio.Lock())
        async with lock:
            link = self._links_by_address.get(address)
            if link is not None and not link.closed:
                return link
            parsed = parse_address(address)
            parsed, chosen = resolve_transport(
                parsed, transport or self._transports.get(parsed.scheme)
            )
            tg = self._task_group()
            connection = await chosen.connect(parsed, self.options)
            link = self._new_link(connection, address)
            tg.start_soon(link.run)
            return link

    async def remote(
        self, address: str, name: str, *, transport: Transport | None = None
    ) -> RemoteRef:
        """A ref to actor ``name`` in the system listening at ``address``.

        Connects now (so a wrong address fails here), and again on a later send if
        the connection was lost meanwhile.
        """
        link = await self.connect(address, transport=transport)
        return RemoteRef(self, name, link=link, address=address)

    @property
    def links(self) -> list[Link]:
        """The live connections, for diagnostics."""
        return list(self._links)


class _SystemActor(Actor):
    """Every system's ``_system`` actor: answers pings; spawns actors if allowed."""

    async def receive(self, message: Ping | SpawnActor | WatchActor) -> Pong | ActorSpawned | None:
        match message:
            case WatchActor(name=name):
                watcher = self.sender
                if watcher is None:
                    return None
                cell = self.system._cells.get(name)  # noqa: SLF001
                if cell is None:
                    await watcher.tell(Terminated(name, "not running"))
                else:
                    self.system._add_watcher(cell, watcher)  # noqa: SLF001
                return None
            case Ping(payload=payload):
                return Pong(payload)
            case SpawnActor(factory=factory, name=name, kwargs=kwargs):
                if not self.system.allow_remote_spawn:
                    raise PermissionError(
                        f"system {self.system.name!r} does not allow remote spawn"
                    )
                actor = _import_factory(factory)(**kwargs)
                ref = await self.system.spawn(actor, name=name)
                return ActorSpawned(ref.name)


def _import_factory(path: str) -> Callable[..., Actor]:
    target = import_object(path)
    if not callable(target):
        raise TypeError(f"actor factory {path!r} is not callable")
    return target  # type: ignore[no-any-return]


def _short_repr(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
