"""Transports: how frames get from one actor system to another.

See :mod:`actorwork.transports.base` for the interfaces and
:mod:`actorwork.transports.registry` for how a scheme finds its transport.
"""

from actorwork.transports._framing import DEFAULT_MAX_FRAME_SIZE
from actorwork.transports.base import Connection, ConnectionOptions, Listener, Transport
from actorwork.transports.registry import known_schemes, register_transport, resolve_transport

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "Connection",
    "ConnectionOptions",
    "Listener",
    "Transport",
    "known_schemes",
    "register_transport",
    "resolve_transport",
]
