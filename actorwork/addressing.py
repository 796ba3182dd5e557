"""Addresses: ``scheme://location``, parsed once at the edge.

The scheme picks the transport (see :mod:`actorwork.transports.registry`); the
location means whatever that transport says it means:

=========  ====================================  ==========================
scheme     location                              example
=========  ====================================  ==========================
inproc     a name, unique within the process     ``inproc://scheduler``
pipe       an inherited file descriptor          ``pipe://5``
unix       a filesystem path                     ``unix:///run/aw/sched.sock``
tcp        ``host:port`` (IPv6 in brackets)      ``tcp://127.0.0.1:7400``
=========  ====================================  ==========================
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from actorwork.errors import AddressError

__all__ = ["Address", "format_address", "is_loopback_host", "parse_address", "split_host_port"]


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed address. ``str(address)`` gives back the canonical text."""

    scheme: str
    location: str

    def __str__(self) -> str:
        return format_address(self.scheme, self.location)


def parse_address(text: str | Address) -> Address:
    """Split ``scheme://location``; raise :class:`AddressError` naming the text if malformed.

    The scheme is lower-cased. Whether a transport exists for it is checked later,
    by the registry, so that the error can list the schemes that do.
    """
    if isinstance(text, Address):
        return text
    if not isinstance(text, str):
        raise AddressError(f"address must be a string like 'tcp://127.0.0.1:7400', got {text!r}")
    scheme, sep, location = text.partition("://")
    if not sep or not scheme:
        raise AddressError(
            f"address {text!r} has no scheme; expected 'scheme://location', "
            "e.g. 'inproc://demo' or 'tcp://127.0.0.1:7400'"
        )
    if not scheme.replace("+", "").replace("-", "").isalnum():
        raise AddressError(f"address {text!r} has an invalid scheme {scheme!r}")
    return Address(scheme.lower(), location)


def format_address(scheme: str, location: str) -> str:
    """The inverse of :func:`parse_address`."""
    return f"{scheme}://{location}"


def split_host_port(address: Address, *, default_port: int | None = None) -> tuple[str, int]:
    """Parse a ``host:port`` location (IPv6 hosts in brackets); errors name the address."""
    location = address.location
    if location.startswith("["):
        host, sep, rest = location[1:].partition("]")
        if not sep:
            raise AddressError(f"address {str(address)!r}: unclosed '[' in IPv6 host")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = location.rpartition(":")
        if not host:
            host, port_text = location, ""
    if not host:
        raise AddressError(f"address {str(address)!r} has no host")
    if not port_text:
        if default_port is None:
            raise AddressError(f"address {str(address)!r} has no port; expected 'host:port'")
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise AddressError(
            f"address {str(address)!r} has a non-numeric port {port_text!r}"
        ) from None
    if not 0 <= port <= 65535:
        raise AddressError(f"address {str(address)!r} has port {port} outside 0..65535")
    return host, port


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and any loopback IP (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
