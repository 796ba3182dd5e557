"""The job commands of ``actorwork``: demo, scheduler, pool, submit, status, cancel,
retry, delete, schedules, ping. :mod:`actorwork.cli.main` parses the arguments and
configures logging; each command here takes the parsed arguments and the loaded configuration.

What a person reads goes to stdout; the structured logs go to stderr. With ``--json``
(submit, status, schedules) stdout holds one JSON document and nothing else: jobs as
their :class:`~actorwork.messages.JobView` fields, a result's value decoded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import anyio
import msgspec

from actorwork._log import get_logger
from actorwork.cli.events import events_command
from actorwork.config import Config
from actorwork.errors import ActorworkError, ConfigError, JobFailed, JobNotFound, StoreInUse
from actorwork.messages import AttemptRecord, DrainPool, JobView, ScheduleView
from actorwork.runtime import ActorRef
from actorwork.schedules import Schedule, next_fire_times, schedule
from actorwork.stores import JobStore, open_store
from actorwork.topology import JobSystem, drain_pools, start_pools, start_scheduler
from actorwork.work import default_registry
from actorwork.workflow import WorkflowView, depth, workflow_view

__all__ = ["COMMANDS", "format_job"]

log = get_logger("actorwork.cli")

Command = Callable[[argparse.Namespace, Config], Awaitable[int]]

#: Jobs read per page when listing from the store directly.
_PAGE = 500


def _import_works(config: Config) -> None:
    """Import ``[jobs] modules``; one that cannot be imported is a ConfigError naming it."""
    for module in config.jobs.modules:
        try:
            default_registry.import_modules([module])
        except ValueError as exc:
            raise ConfigError(
                f"{config.source}: jobs.modules: cannot import {module!r}: {exc.__cause__ or exc}"
            ) from exc


async def _serve_until_signal(serve: Callable[[], Awaitable[int]]) -> int:
    """Run ``serve`` until it returns, or until SIGINT or SIGTERM stops it (then 0).

    The signals are caught from the start, so one that arrives while ``serve`` starts
    (a Scheduler in standby, say) stops it too. ``serve`` opens and closes what it
    uses itself, so a signal unwinds it in order; an error it raises comes out as it
    is, not inside an exception group, for :func:`actorwork.cli.main.main` to print.
    """
    outcome: list[int | ActorworkError] = []
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                try:
                    outcome.append(await serve())
                except ActorworkError as exc:
                    outcome.append(exc)
                tg.cancel_scope.cancel()

            async def until_signal() -> None:
                async for signum in signals:
                    log.info("stopping", signal=signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(until_signal)
            tg.start_soon(run)
    if not outcome:
        return 0  # stopped by a signal
    if isinstance(outcome[0], ActorworkError):
        raise outcome[0]
    return outcome[0]


async def scheduler_command(args: argparse.Namespace, config: Config) -> int:
    """Run the Scheduler at ``[scheduler] address`` until SIGINT or SIGTERM (exit 0).

    While another Scheduler leads the same store it waits in standby. Exits 3 if it
    finds itself taken over (it was paused past its lease), or steps down because its
    store could not commit: a supervisor that starts it again puts it back in standby,
    or in the lead with what the store holds.
    """
    _import_works(config)

    async def serve() -> int:
        async with AsyncExitStack() as stack:
            scheduler = await start_scheduler(stack, config)
            log.info(
                "scheduler_listening",
                address=scheduler.system.address,
                store=scheduler.store.path,
            )
            await scheduler.deposed.wait()
            return 3

    return await _serve_until_signal(serve)


async def schedules_command(args: argparse.Namespace, config: Config) -> int:
    """List the cron schedules with their next fire times, or enable, disable or
    remove one; ``--offline`` lists the config's without a Scheduler."""
    if args.offline:
        now = dt.datetime.now(dt.UTC)
        views = [  # no fence yet: no Scheduler ran it (not shown)
            ScheduleView(
                schedule=s,
                source="config",
                fence=0.0,
                next_fires=[t.timestamp() for t in next_fire_times(s, now, args.count)],
            )
            for s in config.schedule_list()
        ]
        _print_schedules(views, args.json, empty="no schedules in the config")
        return 0
    if args.action != "list" and not args.name:
        raise ConfigError(f"actorwork schedules {args.action} needs a schedule name")
    new = _new_schedule(args) if args.action == "add" else None
    async with JobSystem(config, pools=False) as jobs:
        client = jobs.client
        assert client is not None
        if new is not None:
            views = [await client.add_schedule(new)]
        elif args.action == "remove":
            await client.remove_schedule(args.name)
            _print_json({"removed": args.name}) if args.json else print(f"removed {args.name}")
            return 0
        elif args.action in ("enable", "disable"):
            views = [await client.enable_schedule(args.name, args.action == "enable")]
        else:
            views = await client.schedules(count=args.count)
        _print_schedules(views, args.json, empty="no schedules")
        return 0


