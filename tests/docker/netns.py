"""Another host for the tests: a network namespace joined to this one by a veth pair.

``other_host()`` makes a namespace ``awtest-XXXXXX`` and a veth pair with a /30 of
10.200.0.0/16 that no interface of this host uses yet: ``host_address`` on this
side, ``address`` in the namespace (whose loopback is up too). A process started with
``ip netns exec NAME ...`` (:meth:`OtherHost.command`) has only that network: it reaches
this host at ``host_address`` and nothing else. Unix sockets are not namespaced, so it
still reaches the local Docker Engine through ``/var/run/docker.sock``.

Only addresses and namespaces made here are touched, and both are removed when the
context ends (deleting one end of the pair deletes the other).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

PREFIX = "awtest-"


def unavailable() -> str:
    """Why a namespace cannot be made here ('' if it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return ""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def _free_subnet() -> int:
    """A third octet ``n`` such that no address of 10.200.n.0/24 is on this host."""
    used = _ip("-o", "-4", "addr", "show").stdout
    for _ in range(50):
        octet = secrets.randbelow(256)
        if f"10.200.{octet}." not in used:
            return octet
    raise RuntimeError("no free /24 in 10.200.0.0/16 for a test veth pair")


@dataclass(frozen=True)
class OtherHost:
    """A namespace and the addresses of its veth pair (see the module docstring)."""

    name: str
    address: str
    host_address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]


@contextmanager
def other_host() -> Iterator[OtherHost]:
    """A namespace with a veth pair to this host; removed when the context ends."""
    token = secrets.token_hex(3)
    name, outside, inside = f"{PREFIX}{token}", f"awv{token}h", f"awv{token}n"
    octet = _free_subnet()
    host_address, address = f"10.200.{octet}.1", f"10.200.{octet}.2"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", name)
        _ip("addr", "add", f"{host_address}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", name, "addr", "add", f"{address}/30", "dev", inside)
        _ip("-n", name, "link", "set", inside, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield OtherHost(name, address, host_address)
    finally:
        _ip("link", "del", outside, check=False)
        _ip("netns", "del", name, check=False)
