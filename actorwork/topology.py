"""One config file, three topologies, the same user code.

::

    async with JobSystem(load_config()) as jobs:
        handle = await jobs.submit(add, {"x": 1, "y": 2})
        print(await handle.result())

With ``[jobs] topology = "inline"`` (the default) the Scheduler, every Pool and every
worker run in this process, each role in an actor system of its own, reached over
``inproc://`` — the same messages, encoded and decoded as between hosts, so a
debugger steps from submit to result in one process. ``local`` does the same with
``process`` pools allowed (workers in child processes). ``distributed`` starts
nothing: this process connects to the Scheduler's address, where ``actorwork
scheduler`` listens, and Pools run as ``actorwork pool`` wherever they are.

:func:`run_scheduler` and :func:`run_pools` are those two commands' bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Self

from anyio.abc import AsyncResource

from actorwork.client import Client, JobHandle
from actorwork.clock import Now, system_now
from actorwork.config import Config
from actorwork.errors import ConfigError
from actorwork.node import system_from_settings
from actorwork.pool.actor import Pool
from actorwork.runtime import ActorSystem
from actorwork.scheduler.actor import Scheduler
from actorwork.scheduler.leadership import lead
from actorwork.scheduler.state import Backoff
from actorwork.stores import open_store
from actorwork.work import default_registry

__all__ = ["JobSystem", "start_pools", "start_scheduler"]


async def start_scheduler(
    stack: AsyncExitStack,
    config: Config,
    *,
    standby: bool = True,
    clock: Callable[[], Now] = system_now,
) -> Scheduler:
    """The Scheduler, running in an actor system that listens at its address.

    The store is opened and led first (:mod:`actorwork.scheduler.leadership`): a Scheduler in
    standby, waiting for another to stop leading the same store, does not listen yet,
    so several may be started on one address. ``standby=False`` refuses at once
    (StoreError) when another Scheduler leads the store.
    """
    settings = config.scheduler
    store = open_store(settings.store, synchronous=settings.synchronous)
    await store.open()
    stack.push_async_callback(store.aclose)
    scheduler = Scheduler(
        store=store,
        lease=settings.lease,
        backoff=Backoff(base=settings.retry_base, cap=settings.retry_cap),
        modules=config.jobs.modules,
        schedules=config.schedule_list(),
        leader_lease=settings.leader_lease,
        retention=config.retention.policy(),
        clock=clock,
    )
    await lead(store, lease=settings.leader_lease, holder=scheduler.holder, wait=standby)
    system = await stack.enter_async_context(
        system_from_settings(config.system, name="scheduler", listen=settings.address)
    )
    await system.spawn(scheduler, name="scheduler")
    return scheduler


async def start_pools(
    stack: AsyncExitStack,
    config: Config,
    names: list[str] | None = None,
    *,
    clock: Callable[[], Now] = system_now,
) -> ActorSystem:
    """An actor system running the configured pools (all, or ``names``), reading ``clock``."""
    chosen = names or list(config.pools)
    unknown = [name for name in chosen if name not in config.pools]
    if unknown:
        known = ", ".join(sorted(config.pools)) or "none"
        raise ConfigError(f"{config.source}: no pool named {unknown[0]!r} (configured: {known})")
    system = await stack.enter_async_context(system_from_settings(config.system, name="pools"))
    lease = config.scheduler.lease
    for name in chosen:
        settings = config.pools[name]
        await system.spawn(
            Pool(
                scheduler=config.scheduler.address,
                outbox=settings.outbox_path(name),
                kind=settings.kind,  # type: ignore[arg-type]
                size=settings.size,
                queues=settings.queues,
                modules=config.jobs.modules,
                heartbeat=settings.heartbeat or lease / 3,
                containers=settings.container_options() if settings.kind == "docker" else None,
                clock=clock,
            ),
            name=name,
        )
    return system


class JobSystem(AsyncResource):
    """The job system as the configuration lays it out; submit and follow jobs through it.

    ``clock`` is where the Scheduler and the Pools it starts read the time (the
    system's clocks unless a test injects one, as :mod:`actorwork.testing` does).
    """

    def __init__(
        self, config: Config, *, pools: bool = True, clock: Callable[[], Now] = system_now
    ) -> None:
        self.config = config
        self.clock = clock
        #: False starts only the Scheduler (inline and local): for queries and submits
        #: whose jobs are left for the next run with pools. Such a job system does not
        #: wait for another Scheduler on its store: that is a StoreError naming it.
        self.run_pools = pools
        self.client: Client | None = None
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        config = self.config
        default_registry.import_modules(config.jobs.modules)
        async with AsyncExitStack() as stack:  # unwinds what started if a later part fails
            if config.jobs.topology in ("inline", "local"):
                scheduler = await start_scheduler(
                    stack, config, standby=self.run_pools, clock=self.clock
                )
                system = scheduler.system
                if self.run_pools:
                    system = await start_pools(stack, config, clock=self.clock)
            else:
                system = await stack.enter_async_context(
                    system_from_settings(config.system, name="client")
                )
            self.client = await stack.enter_async_context(Client(system, config.scheduler.address))
            self._stack = stack.pop_all()
        return self

    async def aclose(self) -> None:
        """Stop the pools, then the Scheduler (pending commits finish). Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(None, None, None)

    def _client(self) -> Client:
        if self.client is None:
            raise RuntimeError("the job system is not running; use 'async with JobSystem(...)'")
        return self.client

    async def submit(self, work: Any, payload: Any = None, **options: Any) -> JobHandle:
        """See :meth:`Client.submit`."""
        return await self._client().submit(work, payload, **options)
