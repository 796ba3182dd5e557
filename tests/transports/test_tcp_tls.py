"""TLS over tcp://: actor messages over an encrypted, verified connection."""

from __future__ import annotations

import ssl

import pytest
import trustme

from actorwork import ActorSystem
from actorwork.errors import TransportError
from actorwork.messages import Ping, Pong
from actorwork.transports.tcp import TCPTransport


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.usefixtures("no_leaks")
async def test_ask_over_tls_with_a_secret(ca: trustme.CA) -> None:
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = ActorSystem(
        "tls-server",
        listen="tcp://127.0.0.1:0",
        transport=TCPTransport(server_ssl=server_context(ca)),
        secret="s3cret",
    )
    async with server, ActorSystem("tls-client", secret="s3cret") as client:
        assert server.address is not None
        ref = await client.remote(
            server.address, "_system", transport=TCPTransport(client_ssl=client_context)
        )
        assert await ref.ask(Ping(b"secure"), timeout=10) == Pong(b"secure")


@pytest.mark.usefixtures("no_leaks")
async def test_untrusted_certificate_is_refused(ca: trustme.CA) -> None:
    server = ActorSystem(
        "tls-server",
        listen="tcp://127.0.0.1:0",
        transport=TCPTransport(server_ssl=server_context(ca)),
    )
    async with server, ActorSystem("tls-client") as client:
        assert server.address is not None
        stranger = ssl.create_default_context()  # does not trust our CA
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.remote(
                server.address, "_system", transport=TCPTransport(client_ssl=stranger)
            )
