"""Works and workflows of the workflow tests; importable by child processes."""

from __future__ import annotations

import os

import anyio
import msgspec

from actorwork import WorkContext, WorkFailed, work
from actorwork.workflow import Node, for_each, parallel, sequence, step, when, workflow


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
