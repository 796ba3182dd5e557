"""Works and workflows of the workflow tests; importable by child processes."""

from __future__ import annotations

import os

import anyio
import msgspec

from actorwork import WorkContext, WorkFailed, work
from actorwork.workflow import Node, for_each, parallel, sequence, step, when, workflow
from tests.jobs.works import record


class Plan(msgspec.Struct, kw_only=True):
    """What the test workflows build: how many items the fan-out gets, which step fails."""

    items: int = 3
    fail: str = ""
    policy_probe: float = 0.0


@work(name="wf_value")
def value(ctx: WorkContext, n: int) -> int:
    """``n`` plus what came before it, if that was a number."""
    previous = ctx.previous
    return n + (previous if isinstance(previous, int) else 0)


@work(name="wf_fail", retries=0)
def fail(reason: str) -> None:
    raise WorkFailed(reason)


@work(name="wf_items")
def items(count: int) -> list[int]:
    return list(range(count))


@work(name="wf_square")
def square(n: int) -> int:
    return n * n


@work(name="wf_total")
def total(ctx: WorkContext) -> int:
    previous = ctx.previous
    if isinstance(previous, dict):
        return sum(previous.values())
    return sum(previous or [])


@work(name="wf_positive")
def positive(n: int) -> bool:
    """The condition: is the value before it above zero?"""
    return n > 0


@workflow
def chain() -> Node:
    return sequence(first=step(value, 1), second=step(value, 10), third=step(value, 100))


@workflow(policy="finish")
def fan(plan: Plan) -> Node:
    return sequence(
        split=step(items, plan.items),
        squares=for_each(square),
        total=step(total),
    )


@workflow
def gather_named() -> Node:
    return sequence(
        start=step(value, 0),
        parts=parallel(a=step(value, 1), b=step(value, 2), c=step(value, 3)),
        total=step(total),
    )


@workflow
def gate(n: int) -> Node:
    return sequence(
        start=step(value, n),
        check=when(positive, then=step(value, 1000), otherwise=step(value, -1000)),
        after=step(value, 5),
    )


@workflow
def gate_without_else(n: int) -> Node:
    return sequence(start=step(value, n), check=when(positive, then=step(value, 1000)))


@workflow
def broken(plan: Plan) -> Node:
    """Two branches side by side; one fails, the other is slow or quick."""
    return sequence(
        start=step(value, 1),
        branches=parallel(bad=step(fail, plan.fail or "planned"), good=step(value, 2)),
        total=step(total),
    )


@work(name="wf_wait_for", retries=0)
async def wait_for(ctx: WorkContext, path: str) -> str:
    """Wait until the file ``path`` exists (or the job is told to stop)."""
    while not await anyio.Path(path).exists():
        if ctx.checkin():
            return "stopped"
        await anyio.sleep(0.01)
    return "seen"


@work(name="wf_flaky", retries=0)
def flaky(path: str) -> int:
    """Fail unless the file ``path`` exists; then 1."""
    if not os.path.exists(path):
        raise WorkFailed(f"{path} is missing")
    return 1


class Gates(msgspec.Struct, kw_only=True):
    """Files the test creates to let nodes on: ``release`` for the slow branch."""

    release: str
    fix: str = ""


@workflow
def slow_and_bad(gates: Gates) -> Node:
    """A branch that fails beside one that waits for the test, then a step after it."""
    return sequence(
        branches=parallel(
            bad=step(flaky, gates.fix or "/nonexistent"),
            slow=sequence(wait=step(wait_for, gates.release), after=step(value, 7)),
        ),
        total=step(total),
    )


class Slow(msgspec.Struct, kw_only=True):
    """One item of the restart test's fan-out: its number, and where runs are noted."""

    history: str
    n: int
    seconds: float = 0.3


@work(name="wf_slow_items")
def slow_items(slow: Slow) -> list[Slow]:
    """``slow.n`` items of the same history."""
    return [Slow(history=slow.history, n=i, seconds=slow.seconds) for i in range(slow.n)]


@work(name="wf_slow_square")
async def slow_square(ctx: WorkContext, slow: Slow) -> int:
    """``n * n`` after ``seconds``; notes its start and end in the history."""
    record(slow.history, "start", ctx.job_id, ctx.attempt)
    await anyio.sleep(slow.seconds)
    record(slow.history, "end", ctx.job_id, ctx.attempt)
    return slow.n * slow.n


@workflow
def durable(slow: Slow) -> Node:
    """A fan-out of slow squares, a condition on their total, and a last step."""
    return sequence(
        split=step(slow_items, slow),
        squares=for_each(slow_square),
        total=step(total),
        check=when(positive, then=step(value, 1000)),
        last=step(value, 1),
    )


@workflow
def ghost() -> Node:
    """A step whose work no one registered."""
    return sequence(step=step("no.such.work", 1))
