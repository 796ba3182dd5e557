"""Every message that crosses a connection: tagged, frozen msgspec Structs.

User messages subclass :class:`Message`::

    class Greet(actorwork.Message):
        name: str

    class Greeting(actorwork.Message):   # replies end in "Reply" or name a result
        text: str

Rules: commands are imperative (``SpawnActor``), events past tense
(``ActorSpawned``), replies end in ``Reply``. A message's tag (its class name unless
``tag="..."`` is given) never changes once released; new fields get defaults, so old
and new peers still understand each other. Tags must be unique across the process;
a clash is reported when the codec is next used.

The envelope that carries a message is not a Message: it is a fixed-layout array
defined in :mod:`actorwork.codec`, versioned by the handshake's protocol version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

__all__ = [
    "ActorSpawned",
    "FailureReply",
    "Message",
    "Ping",
    "Pong",
    "SpawnActor",
    "Terminated",
    "WatchActor",
    "message_types",
]

_message_types: list[type[Message]] = []


if TYPE_CHECKING:
    # Type checkers reject subclasses of a frozen dataclass-like base that do not
    # repeat ``frozen=True``; users should not have to. At runtime msgspec passes
    # ``frozen`` down to every subclass, so assigning to a field still raises.
    _Base = msgspec.Struct
else:

    class _Base(msgspec.Struct, frozen=True):
        pass


class Message(_Base, tag=True, tag_field="type"):
    """Base of every message an actor sends or receives. Frozen: fields cannot change."""

    _generation: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _message_types.append(cls)
        Message._generation += 1


def message_types() -> tuple[type[Message], ...]:
    """All Message subclasses defined so far, in definition order."""
    return tuple(_message_types)


class FailureReply(Message, tag="aw.failure"):
    """The answer to an ask whose handler raised, or that could not be delivered."""

    error_type: str
    message: str
    actor: str = ""
    #: True when the actor's handler raised; False when the runtime refused the message.
    raised_by_handler: bool = False


class Terminated(Message, tag="aw.terminated"):
    """Sent to watchers when the watched actor stops or becomes unreachable."""

    name: str
    reason: str = ""


class SpawnActor(Message, tag="aw.spawn"):
    """Ask a system's ``_system`` actor to create an actor from an importable class.

    ``factory`` is ``"package.module:ClassName"``; ``kwargs`` go to its constructor.
    """

    factory: str
    name: str
    kwargs: dict[str, Any] = {}


class WatchActor(Message, tag="aw.watch"):
    """Ask a system's ``_system`` actor to send the sender Terminated when ``name`` stops."""

    name: str


class ActorSpawned(Message, tag="aw.spawned"):
    """Reply to :class:`SpawnActor`."""

    name: str


class Ping(Message, tag="aw.ping"):
    """Liveness probe; any actor that accepts it answers :class:`Pong`."""

    payload: bytes = b""


class Pong(Message, tag="aw.pong"):
    payload: bytes = b""
