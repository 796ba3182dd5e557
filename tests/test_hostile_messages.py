"""F22 semantic poison: no single message wedges the Scheduler.

An authenticated peer sends the Scheduler's inbound messages with extreme fields over a
real ``unix://`` connection. Each is refused naming the field and the value, or handled,
and after each a plain submit still succeeds and a short wait still runs out.

Hostile bodies are built as plain MessagePack trees and sent raw: a Struct's
constructor checks no bounds, and a Schedule's checks everything, so neither could
make all of them.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorwork import ActorSystem, schedules
from actorwork import messages as m
from actorwork.client import Client
from actorwork.codec import Codec, Kind, check
from actorwork.errors import (
    AskTimeout,
    MessageEncodeError,
    MessageRejected,
    ProtocolError,
    RemoteActorError,
)
from actorwork.events import EventFilter, Subscribe, Unsubscribe
from actorwork.runtime import ActorRef
from actorwork.scheduler.actor import Scheduler
from actorwork.schedules import schedule
from tests.jobs import works

NOOP = works.noop.name
INTS = [2**63, 2**64 - 1, -(2**63), 2**63 - 1, 2**31, -1, 0]
FLOATS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0]
STRINGS = ["", "x" * (1 << 20), "\x00", "é" * 300]
BLOBS = [b"", b"\xff" * (1 << 20)]
HUGE_LIST_BYTES = 12 * 1024 * 1024  # under the 16 MiB frame cap


# --- a real Scheduler behind a unix socket ----------------------------------------------


@asynccontextmanager
async def unix_scheduler(tmp_path: Path) -> AsyncIterator[tuple[ActorSystem, ActorRef]]:
    """A peer system, and its ref to a Scheduler listening at a unix socket."""
    address = f"unix://{tmp_path}/scheduler.sock"
    scheduler = Scheduler(store=tmp_path / "jobs.db", modules=["tests.jobs.works"], tick=0.01)
    async with (
        ActorSystem("scheduler", listen=address) as server,
        ActorSystem("peer") as peer,
    ):
        await server.spawn(scheduler, name="scheduler")
        yield peer, await peer.remote(address, "scheduler")


async def still_serves(ref: ActorRef) -> None:
    """A plain submit succeeds, and a short wait for its job runs out."""
    with anyio.fail_after(20):
        reply = await ref.ask(m.SubmitJob(work=NOOP, payload=b"\xc0"), timeout=20)
        assert isinstance(reply, m.SubmittedReply), reply
        waited = await ref.ask(m.AwaitJob(reply.job_id, wait=0.02), timeout=20)
    assert isinstance(waited, m.JobReply)
    assert waited.job is not None
    assert waited.job.status == "queued"  # no pool: the wait ran out


def raw(tree: Any) -> Any:
    """A message body made of a MessagePack tree, for ``ref.ask`` to send as it is."""
    return msgspec.Raw(msgspec.msgpack.encode(tree))


# --- the known cases --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"priority": 2**63}, "priority = 9223372036854775808"),
        ({"priority": 2**64 - 1}, "priority = 18446744073709551615"),
        ({"priority": -(2**63)}, "priority = -9223372036854775808"),
        ({"max_attempts": 2**63}, "max_attempts = 9223372036854775808"),
        ({"timeout": math.nan}, "timeout = nan"),
        ({"timeout": math.inf}, "timeout = inf"),
        ({"due": 1e308}, "due = 1e+308"),
        ({"queue": "q" * 100_000}, f"queue = {'q' * 32!r}... (100000 characters)"),
    ],
)
async def test_a_submit_out_of_bounds_is_refused_naming_field_and_value(
    tmp_path: Path, fields: dict[str, Any], shown: str
) -> None:
    async with unix_scheduler(tmp_path) as (_, ref):
        bad = m.SubmitJob(work=NOOP, payload=b"\xc0", **fields)
        with pytest.raises(MessageRejected, match=r"aw\.job\.submit") as refused:
            await ref.ask(bad, timeout=20)
        assert shown in str(refused.value)
        await still_serves(ref)


async def test_a_result_for_attempt_2_63_is_refused_and_the_scheduler_goes_on(
    tmp_path: Path,
) -> None:
    result = m.WorkResult(job_id="j", attempt=2**63, outcome="succeeded", pool="p")
    async with unix_scheduler(tmp_path) as (_, ref):
        await ref.tell(m.ReportResult(result))  # as a Pool sends it
        await ref.tell(m.ReportResults([result]))
        with pytest.raises(MessageRejected, match=r"result\.attempt = 9223372036854775808"):
            await ref.ask(m.ReportResult(result), timeout=20)
        with pytest.raises(MessageRejected, match=r"results\[0\]\.attempt = 9223372036854775808"):
            await ref.ask(m.ReportResults([result]), timeout=20)
        await still_serves(ref)


async def test_a_wait_of_nan_is_refused_and_later_waits_still_run_out(tmp_path: Path) -> None:
    async with unix_scheduler(tmp_path) as (_, ref):
        queued = await ref.ask(m.SubmitJob(work=NOOP, payload=b"\xc0"), timeout=20)
        assert isinstance(queued, m.SubmittedReply)
        for wait in (math.nan, math.inf, -1.0):
            with pytest.raises(MessageRejected, match=f"wait = {wait!r}"):
                await ref.ask(m.AwaitJob(queued.job_id, wait=wait), timeout=20)
        await still_serves(ref)


async def test_a_listing_of_two_billion_fire_times_is_refused(tmp_path: Path) -> None:
    """Computing them would hold the Scheduler for ever: the count is bounded."""
    async with unix_scheduler(tmp_path) as (_, ref):
        with pytest.raises(MessageRejected, match="count = 2147483647"):
            await ref.ask(m.ListSchedules(2**31 - 1), timeout=20)
        await still_serves(ref)


@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", 2**63), ("retries", 2**63), ("jitter", 1e308), ("timeout", math.inf)],
)
async def test_a_schedule_out_of_bounds_is_refused_naming_field_and_value(
    tmp_path: Path, field: str, value: object
) -> None:
    """A schedule fires jobs: it may ask only for what a submit may."""
    good = schedule("hostile", works.noop, "* * * * * *")
    tree = msgspec.to_builtins(m.AddSchedule(good), builtin_types=(bytes,))
    tree["schedule"][field] = value
    async with unix_scheduler(tmp_path) as (_, ref):
        expected = f"schedule: schedule 'hostile': {field} {value!r} must be"
        with pytest.raises(MessageRejected, match=re.escape(expected)):
            await ref.ask(raw(tree), timeout=20)
        await still_serves(ref)
        listed = await ref.ask(m.ListSchedules(), timeout=20)
        assert listed == m.ScheduleListReply([])


def test_the_bounds_of_schedules_are_those_of_messages() -> None:
    """schedules.py is imported by messages.py, so it keeps its own copy of them."""
    assert schedules._MAX_INT == m.MAX_INT
    assert schedules._MAX_ATTEMPTS == m.MAX_ATTEMPTS
    assert schedules._MAX_SECONDS == m.MAX_SECONDS
    assert schedules._MAX_NAME == m.MAX_NAME


# --- the client refuses before sending ----------------------------------------------------


async def test_a_client_refuses_a_submit_out_of_bounds_without_failing_its_batch(
    tmp_path: Path,
) -> None:
    """Submits of one loop turn travel together; one bad value must fail alone."""
    async with unix_scheduler(tmp_path) as (peer, ref), Client(peer, ref) as client:
        outcomes: dict[str, Any] = {}

        async def submit(name: str, **options: Any) -> None:
            try:
                outcomes[name] = await client.submit(works.noop, **options)
            except Exception as exc:
                outcomes[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(submit, "before")
            tg.start_soon(functools.partial(submit, "bad", priority=2**63))
            tg.start_soon(submit, "after")
        assert isinstance(outcomes["bad"], MessageEncodeError)
        assert "priority = 9223372036854775808" in str(outcomes["bad"])
        assert outcomes["before"].created
        assert outcomes["after"].created
        with pytest.raises(MessageEncodeError, match="due = 1e\\+308"):
            await client.submit(works.noop, delay=1e308)


def test_check_passes_a_message_in_bounds_and_names_the_first_field_out() -> None:
    check(m.SubmitJob(work=NOOP, payload=b"\xc0", priority=-(2**31), due=time.time()))
    check(m.PoolHeartbeat("p", [m.JobKey("j", 2**31 - 1)]))
    with pytest.raises(MessageEncodeError, match=r"running\[0\]\[1\] = 2147483648"):
        check(m.PoolHeartbeat("p", [m.JobKey("j", 2**31)]))


def test_a_refused_body_names_its_tag_field_and_a_short_value() -> None:
    codec = Codec()
    frame = codec.encode(
        Kind.TELL, 0, "scheduler", "", m.SubmitJobs([m.SubmitJob(work="w", payload=b"", due=-5.0)])
    )
    with pytest.raises(Exception, match=r"aw.job.submit-many: jobs\[0\]\.due = -5.0: expected"):
        codec.decode_body(codec.decode_envelope(frame).body)
    frame = codec.encode(Kind.TELL, 0, "s", "", m.PoolReady("p", ["q"] * 300, 1, 1))
    with pytest.raises(Exception, match="queues = a list of 300 items: expected `array`"):
        codec.decode_body(codec.decode_envelope(frame).body)


class Fussy(m.Message, tag="test.hostile.fussy"):
    """A user's message whose own check raises something other than ValueError."""

    path: str

    def __post_init__(self) -> None:
        if len(self.path) > 4096:
            raise OSError(36, "File name too long")


