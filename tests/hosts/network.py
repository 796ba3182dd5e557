"""A test network of hosts: network namespaces on one switch, and this host on it too.

:func:`network` makes a switch (a namespace ``awtest-XXXXXX-sw`` holding a bridge) on a
/24 of 10.200.0.0/16 that no interface of this host uses yet, and joins this host to
it at ``.1``. :meth:`Network.host` adds a host: a namespace ``awtest-XXXXXX-N`` whose
``eth0`` is one end of a veth pair, the other end a port of the bridge. Hosts reach
each other and this host at their addresses, and nothing else; a process started with
:meth:`Host.command` (``ip netns exec``) has only that network.

The bridge lives in a namespace of its own so that nothing of this host's firewall
(Docker's ``FORWARD`` policy, say) sees the traffic between hosts. Faults are those of
a real network: :meth:`Host.unplug` takes the host's port on the switch down (its
connections stall, as on a pulled cable, and resume if it is plugged back in time), and
:meth:`Host.kill` unplugs it and SIGKILLs every process in the namespace. Everything made here is
removed when the context ends, whatever the test did.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.docker.netns import PREFIX, _free_subnet, _ip

__all__ = ["Host", "Network", "network"]


@dataclass(frozen=True)
class Host:
    """One host of the network: a namespace, its address, and its port on the switch."""

    name: str
    address: str
    switch: str
    port: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run on this host (in its namespace)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        """The processes running on this host."""
        listed = _ip("netns", "pids", self.name, check=False).stdout
        return [int(pid) for pid in listed.split()]

    def unplug(self) -> None:
        """Cut the host off the network (its switch port down); :meth:`plug` undoes it."""
        _ip("-n", self.switch, "link", "set", self.port, "down")

    def plug(self) -> None:
        """Put the host back on the network."""
        _ip("-n", self.switch, "link", "set", self.port, "up")

    def kill(self) -> list[int]:
        """Unplug the host, then SIGKILL every process on it, as a host that loses its
        power goes: its peers get no FIN nor RST. The pids killed."""
        self.unplug()
        killed = []
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
        return killed


@dataclass
class Network:
    """The switch, the hosts on it, and this host's own address on it (``here``)."""

    token: str
    subnet: str
    here: str
    hosts: list[Host] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{PREFIX}{self.token}-sw"

    def host(self) -> Host:
        """A new host on the switch."""
        number = len(self.hosts) + 2
        made = Host(
            f"{PREFIX}{self.token}-{number}", f"{self.subnet}.{number}", self.switch, f"p{number}"
        )
        self.hosts.append(made)
        _ip("netns", "add", made.name)
        peer = ("peer", "name", "eth0", "netns", made.name)
        _ip("-n", self.switch, "link", "add", made.port, "type", "veth", *peer)
        _ip("-n", self.switch, "link", "set", made.port, "master", "br0", "up")
        _ip("-n", made.name, "addr", "add", f"{made.address}/24", "dev", "eth0")
        _ip("-n", made.name, "link", "set", "eth0", "up")
        _ip("-n", made.name, "link", "set", "lo", "up")
        return made

    def remove(self) -> None:
        """Kill every host's processes and delete every namespace and link; idempotent."""
        for made in self.hosts:
            for pid in made.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            _ip("netns", "del", made.name, check=False)
        _ip("link", "del", f"awv{self.token}h", check=False)
        _ip("netns", "del", self.switch, check=False)


@contextmanager
def network() -> Iterator[Network]:
    """A switch with this host on it; every host added is removed when the context ends."""
    token = secrets.token_hex(3)
    subnet = f"10.200.{_free_subnet()}"
    made = Network(token, subnet, f"{subnet}.1")
    try:
        _ip("netns", "add", made.switch)
        _ip("-n", made.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", made.switch, "link", "set", "br0", "up")
        outside = f"awv{token}h"
        _ip("link", "add", outside, "type", "veth", "peer", "name", "p1", "netns", made.switch)
        _ip("-n", made.switch, "link", "set", "p1", "master", "br0", "up")
        _ip("addr", "add", f"{made.here}/24", "dev", outside)
        _ip("link", "set", outside, "up")
        yield made
    finally:
        made.remove()