def _new_schedule(args: argparse.Namespace) -> Schedule:
    """The schedule ``actorwork schedules add NAME WORK CRON [options]`` describes."""
    if not args.work or not args.cron:
        raise ConfigError("actorwork schedules add needs NAME WORK CRON")
    payload = _json_argument("--payload", args.payload)
    return schedule(
        args.name,
        args.work,
        args.cron,
        payload=payload,
        timezone=args.timezone,
        missed=args.missed,
        overlap=args.overlap,
    )


def _print_schedules(views: list[ScheduleView], as_json: bool, *, empty: str) -> None:
    if as_json:
        _print_json([_schedule_json(view) for view in views])
        return
    if not views:
        print(empty)
    for view in views:
        upcoming = [dt.datetime.fromtimestamp(t, dt.UTC) for t in view.next_fires]
        print(_schedule_line(view.schedule, view.source, upcoming))


def _schedule_json(view: ScheduleView) -> dict[str, Any]:
    shown: dict[str, Any] = msgspec.to_builtins(view.schedule)
    shown["payload"] = msgspec.msgpack.decode(view.schedule.payload)
    shown["source"] = view.source
    shown["next_fires"] = [
        dt.datetime.fromtimestamp(t, dt.UTC).isoformat() for t in view.next_fires
    ]
    return shown


def _json_argument(option: str, text: str | None) -> Any:
    try:
        return None if text is None else msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ActorworkError(f"{option} {text!r} is not JSON: {exc}") from exc


def _print_json(document: Any) -> None:
    sys.stdout.write(msgspec.json.encode(document).decode() + "\n")


def job_json(view: JobView, attempts: list[AttemptRecord] | None = None) -> dict[str, Any]:
    """A job as plain JSON data: its view's fields, the result's value decoded."""
    shown: dict[str, Any] = msgspec.to_builtins(view)
    if view.result is not None:
        value = view.result.value
        shown["result"]["value"] = None if value is None else msgspec.msgpack.decode(value)
        shown["result"]["artifacts"] = [
            {"name": a.name, "size": len(a.data) or a.size} for a in view.result.artifacts
        ]
    if attempts is not None:
        shown["attempts"] = [
            {
                "attempt": record.result.attempt,
                "outcome": record.result.outcome,
                "error": record.result.error,
                "committed": record.committed,
                "note": record.note,
            }
            for record in attempts
        ]
    return shown


def _schedule_line(schedule: Schedule, source: str, upcoming: list[dt.datetime]) -> str:
    zone = ZoneInfo(schedule.timezone)
    times = ", ".join(t.astimezone(zone).strftime("%a %Y-%m-%d %H:%M:%S %Z") for t in upcoming)
    state = "" if schedule.enabled else " (disabled)"
    return (
        f"{schedule.name:<20} {schedule.cron!r:<18} {schedule.timezone:<16} "
        f"{schedule.work} [{source}]{state}\n    next: {times or '-'}"
    )


async def pool_command(args: argparse.Namespace, config: Config) -> int:
    """Run the configured pools (all, or those named) until SIGINT or SIGTERM (exit 0).

    The first signal drains them: no new work, running jobs get their pool's
    ``grace`` (or ``--grace``) to finish, the rest is handed back. A second signal
    hands back at once.
    """
    _import_works(config)
    names = args.pools or list(config.pools)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with AsyncExitStack() as stack:
            system = await start_pools(stack, config, names)
            log.info("pools_running", pools=names)
            async for signum in signals:
                log.info("draining", signal=signal.Signals(signum).name)
                break
            async with anyio.create_task_group() as tg:
                tg.start_soon(_escalate, signals, [system.ref(name) for name in names])
                replies = await drain_pools(system, config, names, grace=args.grace)
                tg.cancel_scope.cancel()
            for name, reply in replies.items():
                if reply is not None:
                    log.info("drained", pool=name, **msgspec.structs.asdict(reply))
    return 0