def test_a_body_whose_own_check_raises_fails_only_its_message() -> None:
    """Before, the OSError left the codec and the transport closed the connection."""
    codec = Codec()
    body = raw({"type": "test.hostile.fussy", "path": "x" * 5000})  # Fussy(...) would raise
    frame = codec.encode(Kind.TELL, 0, "a", "", body)
    with pytest.raises(ProtocolError, match=r"malformed message: OSError: .*File name too long"):
        codec.decode_body(codec.decode_envelope(frame).body)


# --- every inbound message, every field, extreme values ----------------------------------


def _baselines() -> list[m.Message]:
    """One message of each type the Scheduler takes, every field filled (no None)."""
    now = time.time()
    key = m.JobKey("j", 1)
    result = m.WorkResult(
        job_id="j",
        attempt=1,
        outcome="succeeded",
        value=b"\xc0",
        error="e",
        traceback="t",
        logs=(m.LogLine(now, "log", "info", "text", {"k": 1}),),
        progress=0.5,
        progress_message="half",
        started=now,
        finished=now,
        artifacts=(m.Artifact("a.txt", b"x", "text/plain"),),
        pool="p",
        worker="w",
    )
    submit = m.SubmitJob(
        work=NOOP,
        payload=b"\xc0",
        job_id="",
        queue="default",
        priority=0,
        max_attempts=2,
        timeout=10.0,
        unique_key="u",
        due=now + 3600,
    )
    return [
        submit,
        m.SubmitJobs([submit]),
        m.GetJob("j"),
        m.AwaitJob("j", 0.01),
        m.CancelJob("j", "reason"),
        m.RetryJob("j"),
        m.DeleteJob("j"),
        m.ListJobs("queued", "default", 5, work=NOOP, since=now - 3600, until=now + 3600),
        m.PoolReady("p", ["default"], 1, 0, [key]),
        m.RequestWork("p", 1),
        m.PoolHeartbeat("p", [key]),
        m.JobProgressed("j", 1, 0.5, "half"),
        m.ReportResult(result),
        m.ReportResults([result]),
        m.GetAttempts("j"),
        m.AddSchedule(
            schedule(
                "h",
                works.noop,
                "0 0 1 1 *",
                jitter=1.0,
                catch_up=60.0,
                queue="default",
                priority=0,
                retries=1,
                timeout=5.0,
            )
        ),
        m.RemoveSchedule("h"),
        m.EnableSchedule("h", False),
        m.ListSchedules(3),
        m.Ping(b"ready"),
        m.JobOutput(
            job_id="j",
            attempt=1,
            pool="p",
            worker="w",
            started=now,
            logs=[m.LogLine(now, "log", "info", "text", {"k": 1})],
            progressed=True,
            fraction=0.5,
        ),
        Subscribe("s", EventFilter(job_id="j", work="w", queue="default"), 10),
        Unsubscribe("s"),
        m.RunSchedule("h"),
        m.PauseQueue("default", False),
        # ListQueues, ListPools and GetStats carry no field to make extreme.
    ]


