"""Works of the dependency, limit and map tests; importable by child processes."""

from __future__ import annotations

import json

import anyio
import msgspec

from actorwork import WorkContext, WorkFailed, work
from actorwork.work import Limit
from tests.jobs.works import Step, record, traced


class Node(msgspec.Struct, kw_only=True):
    """One node of a graph: run ``seconds``, then fail (``fail``) or return ``value``
    plus the sum of its parents' values. Each execution appends its start and end to
    ``history``, and the parents' values it saw to ``history + '.parents'``."""

    history: str
    value: int = 1
    fail: bool = False
    seconds: float = 0.0


@work(name="graph_node", retries=3)
async def graph_node(ctx: WorkContext, node: Node) -> int:
    record(node.history, "start", ctx.job_id, ctx.attempt)
    parents = ctx.parents
    _note_parents(f"{node.history}.parents", ctx.job_id, parents)
    await anyio.sleep(node.seconds)
    record(node.history, "end", ctx.job_id, ctx.attempt)
    if node.fail:
        raise WorkFailed(f"node {ctx.job_id} fails as planned")
    return node.value + sum(v for v in parents.values() if isinstance(v, int))


def _note_parents(path: str, job_id: str, parents: dict[str, object]) -> None:
    with open(path, "a") as file:
        file.write(json.dumps([job_id, parents]) + "\n")


class KeyedStep(Step, kw_only=True):
    """A traced step that counts against the limit of its ``customer``."""

    customer: str


@work(name="keyed_traced", retries=3, limit=Limit(concurrency=1, key="customer"))
async def keyed_traced(ctx: WorkContext, step: KeyedStep) -> str:
    result: str = await traced(ctx, step)
    return result


@work(name="double")
async def double(n: int) -> int:
    return 2 * n
