"""The one place where frames become messages and messages become frames.

A frame holds one envelope, a MessagePack array::

    [kind, correlation_id, recipient, sender, body]

``kind`` is TELL, ASK, REPLY or FAILURE; ``correlation_id`` pairs an ask with its
reply (0 for a tell); ``recipient`` and ``sender`` are actor names within the two
systems; ``body`` is a tagged :class:`~actorwork.messages.Message` (or nil for a reply
of ``None``). The envelope is decoded first with the body left as raw bytes, then the
body on its own: a frame that is not an envelope is a :class:`ProtocolError` that
closes the connection, while a well-formed envelope whose body no one here knows only
fails that one message.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from actorwork.errors import MessageEncodeError, ProtocolError
from actorwork.messages import Message, message_types

__all__ = ["Codec", "Envelope", "Kind"]


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
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError) as exc:
            raise ProtocolError(f"malformed message: {exc}") from exc
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
