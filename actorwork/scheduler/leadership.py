"""Which Scheduler leads a store that several share.

Several Schedulers may be started on one store (one host: SQLite files are not
shared across hosts), so that one takes over when another dies. Exactly one leads:
it holds a lease in the store's ``leader`` row and renews it; the others wait in
standby, without listening, until the lease lapses, then the first to see that
takes over with the next epoch, loads the live jobs and the schedules, and starts.

A lease lapses when its time is up (a monotonic clock, so wall-clock jumps change
nothing), when the machine booted since, or at once when the holder's process is
gone (so a Scheduler restarted after a crash does not wait out its own lease). Every
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
from pathlib import Path

import anyio

from actorwork._log import get_logger
from actorwork.errors import StoreInUse
from actorwork.stores import JobStore

__all__ = ["boot_id", "holder_name", "lead"]

log = get_logger(__name__)


def holder_name() -> str:
    """This Scheduler as the leader row names it: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def boot_id() -> str:
    """An id of this boot of the machine: monotonic times from before it mean nothing."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"boot-at-{time.time() - time.monotonic():.0f}"


async def lead(store: JobStore, *, lease: float, holder: str, wait: bool = True) -> int:
    """Wait until this Scheduler leads ``store``; the epoch it leads with.

    Polls a third of ``lease`` apart while another Scheduler leads, logging
    ``scheduler_standby`` once with the leader's name; with ``wait=False`` that is a
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
        if not standby:
            standby = True
            log.info("scheduler_standby", store=store.path, leader=await store.leader())
        await anyio.sleep(lease / 3)
