"""Find the one actor among several addresses that serves, following redirects.

Several Schedulers may be started on one store, each listening at an address of its
own: the one that leads answers :class:`~actorwork.messages.Ping` with
:class:`~actorwork.messages.Pong`, the others with
:class:`~actorwork.messages.NotLeaderReply` naming the leader's address if they know
it. :func:`find_leader` asks the addresses in order, going to a named leader first,
and returns the ref of the one that answered Pong; Pools and clients call it again
when their link to the leader is lost, so they follow the leader wherever it moves.

Addresses are written as one address, several in a list, or several in one string
separated by commas (:func:`split_addresses`). A ``tcp://`` name that resolves to
several IP addresses (a DNS name with several A or AAAA records) stands for one
Scheduler at each (:func:`resolve_addresses`), asked in the resolver's order; the name
is resolved again at each search, so records changed since are followed. Connected to
by IP address, such a Scheduler's TLS certificate is checked against the transport's
``server_hostname`` (``[system.tls] server_hostname``) if set, else against the IP address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from collections.abc import Sequence

import anyio

from actorwork._log import get_logger
from actorwork.addressing import format_address, parse_address, split_host_port
from actorwork.errors import ActorworkError, AddressError, HandshakeError, NoLeader
from actorwork.messages import NotLeaderReply, Ping, Pong
from actorwork.runtime.ref import RemoteRef
from actorwork.runtime.system import ActorSystem

__all__ = ["find_leader", "resolve_addresses", "split_addresses"]

log = get_logger(__name__)

#: What the probe carries, so a leader's Pong is told from any other.
_PROBE = b"leader?"


def split_addresses(addresses: str | Sequence[str]) -> list[str]:
    """``"tcp://a:7400, tcp://b:7400"`` or a list of them, as a list without blanks."""
    items = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    found = [item.strip() for item in items if item.strip()]
    if not found:
        raise ValueError(f"no Scheduler address in {addresses!r}")
    return found


async def resolve_addresses(addresses: Sequence[str]) -> list[str]:
    """``addresses`` with each ``tcp://NAME:PORT`` whose name resolves to several IP
    addresses replaced by ``tcp://IP:PORT`` for each, in the resolver's order.

    Any other address, a name that resolves to one IP address, and one that does not
    resolve (its connect says why) are kept as written.
    """
    found: list[str] = []
    for address in addresses:
        for each in await _resolve(address):
            if each not in found:
                found.append(each)
    return found


async def _resolve(address: str) -> list[str]:
    try:
        parsed = parse_address(address)
        if parsed.scheme != "tcp":
            return [address]
        host, port = split_host_port(parsed)
    except AddressError:
        return [address]  # the transport's connect names what is wrong with it
    if _is_ip(host):
        return [address]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        log.debug("scheduler_name_unresolved", address=address, error=str(exc))
        return [address]
    ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(ips) < 2:
        return [address]
    log.debug("scheduler_name_resolved", address=address, ips=ips)
    return [format_address("tcp", f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}") for ip in ips]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def find_leader(
    system: ActorSystem, addresses: Sequence[str], name: str, *, timeout: float
) -> RemoteRef:
    """The ref of actor ``name`` at the first of ``addresses`` that leads.

    Each address (a name resolving to several IP addresses: each of them, see
    :func:`resolve_addresses`) is tried once, each ask given ``timeout`` seconds; a leader named by
    a standby is tried next, even when it is not in ``addresses``. A refused
    handshake (wrong secret, TLS) is raised at once; otherwise, when none leads,
    :class:`NoLeader` names what each address answered.
    """
    tried: set[str] = set()
    queue = deque(await resolve_addresses(addresses))
    answers: list[str] = []
    standbys = False
    while queue:
        address = queue.popleft()
        if address in tried:
            continue
        tried.add(address)
        try:
            ref = await system.remote(address, name)
            reply = await ref.ask(Ping(_PROBE), timeout=timeout)
        except HandshakeError:
            raise
        except ActorworkError as exc:
            answers.append(f"{address}: {exc}")
            continue
        if isinstance(reply, Pong):
            return ref
        if isinstance(reply, NotLeaderReply):
            standbys = True
            answers.append(f"{address}: in standby (leader: {reply.leader or 'unknown'})")
            if reply.leader and reply.leader not in tried:
                queue.appendleft(reply.leader)
            log.debug("scheduler_redirected", address=address, leader=reply.leader)
        else:
            answers.append(f"{address}: answered {type(reply).__name__}")
    raise NoLeader(
        f"no Scheduler leads at {list(addresses)!r}: {'; '.join(answers)}", standbys=standbys
    )
