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

from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Self

import anyio
import msgspec
from anyio.abc import AsyncResource

from actorwork._log import get_logger
from actorwork.client import Client, JobHandle
from actorwork.clock import Now, system_now
from actorwork.config import Config, PoolSettings, running, worker_environment
from actorwork.config import _check_jobs as check_jobs
from actorwork.errors import ActorworkError, ConfigError, StoreError
from actorwork.messages import DrainPool, PoolDrainedReply
from actorwork.node import system_from_settings
from actorwork.pool.actor import Pool
from actorwork.runtime import ActorSystem
from actorwork.scheduler.actor import Scheduler
from actorwork.scheduler.leadership import lead
from actorwork.scheduler.standby import Standby
from actorwork.scheduler.state import Backoff
from actorwork.stores import open_store
from actorwork.work import default_registry

__all__ = ["JobSystem", "drain_pools", "start_pools", "start_scheduler"]

log = get_logger(__name__)

#: Seconds a drain may take beyond its grace (results written and acknowledged).
_DRAIN_MARGIN = 60.0


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
    so several may be started on one address. With ``[scheduler] listen`` set it does
    listen there, each Scheduler at an address of its own, and answers with the
    leader's address (:class:`~actorwork.scheduler.standby.Standby`) until it leads.
    ``standby=False`` refuses at once (StoreError) when another Scheduler leads the store.
    """
    settings = config.scheduler
    listen = settings.listen_address
    store = open_store(settings.store_url, synchronous=settings.synchronous)
    try:
        await store.open()
    except OSError as exc:  # its directory cannot be made, say
        where = f": {exc.filename!r}" if exc.filename else ""
        raise StoreError(
            f"cannot open the job store {settings.store!r}: {exc.strerror or exc}{where}"
        ) from exc
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
        advertise=settings.advertised,
    )
    if not settings.listen:
        await lead(store, lease=settings.leader_lease, holder=scheduler.holder, wait=standby)
    system = await stack.enter_async_context(
        system_from_settings(config.system, name="scheduler", listen=listen)
    )
    if settings.listen:
        answering = Standby()
        ref = await system.spawn(answering, name="scheduler")
        await lead(
            store,
            lease=settings.leader_lease,
            holder=scheduler.holder,
            wait=standby,
            seen=answering.seen,
        )
        await system.stop(ref)
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
    stack.enter_context(running(config))  # the works' own settings (chromium) come from it
    system = await stack.enter_async_context(system_from_settings(config.system, name="pools"))
    for name in chosen:
        await _spawn_pool(system, config, name, clock)
    return system


async def _spawn_pool(
    system: ActorSystem, config: Config, name: str, clock: Callable[[], Now]
) -> None:
    settings = config.pools[name]
    await system.spawn(
        Pool(
            scheduler=config.scheduler.addresses,
            outbox=settings.outbox_path(name),
            kind=settings.kind,  # type: ignore[arg-type]
            size=settings.size,
            queues=settings.queues,
            modules=config.jobs.modules,
            heartbeat=settings.heartbeat or config.scheduler.lease / 3,
            containers=settings.container_options() if settings.kind == "docker" else None,
            clock=clock,
            environment=worker_environment(config),
        ),
        name=name,
    )


async def drain_pools(
    system: ActorSystem, config: Config, names: list[str], *, grace: float | None = None
) -> dict[str, PoolDrainedReply | None]:
    """Drain the pools ``names`` of ``system`` together, as :class:`DrainPool` says.

    They take no more work; what runs gets ``grace`` seconds (by default each pool's
    ``[pools.NAME] grace``) to finish, and the rest is handed back to the Scheduler
    (outcome ``returned``, so it runs again at once, elsewhere or at the next start).
    Returns each pool's reply, or None for a pool that did not answer (logged).
    """
    replies: dict[str, PoolDrainedReply | None] = {}

    async def drain(name: str) -> None:
        seconds = grace if grace is not None else config.pools[name].grace
        try:
            reply = await system.ref(name).ask(DrainPool(seconds), timeout=seconds + _DRAIN_MARGIN)
        except ActorworkError as exc:
            log.error("drain_failed", pool=name, error=str(exc))
            replies[name] = None
            return
        replies[name] = reply if isinstance(reply, PoolDrainedReply) else None

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(drain, name)
    return replies


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
        self._pools: ActorSystem | None = None  # drained before the stack unwinds

    async def __aenter__(self) -> Self:
        config = self.config
        default_registry.import_modules(config.jobs.modules)
        pools: ActorSystem | None = None
        async with AsyncExitStack() as stack:  # unwinds what started if a later part fails
            if config.jobs.topology in ("inline", "local"):
                scheduler = await start_scheduler(
                    stack, config, standby=self.run_pools, clock=self.clock
                )
                system = scheduler.system
                if self.run_pools:
                    system = pools = await start_pools(stack, config, clock=self.clock)
            else:
                system = await stack.enter_async_context(
                    system_from_settings(config.system, name="client")
                )
            client = Client(
                system, config.scheduler.addresses, connect_timeout=config.jobs.connect_timeout
            )
            self.client = await stack.enter_async_context(client)
            self._stack = stack.pop_all()
        self._pools = pools
        return self

    async def aclose(self) -> None:
        """Drain the pools, then stop them and the Scheduler (pending commits finish).

        Running jobs get their pool's grace to finish; the rest are handed back, so
        the next start runs them at once (not after their lease). Idempotent.
        """
        stack, self._stack = self._stack, None
        pools, self._pools = self._pools, None
        if stack is None:
            return
        try:
            if pools is not None:
                await drain_pools(pools, self.config, list(self.config.pools))
        finally:
            await stack.__aexit__(None, None, None)

    def _client(self) -> Client:
        if self.client is None:
            raise RuntimeError("the job system is not running; use 'async with JobSystem(...)'")
        return self.client

    async def submit(self, work: Any, payload: Any = None, **options: Any) -> JobHandle:
        """See :meth:`Client.submit`."""
        return await self._client().submit(work, payload, **options)

    async def submit_many(
        self, work: Any, payloads: Iterable[Any], **options: Any
    ) -> list[JobHandle]:
        """See :meth:`Client.submit_many`."""
        return await self._client().submit_many(work, payloads, **options)

    async def ping(self, *, timeout: float | None = None) -> float:
        """See :meth:`Client.ping`."""
        return await self._client().ping(timeout=timeout)

    # --- pools of a running inline or local system -------------------------------------

    def _running_pools(self) -> ActorSystem:
        if self._pools is None:
            raise ActorworkError(
                "this job system runs no pools here (started with pools=False, or its "
                f"topology is {self.config.jobs.topology!r}): run 'actorwork pool' instead"
            )
        return self._pools

    async def add_pool(self, name: str, settings: PoolSettings | Mapping[str, Any]) -> None:
        """Start one more pool in a running inline or local system.

        ``settings`` are those of a ``[pools.NAME]`` table, as :class:`PoolSettings` or
        a dict (``{"size": 4, "queues": ["pdf"]}``), checked as a config file's are: a
        ConfigError names the key and the value. The pool asks the Scheduler for work
        at once, and is drained with the others when the system closes.
        """
        system = self._running_pools()
        if name in self.config.pools:
            raise ConfigError(
                f"a pool named {name!r} is already running "
                f"(running: {', '.join(sorted(self.config.pools))})"
            )
        if isinstance(settings, Mapping):
            try:
                settings = msgspec.convert(dict(settings), PoolSettings)
            except msgspec.ValidationError as exc:
                raise ConfigError(f"add_pool({name!r}): pools.{name}: {exc}") from None
        elif not isinstance(settings, PoolSettings):
            raise ConfigError(f"add_pool({name!r}) takes PoolSettings or a dict, got {settings!r}")
        config = msgspec.structs.replace(self.config, pools={**self.config.pools, name: settings})
        try:
            check_jobs(config)
        except ConfigError as exc:
            raise ConfigError(f"add_pool({name!r}): {exc}") from None
        await _spawn_pool(system, config, name, self.clock)
        self.config = config
        log.info("pool_added", pool=name, kind=settings.kind, size=settings.size)

    async def remove_pool(
        self, name: str, *, grace: float | None = None
    ) -> PoolDrainedReply | None:
        """Drain the pool ``name`` and stop it; its reply (None if it did not answer).

        As when the system closes: it takes no more work, its running jobs get
        ``grace`` seconds (by default its ``grace`` setting) to finish, and the rest are
        handed back to the Scheduler, which runs them on the other pools at once.
        """
        system = self._running_pools()
        if name not in self.config.pools:
            known = ", ".join(sorted(self.config.pools)) or "none"
            raise ConfigError(f"no pool named {name!r} is running (running: {known})")
        replies = await drain_pools(system, self.config, [name], grace=grace)
        await system.stop(name)
        pools = {key: value for key, value in self.config.pools.items() if key != name}
        self.config = msgspec.structs.replace(self.config, pools=pools)
        log.info("pool_removed", pool=name)
        return replies[name]
