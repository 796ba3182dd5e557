"""The Pool: workers of one kind, which asks the Scheduler for work when it has room.

:mod:`~actorwork.pool.actor` is the actor, a thin shell that does the I/O;
:mod:`~actorwork.pool.state` makes its decisions as a pure state machine;
:mod:`~actorwork.pool.outbox` keeps every Work Result on disk until the Scheduler
acknowledges it; :mod:`~actorwork.pool.containers` runs workers in Docker containers.
"""

from actorwork.pool.actor import Pool

__all__ = ["Pool"]
