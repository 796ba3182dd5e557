"""The :class:`Actor` base class: what user code subclasses.

An actor handles one message at a time, in arrival order, in its own task. Its
``receive`` dispatches with an exhaustive ``match`` over the union it annotates, and
that annotation is also what the runtime checks incoming messages against::

    class Greeter(Actor):
        async def receive(self, message: Greet | Ping) -> Greeting | Pong:
            match message:
                case Greet(name=name):
                    return Greeting(f"hello {name}")
                case Ping():
                    return Pong()
                case _:
                    assert_never(message)

The return value of ``receive`` is the reply when the message came by ``ask``
(``None`` is a valid reply), and is dropped for a ``tell``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from actorwork.messages import Message

if TYPE_CHECKING:
    from actorwork.runtime.ref import ActorRef
    from actorwork.runtime.system import ActorSystem, _Cell

__all__ = ["Actor", "Reply"]


class Reply(Protocol):
    """Where the answer to one ask goes; see :meth:`Actor.defer_reply`.

    Only the first ``resolve`` or ``fail`` counts; both are safe to call after the
    asker has gone (its timeout passed, its connection broke).
    """

    def resolve(self, result: Any) -> None: ...

    def fail(self, error: Exception) -> None: ...


class Actor:
    """Subclass and implement :meth:`receive`; spawn with :meth:`ActorSystem.spawn`.

    Lifecycle: ``on_start`` runs before the first message (an exception there makes
    ``spawn`` fail); ``on_failure`` runs after a handler raised (the actor goes on with
    the next message; if ``on_failure`` itself raises, the actor stops); ``on_stop``
    runs once when the actor stops, for whatever reason.
    """

    _accepts: ClassVar[tuple[type, ...] | None] = None
    _cell: _Cell | None = None
    _sender: ActorRef | None = None

    async def receive(self, message: Any) -> Message | None:
        """Handle one message; the result is the reply to an ask."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement receive()")

    async def on_start(self) -> None:
        """Called once, before the first message."""

    async def on_stop(self) -> None:
        """Called once, after the last message."""

    async def on_failure(self, error: Exception, message: Message) -> None:
        """Called after ``receive`` raised ``error`` for ``message`` (already logged)."""

    @property
    def ref(self) -> ActorRef:
        """This actor's own reference."""
        return self._running_cell().ref

    @property
    def name(self) -> str:
        return self._running_cell().name

    @property
    def system(self) -> ActorSystem:
        return self._running_cell().system

    @property
    def sender(self) -> ActorRef | None:
        """The sender of the message being handled, if it gave one."""
        return self._sender

    @property
    def log(self) -> Any:
        """A structlog logger bound to this actor's name."""
        return self._running_cell().log

    def defer_reply(self) -> Reply | None:
        """Take over answering the message being handled; ``None`` if it was a tell.

        ``receive`` then returns without answering, and the actor resolves the handle
        later (after a commit, when a job ends). A deferred reply the actor never
        resolves leaves its asker to time out; resolve or fail it in ``on_stop``.
        """
        cell = self._running_cell()
        reply, cell.current_reply = cell.current_reply, None
        return reply  # type: ignore[no-any-return]

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``func(*args)`` in a task that is cancelled when this actor stops.

        An exception from it is logged (``on_failure`` is not called):
        background tasks should handle their own errors.
        """
        self._running_cell().start_soon(func, *args)

    def _running_cell(self) -> _Cell:
        cell = self._cell
        if cell is None:
            raise RuntimeError(
                f"{type(self).__qualname__} is not running; spawn it in an ActorSystem"
            )
        return cell

    @classmethod
    def accepted_types(cls) -> tuple[type, ...]:
        """The message classes ``receive`` is annotated to take (all Messages if unannotated)."""
        if cls.__dict__.get("_accepts") is not None:
            return cls._accepts  # type: ignore[return-value]
        accepted = _annotated_message_types(cls)
        cls._accepts = accepted
        return accepted


def _annotated_message_types(cls: type[Actor]) -> tuple[type, ...]:
    try:
        hints = typing.get_type_hints(cls.receive)
    except Exception as exc:
        raise TypeError(
            f"cannot resolve the annotations of {cls.__qualname__}.receive: {exc}"
        ) from exc
    hints.pop("return", None)
    if not hints:
        return (Message,)
    annotation = next(iter(hints.values()))
    if annotation is Any:
        return (Message,)
    origin = typing.get_origin(annotation)
    members = (
        typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    )
    accepted = tuple(member for member in members if isinstance(member, type))
    for member in accepted:
        if not issubclass(member, Message):
            raise TypeError(
                f"{cls.__qualname__}.receive accepts {member.__qualname__}, which is not a Message"
            )
    return accepted or (Message,)
