"""Which Scheduler leads a store that several share.

Several Schedulers may be started on one store (on one host for SQLite; on several
for PostgreSQL), so that one takes over when another dies. Exactly one leads: it
holds a lease in the store's ``leader`` row and renews it; the others wait in
standby until the lease lapses, then the first to see that takes over with the next
epoch, loads the live jobs and the schedules, and starts. A standby given an address
of its own (``[scheduler] listen``) listens meanwhile and answers every ask with
:class:`~actorwork.messages.NotLeaderReply`, naming the address the leader advertises:
the holder string of the lease row is ``host:pid:token`` followed, after a space, by
that address (:func:`holder_name`, :func:`leader_address`).

A lease lapses when its time is up, on one clock every contender reads: SQLite's is
this host's monotonic clock (so wall-clock jumps change nothing), PostgreSQL's the
database server's, so hosts' clocks need not agree. On SQLite it lapses too when the
machine booted since, or at once when the holder's process on this host is gone (so a
Scheduler restarted after a crash does not wait out its own lease). Every
write of a leader checks its epoch in the same transaction
(:class:`~actorwork.errors.LeadershipLost`), so a leader paused past its lease and
taken over never writes again: with the fences of the schedules committed in the
same transactions, a fire time fires once (I7).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from actorwork._log import get_logger
from actorwork.errors import StoreInUse
from actorwork.stores import JobStore

__all__ = ["boot_id", "holder_name", "lead", "leader_address"]

log = get_logger(__name__)

#: Seconds between a standby's tries at most: a takeover comes this soon after a lapse.
_POLL_MAX = 0.5


def holder_name(advertise: str = "") -> str:
    """This Scheduler as the leader row names it: ``host:pid:token``, then the address
    it is reached at after a space when it advertises one."""
    name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return f"{name} {advertise}" if advertise else name


def leader_address(holder: str | None) -> str | None:
    """The address a holder string advertises, if any."""
    if not holder:
        return None
    return holder.partition(" ")[2].strip() or None


def boot_id() -> str:
    """An id of this boot of the machine: monotonic times from before it mean nothing."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"boot-at-{time.time() - time.monotonic():.0f}"


async def lead(
    store: JobStore,
    *,
    lease: float,
    holder: str,
    wait: bool = True,
    seen: Callable[[str | None], None] | None = None,
) -> int:
    """Wait until this Scheduler leads ``store``; the epoch it leads with.

    Polls a third of ``lease`` apart (at most half a second) while another Scheduler leads, logging
    ``scheduler_standby`` once with the leader's name, and telling ``seen`` the
    leader's holder string at each poll; with ``wait=False`` that is a
    :class:`StoreInUse` naming the leader instead.
    """
    if not lease > 0:
        raise ValueError(f"leader lease must be positive, got {lease!r}")
    boot = boot_id()
    standby = False
    while True:
        now = time.monotonic()
        epoch = await store.acquire(holder, now + lease, now, boot)
        if epoch is not None:
            log.info("scheduler_leading", store=store.path, epoch=epoch, holder=holder)
            return epoch
        if not wait:
            raise StoreInUse(
                f"the job store {store.path!r} is in use by the Scheduler "
                f"{await store.leader()!r}; reach that one at its address, or stop it first"
            )
        leader = await store.leader()
        if seen is not None:
            seen(leader)
        if not standby:
            standby = True
            log.info("scheduler_standby", store=store.path, leader=leader)
        await anyio.sleep(min(lease / 3, _POLL_MAX))
