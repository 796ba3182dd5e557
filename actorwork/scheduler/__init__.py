"""The Scheduler: owns the queues, the clock and the store, and hands work to Pools.

:mod:`~actorwork.scheduler.actor` is the actor, a thin shell that does the I/O;
:mod:`~actorwork.scheduler.state` makes its decisions as a pure state machine (event and
``now`` in, effects out); :mod:`~actorwork.scheduler.waiters` answers long polls and
batched submits; :mod:`~actorwork.scheduler.leadership` makes one Scheduler lead a
store; :mod:`~actorwork.scheduler.cron` turns schedules into jobs, with their timing
decided in the pure :mod:`~actorwork.scheduler.cron_state`.

Both halves are split by role. The shell's parts: :mod:`~actorwork.scheduler.commits`
(the group commit), :mod:`~actorwork.scheduler.queries` (job views and lists),
:mod:`~actorwork.scheduler.operations` (operators' asks), :mod:`~actorwork.scheduler.upkeep`
(tick, leader lease, pruning) and :mod:`~actorwork.scheduler.submits` (what clients
change). The state's: :mod:`~actorwork.scheduler.pools`, :mod:`~actorwork.scheduler.graph`
(dependencies and workflows), :mod:`~actorwork.scheduler.limits`,
:mod:`~actorwork.scheduler.views` and :mod:`~actorwork.scheduler.effects`.
"""

from actorwork.scheduler.actor import Scheduler

__all__ = ["Scheduler"]