async def _escalate(signals: AsyncIterator[signal.Signals], pools: Sequence[ActorRef]) -> None:
    async for signum in signals:
        log.warning("stopping_now", signal=signal.Signals(signum).name)
        for pool in pools:
            await pool.tell(DrainPool(0.0))
        return


async def submit_command(args: argparse.Namespace, config: Config) -> int:
    """Submit one job; with ``--wait`` wait for it (exit 1 unless it succeeded)."""
    payload = _json_argument("payload", args.payload)
    inline = config.jobs.topology != "distributed"
    async with JobSystem(config, pools=args.wait or not inline) as jobs:
        handle = await jobs.submit(
            args.work,
            payload,
            queue=args.queue,
            priority=args.priority,
            retries=args.retries,
            timeout=args.timeout,
            unique_key=args.unique_key,
            delay=args.delay,
            at=args.at,
            job_id=args.job_id,
        )
        view = await handle.wait() if args.wait else None
        if args.json:
            shown = {"id": handle.id, "created": handle.created}
            _print_json(shown if view is None else {**shown, "job": job_json(view)})
        else:
            print(f"job {handle.id} {'submitted' if handle.created else 'already exists'}")
            if view is not None:
                print(format_job(view, logs=True))
            elif inline:
                print("  (inline topology: it runs the next time this config runs its pools)")
        return 0 if view is None or view.status == "succeeded" else 1


async def status_command(args: argparse.Namespace, config: Config) -> int:
    """One job with its logs, or the latest jobs. While another process runs the
    Scheduler of an inline or local store, they are read from the store directly."""
    try:
        async with JobSystem(config, pools=False) as jobs:
            assert jobs.client is not None
            await _show_status(args, jobs.client)
            return 0
    except StoreInUse as exc:
        log.info("reading_the_store_directly", reason=str(exc))
    store = open_store(config.scheduler.store_url, read_only=True)
    await store.open()
    try:
        await _show_status(args, _StoredJobs(store))
        return 0
    finally:
        await store.aclose()


