"""A Scheduler's own tasks: the tick, the renewal of its leader lease, and pruning.

A mixin of :class:`~actorwork.scheduler.actor.Scheduler`. The tick feeds the clock to
the pure state (leases, retries, due jobs), fires cron schedules, ends waits that ran
out and renews the leader lease (:mod:`actorwork.scheduler.leadership`) every third of
it; a lease not renewed in time makes the Scheduler step down, since a standby may lead
by then. Pruning forgets finished jobs past their retention, a batch at a time.
"""

from __future__ import annotations

import time

import anyio

from actorwork.errors import ActorworkError, LeadershipLost
from actorwork.scheduler.commits import log
from actorwork.scheduler.queries import Answers
from actorwork.scheduler.state import Forget
from actorwork.stores.base import Retention
from actorwork.work import WorkRegistry

__all__ = ["Upkeep"]


class Upkeep(Answers):
    """A Scheduler's background tasks; see the module docstring."""

    # Set by Scheduler.__init__, where each is described.
    registry: WorkRegistry
    retention: Retention
    tick: float
    _pruned: set[str]
    _lease_until: float
    _loop_lag: float

    async def _tick_forever(self) -> None:
        renew_at = time.monotonic() + self.leader_lease / 3
        while not self.deposed.is_set():
            woke = time.monotonic() + self.tick
            await anyio.sleep(self.tick)
            self._loop_lag = max(0.0, time.monotonic() - woke)
            now = self.clock()
            self._apply(self.state.tick(now), None)
            due = self.cron.next_due()
            if self._cron_now or (due is not None and due <= now.wall):
                self._cron_now = False
                self._apply(self.cron.tick(now), None)
            self._expire_waiters(now)
            self._waiters.compact()
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self.leader_lease / 3
                await self._renew()
            if time.monotonic() >= self._lease_until and not self.deposed.is_set():
                # A standby may lead by now: stand down before two act as leader.
                reason = f"its lease was not renewed within leader_lease={self.leader_lease:g} s"
                await self._step_down(reason, [])
                return

    async def _prune_forever(self) -> None:
        while not self.deposed.is_set():
            await anyio.sleep(self.retention.interval)
            try:
                # A full batch means more is expired: the next one at once (each waits
                # on the store, so other work runs in between).
                while await self.prune() == self.retention.batch:
                    pass
                await self.store.reclaim()
            except LeadershipLost as exc:
                self._depose(str(exc))
            except ActorworkError as exc:
                log.warning("prune_failed", error=str(exc))

    async def prune(self) -> int:
        """Forget one batch of finished jobs past their retention; how many it forgot.

        The store chooses them (reading only); those live here — retried since — are
        left out, and the store deletes a job only if its row is still terminal.
        """
        rules = self.retention.rules(self.registry.get(name) for name in self.registry.names())
        now = self.clock()
        expired = await self.store.expired(rules, now.wall, self.retention.batch)
        forgotten = [job_id for job_id in expired if job_id not in self.state.jobs]
        self._pruned = set(forgotten)
        if forgotten:
            await self.store.apply([Forget(job_id) for job_id in forgotten])
            for job_id in forgotten:
                self._recent.pop(job_id, None)
            log.debug("pruned", jobs=len(forgotten))
        return len(forgotten)

    async def _renew(self) -> None:
        epoch = self.store.epoch
        if epoch is None:
            return
        # The store counts the lease from when it reads the renewal, after this: the
        # lease as this Scheduler counts it ends no later than the store's.
        asked = time.monotonic()
        try:
            renewed = await self.store.renew(epoch, asked + self.leader_lease)
        except ActorworkError as exc:
            log.warning("leader_lease_not_renewed", error=str(exc))
            return
        if not renewed:
            self._depose(f"epoch {epoch} was taken over")
        else:
            self._lease_until = asked + self.leader_lease
