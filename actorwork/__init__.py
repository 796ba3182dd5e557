"""actorwork: background work as asyncio actors.

The public API; everything here is re-exported from its home module.
"""

from actorwork.addressing import Address, parse_address
from actorwork.errors import (
    ActorError,
    ActorNotFound,
    ActorStopped,
    ActorworkError,
    AskTimeout,
    ConfigError,
    MessageRejected,
    ProtocolError,
    RemoteActorError,
    TransportError,
)
from actorwork.messages import Message, Terminated
from actorwork.runtime import Actor, ActorRef, ActorSystem, current_actor
from actorwork.transports import Transport, register_transport

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "ActorworkError",
    "Address",
    "AskTimeout",
    "ConfigError",
    "Message",
    "MessageRejected",
    "ProtocolError",
    "RemoteActorError",
    "Terminated",
    "Transport",
    "TransportError",
    "__version__",
    "current_actor",
    "parse_address",
    "register_transport",
]