class _JobQueries(Protocol):
    async def get(self, job_id: str) -> JobView: ...

    async def attempts(self, job_id: str) -> list[AttemptRecord]: ...

    def iter_jobs(
        self, *, status: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> AsyncIterator[JobView]: ...

    async def workflow(self, workflow_id: str) -> WorkflowView: ...


class _StoredJobs:
    """The queries of a Client, answered from a store read directly."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def get(self, job_id: str) -> JobView:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} in the store {self.store.path!r}")
        return job.view()

    async def attempts(self, job_id: str) -> list[AttemptRecord]:
        return [AttemptRecord(*row) for row in await self.store.attempts(job_id)]

    async def workflow(self, workflow_id: str) -> WorkflowView:
        found: list[JobView] = []
        before: int | None = None
        while True:
            page = await self.store.find(
                status=None, queue=None, limit=_PAGE, before=before, workflow=workflow_id
            )
            found += [job.view() for job in page]
            if len(page) < _PAGE:
                break
            before = page[-1].seq
        if not found:
            raise JobNotFound(
                f"no job or workflow {workflow_id!r} in the store {self.store.path!r}"
            )
        return workflow_view(workflow_id, found[::-1])

    async def iter_jobs(
        self, *, status: str | None = None, queue: str | None = None, limit: int | None = None
    ) -> AsyncIterator[JobView]:
        """Jobs newest first, read a page at a time."""
        before: int | None = None
        left = limit
        while left is None or left > 0:
            size = _PAGE if left is None else min(_PAGE, left)
            page = await self.store.find(status=status, queue=queue, limit=size, before=before)
            for job in page:
                yield job.view()
            if len(page) < size:
                return
            if left is not None:
                left -= len(page)
            before = page[-1].seq


async def _show_status(args: argparse.Namespace, jobs: _JobQueries) -> None:
    if args.job_id:
        try:
            view = await jobs.get(args.job_id)
        except JobNotFound as missing:
            try:
                tree = await jobs.workflow(args.job_id)
            except JobNotFound:
                raise missing from None
            if args.json:
                _print_json(msgspec.to_builtins(tree))
            else:
                print(format_workflow(tree))
            return
        attempts = await jobs.attempts(args.job_id)
        if args.json:
            _print_json(job_json(view, attempts))
        else:
            print(format_job(view, logs=True, attempts=attempts))
        return
    views = jobs.iter_jobs(status=args.only, queue=args.queue, limit=args.limit)
    if args.json:
        _print_json([job_json(view) async for view in views])
        return
    shown = 0
    async for view in views:
        print(_summary(view))
        shown += 1
    if not shown:
        print("no jobs")


async def ping_command(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 once the Scheduler answers; 1, saying why, if it does not within
    ``--timeout`` seconds. With an inline or local config this process starts the
    Scheduler itself, so it answers unless another process leads its store."""
    address = ", ".join(config.scheduler.addresses)
    try:
        async with JobSystem(config, pools=False) as jobs:
            took = await jobs.ping(timeout=args.timeout)
    except ActorworkError as exc:
        print(
            f"actorwork: the Scheduler at {address!r} did not answer within "
            f"{args.timeout:g} s: {exc}",
            file=sys.stderr,
        )
        return 1
    print(f"the Scheduler at {address} answered in {took * 1000:.1f} ms")
    return 0


def _verb(name: str) -> Command:
    async def command(args: argparse.Namespace, config: Config) -> int:
        async with JobSystem(config, pools=False) as jobs:
            client = jobs.client
            assert client is not None
            view = await getattr(client, name)(args.job_id)
            print(_summary(view))
            return 0

    command.__doc__ = f"{name.capitalize()} one job."
    return command


async def demo_command(args: argparse.Namespace, config: Config) -> int:
    """Background jobs on the embedded defaults: results, retries, logs and artifacts."""
    from actorwork.cli.demo import Invoice, divide, flaky, invoice

    print(f"actorwork demo: an inline job system (store {config.scheduler.store})\n")
    async with JobSystem(config) as jobs:
        handles = [
            await jobs.submit(invoice, Invoice("ada", [12.5, 7.25, 30.0])),
            await jobs.submit(flaky, 2),
            await jobs.submit(divide, {"a": 1, "b": 0}),
        ]
        try:
            await jobs.submit("demo.invoice", {"customer": "grace", "items": "none"})
        except ActorworkError as exc:
            print(f"refused at submit, nothing queued:\n  {exc}\n")
        for handle in handles:
            view = await handle.wait(timeout=60)
            print(format_job(view, logs=True, attempts=await handle.client.attempts(handle.id)))
            print()
        saved = _save_artifacts(handles[0].id, await handles[0].view(), config)
        if saved:
            print(f"artifact saved: {saved}")
        try:
            await handles[2].result()
        except JobFailed as exc:
            print(f"awaiting a dead job's result raises JobFailed:\n  {exc}")
        if getattr(args, "dashboard", False):
            await _demo_dashboard(jobs, args.address)
    return 0


async def _demo_dashboard(jobs: JobSystem, address: str) -> None:
    """Serve the dashboard over the demo's job system until SIGINT or SIGTERM."""
    from actorwork.cli.api import parse_address, serve
    from actorwork.web import Security, create_app
    from actorwork.web.security import LOOPBACK_HOSTS, is_loopback

    host, port = parse_address(address)
    if not is_loopback(host):
        raise ConfigError(f"--address {address!r}: the demo's dashboard serves loopback only")
    app = create_app(jobs.client, security=Security(allowed_hosts=(*LOOPBACK_HOSTS, host)))
    print("the job system keeps running; SIGINT or SIGTERM stops it")
    await serve(app, host, port)


def _save_artifacts(job_id: str, view: JobView, config: Config) -> Path | None:
    if view.result is None or not view.result.artifacts:
        return None
    folder = Path(config.scheduler.store).parent / "artifacts" / job_id
    folder.mkdir(parents=True, exist_ok=True)
    for artifact in view.result.artifacts:
        (folder / artifact.name).write_bytes(artifact.data)
    return folder / view.result.artifacts[0].name


def _time(stamp: float) -> str:
    moment = _moment(stamp)
    return repr(stamp) if moment is None else moment.strftime("%H:%M:%S.%f")[:-3]


def _when(stamp: float) -> str:
    moment = _moment(stamp)
    return repr(stamp) if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _moment(stamp: float) -> dt.datetime | None:
    """The local time of a timestamp; None for one no calendar holds (a store written
    before times were bounded may keep a due time of 1e308)."""
    try:
        return dt.datetime.fromtimestamp(stamp).astimezone()
    except (OverflowError, ValueError, OSError):
        return None


def _summary(view: JobView) -> str:
    return (
        f"{view.id}  {view.status:<9}  {view.work:<16}  queue={view.queue}  "
        f"attempt {view.attempt}/{view.max_attempts}  {_time(view.updated)}"
        + (f"  due {_when(view.due)}" if view.due is not None else "")
        + (f"  ({view.waiting})" if view.waiting else "")
        + (f"  error: {view.error}" if view.error else "")
    )


def format_workflow(tree: WorkflowView) -> str:
    """A workflow as a person reads it: one line per node, indented by its depth, with
    its status, attempts and how long it ran (or since when it runs)."""
    lines = [f"workflow {tree.id}  {tree.name}  {tree.status}  (on failure: {tree.policy})"]
    width = max((2 * depth(node.path) + len(node.path) for node in tree.nodes), default=0)
    for node in tree.nodes:
        label = "  " * depth(node.path) + node.path
        if node.seconds is not None:
            took = f"{node.seconds:.2f}s"
        elif node.started is not None:
            took = f"since {_time(node.started)}"
        else:
            took = "-"
        line = f"  {label:<{width}}  {node.status:<9}  {took:>8}  attempts={node.attempts}"
        if node.error and node.status != "succeeded":
            line += f"  {node.error.splitlines()[0][:120]}"
        lines.append(line)
    return "\n".join(lines)


def format_job(
    view: JobView, *, logs: bool = False, attempts: list[AttemptRecord] | None = None
) -> str:
    """A job as a person reads it: status, attempts, value or error, logs, artifacts."""
    lines = [f"job {view.id}  work={view.work}  queue={view.queue}  priority={view.priority}"]
    lines.append(f"  status   {view.status} after attempt {view.attempt} of {view.max_attempts}")
    if view.due is not None:
        lines.append(f"  due      {_when(view.due)}")
    if view.depends_on:
        parents = ", ".join(view.depends_on)
        lines.append(f"  after    {parents} (runs when they {view.when})")
    if view.waiting:
        lines.append(f"  waiting  {view.waiting}")
    if view.workflow:
        lines.append(f"  node     {view.path} of workflow {view.workflow}")
    earlier = [a for a in attempts or [] if a.result.attempt != view.attempt or not a.committed]
    if earlier:
        lines.append("  earlier attempts:")
        for record in earlier:
            past = record.result
            why = "" if record.committed else f"  (not committed: {record.note})"
            lines.append(f"    #{past.attempt} {past.outcome:<9} {past.error or '-'}{why}".rstrip())
    result = view.result
    if view.progress is not None:
        lines.append(f"  progress {view.progress:.0%} {view.progress_message}".rstrip())
    if result is not None:
        took = max(0.0, result.finished - result.started)
        lines.append(f"  ran      {_time(result.started)} for {took * 1000:.1f} ms")
        if result.value is not None and result.outcome == "succeeded":
            lines.append(f"  value    {msgspec.msgpack.decode(result.value)!r}")
    if view.error:
        lines.append(f"  error    {view.error}")
    if result is not None and result.traceback:
        last = result.traceback.strip().splitlines()
        lines.append("  traceback (last lines):")
        lines += [f"    {line}" for line in last[-3:]]
    if logs and result is not None and result.logs:
        lines.append("  logs:")
        for line in result.logs:
            fields = " ".join(
                f"{k}={v!r}" for k, v in line.fields.items() if k not in ("job_id", "work")
            )
            stamp = _time(line.time)
            lines.append(
                f"    {stamp} {line.source:<7} {line.level:<7} {line.text} {fields}".rstrip()
            )
    if result is not None and result.artifacts:
        shown = ", ".join(f"{a.name} ({len(a.data) or a.size} bytes)" for a in result.artifacts)
        lines.append(f"  artifacts {shown}")
    return "\n".join(lines)


COMMANDS: dict[str, Command] = {
    "events": events_command,
    "demo": demo_command,
    "scheduler": scheduler_command,
    "pool": pool_command,
    "submit": submit_command,
    "status": status_command,
    "cancel": _verb("cancel"),
    "retry": _verb("retry"),
    "delete": _verb("delete"),
    "schedules": schedules_command,
    "ping": ping_command,
}
