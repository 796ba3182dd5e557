"""Find the one actor among several addresses that serves, following redirects.

Several Schedulers may be started on one store, each listening at an address of its
own: the one that leads answers :class:`~actorwork.messages.Ping` with
:class:`~actorwork.messages.Pong`, the others with
:class:`~actorwork.messages.NotLeaderReply` naming the leader's address if they know
it. :func:`find_leader` asks the addresses in order, going to a named leader first,
and returns the ref of the one that answered Pong; Pools and clients call it again
when their link to the leader is lost, so they follow the leader wherever it moves.

Addresses are written as one address, several in a list, or several in one string
separated by commas (:func:`split_addresses`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from actorwork._log import get_logger
from actorwork.errors import ActorworkError, HandshakeError, NoLeader
from actorwork.messages import NotLeaderReply, Ping, Pong
from actorwork.runtime.ref import RemoteRef
from actorwork.runtime.system import ActorSystem

__all__ = ["find_leader", "split_addresses"]

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


async def find_leader(
    system: ActorSystem, addresses: Sequence[str], name: str, *, timeout: float
) -> RemoteRef:
    """The ref of actor ``name`` at the first of ``addresses`` that leads.

    Each address is tried once, each ask given ``timeout`` seconds; a leader named by
    a standby is tried next, even when it is not in ``addresses``. A refused
    handshake (wrong secret, TLS) is raised at once; otherwise, when none leads,
    :class:`NoLeader` names what each address answered.
    """
    tried: set[str] = set()
    queue = deque(addresses)
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