def _leaves(tree: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The paths of every value that can be made extreme (every leaf, every list)."""
    if isinstance(tree, dict):
        for name, value in tree.items():
            if name != "type":
                yield from _leaves(value, (*path, name))
    elif isinstance(tree, list | tuple):
        yield path
        for index, value in enumerate(tree):
            yield from _leaves(value, (*path, index))
    elif tree is not None and not isinstance(tree, bool):
        yield path


def _extremes(value: Any, *, sharpest: bool = False) -> list[Any]:
    """The extreme values for a leaf like ``value``; ``sharpest``: the few that broke it."""
    if isinstance(value, int | float):
        if sharpest:
            return [2**63, 2**64 - 1, -(2**63), math.nan, math.inf, -math.inf, 1e308]
        return [*INTS, *FLOATS]
    if isinstance(value, str):
        return STRINGS[1:2] if sharpest else STRINGS
    if isinstance(value, bytes):
        return BLOBS[1:] if sharpest else BLOBS
    assert isinstance(value, list | tuple), value
    huge: list[Any] = []
    if value:
        # One item more than a message may hold, where that fits in a frame; else a
        # thousand (a list of that many large items is load, not poison).
        fits = HUGE_LIST_BYTES // len(msgspec.msgpack.encode(value[0])) > m.MAX_ITEMS
        huge = [value[0]] * (m.MAX_ITEMS + 1 if fits else 1000)
    return [huge] if sharpest else [[], huge]


def _shown(path: tuple[str | int, ...]) -> str:
    """A path as msgspec reports it: ``jobs[0].priority``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text.removeprefix(".")


def _tree(message: m.Message) -> Any:
    """A message as a MessagePack tree whose lists can be changed."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(message))


def _at(tree: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        tree = tree[step]
    return tree


class Case:
    """One hostile message: its tree, and the paths of the values made extreme."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree
        self.changed: dict[str, Any] = {}

    def change(self, path: tuple[str | int, ...], value: Any) -> None:
        _at(self.tree, path[:-1])[path[-1]] = value
        self.changed[_shown(path)] = value

    def __repr__(self) -> str:  # the extreme values run to megabytes
        shown = []
        for path, value in self.changed.items():
            text = repr(value)
            if len(text) > 80:
                text = f"{text[:40]}... ({len(value)} long)"
            shown.append(f"{path} = {text}")
        return f"Case({self.tree.get('type')!r}, {', '.join(shown)})"


def every_field_at_its_extremes() -> Iterator[Case]:
    """Each inbound message type with each leaf and list, alone, at each sharpest value."""
    for base in _baselines():
        for path in _leaves(_tree(base)):
            for value in _extremes(_at(_tree(base), path), sharpest=True):
                case = Case(_tree(base))
                case.change(path, value)
                yield case


@st.composite
def hostile(draw: st.DrawFn) -> Case:
    """A baseline message with one to three leaves or lists made extreme at once."""
    case = Case(_tree(draw(st.sampled_from(_baselines()))))
    paths = list(_leaves(case.tree))
    chosen = draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True))
    # Outer first, and nothing inside what was already changed: a list made extreme
    # holds one item many times over, so a huge leaf inside it would be copied into
    # every item (a frame of gigabytes, refused by the sender, not the Scheduler).
    done: list[tuple[str | int, ...]] = []
    for path in sorted(chosen, key=len):
        if any(path[: len(outer)] == outer for outer in done):
            continue
        done.append(path)
        try:
            old = _at(case.tree, path)
        except (IndexError, KeyError, TypeError):
            continue
        case.change(path, draw(st.sampled_from(_extremes(old))))
    return case


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[anyio.from_thread.BlockingPortal, Any]]:
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(unix_scheduler(tmp_path)) as (_, ref),
    ):
        yield portal, ref


