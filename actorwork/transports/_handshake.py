"""The connection handshake: protocol version, then an optional HMAC challenge.

Runs over frames before any message is exchanged, on every transport::

    client                                  server
    Hello(version, name, client_nonce)  ->
                                        <-  Challenge(version, name, server_nonce,
                                                      auth, server_proof)
    Proof(client_proof)                 ->
                                        <-  Welcome()  |  Refused(reason)

With a shared secret ``K`` both sides prove they know it without sending it:
``server_proof = HMAC-SHA256(K, b"S" + client_nonce + server_nonce)`` and
``client_proof = HMAC-SHA256(K, b"C" + server_nonce + client_nonce)``. Fresh random
nonces on both sides make a recorded exchange useless on a new connection. The
server reads handshake frames with a small cap and under a deadline, so a silent or
hostile peer costs a few hundred bytes and ``handshake_timeout`` seconds, and no
payload frame is ever decoded before ``Welcome``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Protocol

import anyio
import msgspec

from actorwork.errors import (
    AuthenticationError,
    ConnectionBroken,
    EndOfStream,
    FrameTooLarge,
    HandshakeError,
)
from actorwork.transports.base import ConnectionOptions

__all__ = [
    "HANDSHAKE_FRAME_CAP",
    "PROTOCOL_VERSION",
    "FrameChannel",
    "client_handshake",
    "server_handshake",
]

PROTOCOL_VERSION = 1
HANDSHAKE_FRAME_CAP = 1024
_NONCE_SIZE = 32


class FrameChannel(Protocol):
    """The two frame operations the handshake needs."""

    async def send(self, payload: bytes) -> None: ...

    async def receive(self, max_frame_size: int | None = None) -> bytes: ...


class Hello(msgspec.Struct, tag="hello", array_like=True, frozen=True):
    version: int
    name: str
    nonce: bytes


class Challenge(msgspec.Struct, tag="challenge", array_like=True, frozen=True):
    version: int
    name: str
    nonce: bytes
    auth: bool
    proof: bytes


class Proof(msgspec.Struct, tag="proof", array_like=True, frozen=True):
    proof: bytes


class Welcome(msgspec.Struct, tag="welcome", array_like=True, frozen=True):
    pass


class Refused(msgspec.Struct, tag="refused", array_like=True, frozen=True):
    reason: str


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Hello | Challenge | Proof | Welcome | Refused)


def _mac(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(secret, label + first + second, hashlib.sha256).digest()


async def _receive(
    channel: FrameChannel, side: str
) -> Hello | Challenge | Proof | Welcome | Refused:
    try:
        frame = await channel.receive(HANDSHAKE_FRAME_CAP)
    except FrameTooLarge as exc:
        raise HandshakeError(f"{side}: oversized handshake frame ({exc})") from exc
    except (EndOfStream, ConnectionBroken) as exc:
        raise HandshakeError(f"{side}: peer closed the connection during the handshake") from exc
    try:
        message: Hello | Challenge | Proof | Welcome | Refused = _decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HandshakeError(f"{side}: malformed handshake frame ({exc})") from exc
    return message


async def _refuse(
    channel: FrameChannel, reason: str, error: type[HandshakeError]
) -> HandshakeError:
    try:
        await channel.send(_encoder.encode(Refused(reason)))
    except Exception:  # noqa: BLE001 - the peer may be gone; the refusal is best effort
        pass
    return error(reason)


async def client_handshake(channel: FrameChannel, options: ConnectionOptions) -> str:
    """Run the client side; return the server's name or raise HandshakeError."""
    try:
        with anyio.fail_after(options.handshake_timeout):
            return await _client_steps(channel, options)
    except TimeoutError:
        raise HandshakeError(
            f"server did not complete the handshake within {options.handshake_timeout}s"
        ) from None


async def _client_steps(channel: FrameChannel, options: ConnectionOptions) -> str:
    nonce = os.urandom(_NONCE_SIZE)
    await channel.send(_encoder.encode(Hello(PROTOCOL_VERSION, options.name, nonce)))
    reply = await _receive(channel, "client")
    if isinstance(reply, Refused):
        raise _refusal_error(reply.reason)
    if not isinstance(reply, Challenge):
        raise HandshakeError(f"expected a challenge from the server, got {type(reply).__name__}")
    if reply.auth:
        if options.secret is None:
            raise AuthenticationError(
                f"server {reply.name!r} requires a shared secret and none is configured"
            )
        expected = _mac(options.secret, b"S", nonce, reply.nonce)
        if not hmac.compare_digest(expected, reply.proof):
            raise AuthenticationError(f"server {reply.name!r} failed to prove the shared secret")
        proof = _mac(options.secret, b"C", reply.nonce, nonce)
    else:
        proof = b""
    await channel.send(_encoder.encode(Proof(proof)))
    final = await _receive(channel, "client")
    if isinstance(final, Refused):
        raise _refusal_error(final.reason)
    if not isinstance(final, Welcome):
        raise HandshakeError(f"expected welcome from the server, got {type(final).__name__}")
    return reply.name


def _refusal_error(reason: str) -> HandshakeError:
    if "secret" in reason or "authentication" in reason:
        return AuthenticationError(f"server refused the connection: {reason}")
    return HandshakeError(f"server refused the connection: {reason}")


async def server_handshake(channel: FrameChannel, options: ConnectionOptions) -> str:
    """Run the server side under the handshake deadline; return the client's name."""
    try:
        with anyio.fail_after(options.handshake_timeout):
            return await _server_steps(channel, options)
    except TimeoutError:
        raise HandshakeError(
            f"no complete handshake within handshake_timeout={options.handshake_timeout}s"
        ) from None


async def _server_steps(channel: FrameChannel, options: ConnectionOptions) -> str:
    hello = await _receive(channel, "server")
    if not isinstance(hello, Hello):
        raise await _refuse(channel, f"expected hello, got {type(hello).__name__}", HandshakeError)
    if hello.version != PROTOCOL_VERSION:
        raise await _refuse(
            channel,
            f"protocol version {hello.version} not supported (this side speaks {PROTOCOL_VERSION})",
            HandshakeError,
        )
    nonce = os.urandom(_NONCE_SIZE)
    auth = options.secret is not None
    server_proof = _mac(options.secret, b"S", hello.nonce, nonce) if options.secret else b""
    await channel.send(
        _encoder.encode(Challenge(PROTOCOL_VERSION, options.name, nonce, auth, server_proof))
    )
    proof = await _receive(channel, "server")
    if not isinstance(proof, Proof):
        raise await _refuse(channel, f"expected proof, got {type(proof).__name__}", HandshakeError)
    if options.secret is not None:
        if not proof.proof:
            raise await _refuse(
                channel, "a shared secret is required and the client sent none", AuthenticationError
            )
        expected = _mac(options.secret, b"C", nonce, hello.nonce)
        if not hmac.compare_digest(expected, proof.proof):
            raise await _refuse(
                channel, "authentication failed: wrong shared secret", AuthenticationError
            )
    await channel.send(_encoder.encode(Welcome()))
    return hello.name
