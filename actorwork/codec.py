"""The one place where frames become messages and messages become frames.

A frame holds one envelope, a MessagePack array::

    [kind, correlation_id, recipient, sender, body]

``kind`` is TELL, ASK, REPLY or FAILURE; ``correlation_id`` pairs an ask with its
reply (0 for a tell); ``recipient`` and ``sender`` are actor names within the two
systems; ``body`` is a tagged :class:`~actorwork.messages.Message` (or nil for a reply
of ``None``). The envelope is decoded first with the body left as raw bytes, then the
body on its own: a frame that is not an envelope is a :class:`ProtocolError` that
closes the connection, while a well-formed envelope whose body no one here knows, or
whose fields break the bounds of :mod:`actorwork.messages`, only fails that one message,
with an error naming the field and the value sent.
"""

from __future__ import annotations

import math
import re
from enum import IntEnum
from typing import Any

import msgspec

from actorwork.errors import MessageEncodeError, ProtocolError
from actorwork.messages import Message, message_types

__all__ = ["Codec", "Envelope", "Kind", "check"]


class Kind(IntEnum):
    TELL = 0
    ASK = 1
    REPLY = 2
    FAILURE = 3


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """A decoded envelope; ``body`` is still encoded."""

    kind: Kind
    corr: int
    recipient: str
    sender: str
    body: msgspec.Raw


class Codec:
    """Encodes envelopes and decodes them, with typed validation of every body."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._envelope_decoder = msgspec.msgpack.Decoder(Envelope)
        self._body_decoder: msgspec.msgpack.Decoder[Any] | None = None
        self._generation = -1

    def encode(
        self, kind: Kind, corr: int, recipient: str, sender: str, body: Message | None
    ) -> bytes:
        """An envelope as bytes; MessageEncodeError names the message type if it cannot be."""
        try:
            return self._encoder.encode((kind, corr, recipient, sender, body))
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            raise MessageEncodeError(
                f"cannot encode {type(body).__name__} for {recipient!r}: {exc}"
            ) from exc

    def decode_envelope(self, frame: bytes) -> Envelope:
        """The envelope of a frame; ProtocolError if the frame is not one."""
        try:
            return self._envelope_decoder.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError) as exc:
            raise ProtocolError(f"malformed envelope: {exc}") from exc

    def decode_body(self, raw: msgspec.Raw) -> Message | None:
        """The message in an envelope; ProtocolError names what was wrong with it."""
        decoder = self._body_decoder
        if decoder is None or self._generation != Message._generation:  # noqa: SLF001
            decoder = self._rebuild()
        try:
            body: Message | None = decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise ProtocolError(f"malformed message: {explain(exc, raw)}") from exc
        except (msgspec.DecodeError, RecursionError, ValueError) as exc:
            raise ProtocolError(f"malformed message: {exc}") from exc
        except Exception as exc:  # a message's __post_init__ raised something else
            raise ProtocolError(f"malformed message: {type(exc).__name__}: {exc}") from exc
        return body

    def _rebuild(self) -> msgspec.msgpack.Decoder[Any]:
        types = message_types()
        seen: dict[object, type[Message]] = {}
        for cls in types:
            tag = cls.__struct_config__.tag
            other = seen.get(tag)
            if other is not None and other is not cls:
                raise ProtocolError(
                    f"message tag {tag!r} is used by both {other.__module__}.{other.__qualname__} "
                    f"and {cls.__module__}.{cls.__qualname__}; was a module both run as a "
                    "script and imported? Keep messages in a module of their own"
                )
            seen[tag] = cls
        union: Any = None
        for cls in types:
            union = cls if union is None else union | cls
        self._body_decoder = msgspec.msgpack.Decoder(union | None)
        self._generation = Message._generation  # noqa: SLF001
        return self._body_decoder


_checkers: dict[type[Message], msgspec.msgpack.Decoder[Any]] = {}
_check_encoder = msgspec.msgpack.Encoder()


def check(message: Message) -> None:
    """Raise :class:`MessageEncodeError` naming the field and value if ``message``
    breaks the bounds its peer checks (a Struct's constructor checks no bounds).

    For a sender that gathers several messages into one (a client's batch of
    submits), so one bad value is refused alone instead of failing the others.
    """
    cls = type(message)
    decoder = _checkers.get(cls)
    if decoder is None:
        decoder = _checkers[cls] = msgspec.msgpack.Decoder(cls)
    try:
        encoded = _check_encoder.encode(message)
        decoder.decode(encoded)
    except msgspec.ValidationError as exc:
        reason = explain(exc, encoded, tagged=False)
        raise MessageEncodeError(f"cannot send {cls.__name__}: {reason}") from exc
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise MessageEncodeError(f"cannot encode {cls.__name__}: {exc}") from exc


_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def explain(exc: msgspec.ValidationError, raw: bytes | msgspec.Raw, *, tagged: bool = True) -> str:
    """msgspec's ``Expected `int` <= 5 - at `$.jobs[0].priority```, as
    ``aw.job.submit-many: jobs[0].priority = 9223372036854775808: expected `int` <= 5``.

    Runs only when a message was refused: the body is decoded again without a type, to
    find the value that was sent at that path.
    """
    problem, _, where = str(exc).partition(" - at `")
    path = where.rstrip("`")
    problem = problem[:1].lower() + problem[1:]
    try:
        document = msgspec.msgpack.decode(raw)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return str(exc)
    tag = document.get("type") if isinstance(document, dict) else None
    prefix = f"{tag}: " if tagged and isinstance(tag, str) else ""
    if not path.startswith("$") or path == "$":
        return f"{prefix}{problem}"
    value: Any = document
    position = 1
    for step in _STEP.finditer(path, 1):
        if step.start() != position:
            break
        position = step.end()
        field, index = step.group(1), step.group(2)
        if field is not None and isinstance(value, dict) and field in value:
            value = value[field]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            break
    else:
        if position == len(path) and not isinstance(value, dict):  # a struct speaks for itself
            if isinstance(value, float) and not math.isfinite(value):
                problem += ", and finite"
            return f"{prefix}{path[2:]} = {_shown(value)}: {problem}"
    return f"{prefix}{path[2:]}: {problem}"


def _shown(value: Any) -> str:
    """A value as an error shows it: short, whatever its size."""
    if isinstance(value, str | bytes) and len(value) > 64:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:32]!r}... ({len(value)} {unit})"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return repr(value)