def _on_path(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith((f"{outer}.", f"{outer}["))


async def _send(ref: ActorRef, case: Case) -> None:
    """Send one hostile message, then a plain submit; a refusal names a field changed."""
    try:
        await ref.ask(raw(case.tree), timeout=2)
    except MessageRejected as exc:
        text = str(exc)
        assert "malformed message" in text, (case, text)
        named = text.split("malformed message: ", 1)[1].split(": ", 1)[1]
        field = named.split(" = ", 1)[0].split(": ", 1)[0]
        # The field refused lies on a path changed: it, a struct holding it (which
        # checks itself whole), or inside it (a list made of copies of the wrong kind).
        assert any(_on_path(field, p) or _on_path(p, field) for p in case.changed), (case, text)
    except (RemoteActorError, AskTimeout):
        pass  # a handler's own refusal (PoolReady without a sender), a wait still waiting
    try:
        await still_serves(ref)
    except Exception as exc:
        raise AssertionError(f"the Scheduler no longer serves after {case!r}: {exc!r}") from exc


async def test_every_field_of_every_inbound_message_at_its_extremes(tmp_path: Path) -> None:
    """The known poisons are among these: 2**63 priorities, attempts and counts, NaN waits."""
    async with unix_scheduler(tmp_path) as (_, ref):
        cases = 0
        for case in every_field_at_its_extremes():
            await _send(ref, case)
            cases += 1
        assert cases > 200


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile())
def test_no_inbound_message_with_extreme_fields_stops_the_scheduler_serving(
    served: tuple[anyio.from_thread.BlockingPortal, Any], case: Case
) -> None:
    portal, ref = served
    portal.call(_send, ref, case)


def test_a_work_registered_without_a_time_limit_still_reaches_its_pool() -> None:
    """A JobSpec's timeout comes from the work's registration, where inf means none:
    refusing it at the Pool would leave the job to be lost lease after lease."""
    codec = Codec()
    spec = m.JobSpec(id="j", work="w", payload=b"\xc0", attempt=1, timeout=math.inf)
    frame = codec.encode(Kind.TELL, 0, "pool", "", m.RunJobs([spec], lease=30.0))
    decoded = codec.decode_body(codec.decode_envelope(frame).body)
    assert isinstance(decoded, m.RunJobs)
    assert decoded.jobs[0].timeout == math.inf
    with pytest.raises(MessageEncodeError, match=r"jobs\[0\]\.timeout = nan"):
        check(m.RunJobs([msgspec.structs.replace(spec, timeout=math.nan)], lease=30.0))
