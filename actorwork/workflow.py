"""Workflows: code plus input that builds a tree of jobs, run and watched as one.

::

    @actorwork.workflow
    def report(month: str) -> actorwork.Node:
        return sequence(
            fetch=step(fetch_rows, month),
            charts=parallel(bar=step(chart, "bar"), pie=step(chart, "pie")),
            mail=when(has_rows, then=step(send_mail, month)),
            pdf=step(render_pdf, month),
        )

    flow = await client.submit_workflow(report, "2026-11")
    tree = await client.workflow(flow.id)       # every node: path, status, result, times

A workflow function runs once, where the workflow is submitted, and returns its tree
(:func:`step`, :func:`sequence`, :func:`parallel`, :func:`when`, :func:`for_each`).
Every node has a path (``report.charts.bar``, ``report.pages[2]``) and is a job of its
own, with its status, attempts, logs, result and timings; the job's id is the
workflow's id and the path (``wf-…:report.charts.bar``). A step runs after the node
before it and reads that node's return value as ``ctx.previous``; a parallel group's
value is its children's values (a list, or a dict when they are named), gathered once
they all succeeded (fan-in).

Design. The tree is compiled into ordinary jobs linked by ``depends_on``: the
Scheduler already holds a job until its parents end, skips it when one cannot satisfy
it, and keeps that graph durable across restarts, so a workflow needs no coordinator
of its own that could be lost. What a tree cannot say in advance — which branch a
condition takes, how many children a fan-out has — is decided by a small *expander*
job (``actorwork.workflow.expand``) that runs where work runs: it calls the condition
(a registered work, never code sent over the wire) or reads the list a step returned,
and returns the nodes to add. The Scheduler adds them in the same commit as the
expander's result, and makes the group's *gathering* node (``actorwork.workflow.gather``,
at the group's own path) wait for them too, so whatever follows the group waits for
them: a restart between the two cannot lose or double them.

Failure policy: ``stop`` ends the rest of the workflow when a node fails (pending
nodes skipped, running ones cancelled); ``finish`` runs every node that does not
depend on the failed one. A node's dependants are skipped in both.
"""

from __future__ import annotations

import inspect
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import msgspec

from actorwork.errors import UsageError, WorkFailed
from actorwork.messages import TERMINAL, JobView, SubmitJob
from actorwork.work import Work, WorkContext, default_registry, work

__all__ = [
    "EXPAND",
    "GATHER",
    "NOT_TAKEN",
    "Condition",
    "Expansion",
    "ForEach",
    "Node",
    "Parallel",
    "Sequence",
    "Step",
    "Workflow",
    "WorkflowNode",
    "WorkflowView",
    "compile_workflow",
    "depth",
    "for_each",
    "node_id",
    "parallel",
    "retry_order",
    "sequence",
    "step",
    "when",
    "workflow",
    "workflow_view",
]

#: How the error of a node of a branch not taken starts.
NOT_TAKEN = "branch not taken"

#: The built-in works of the nodes a workflow adds beside the user's steps.
EXPAND = "actorwork.workflow.expand"
GATHER = "actorwork.workflow.gather"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_encoder = msgspec.msgpack.Encoder()

Policy = Literal["stop", "finish"]


# --- the tree --------------------------------------------------------------------------


class Step(msgspec.Struct, frozen=True, tag="step"):
    """Run one work with ``payload`` (MessagePack) after the node before it."""

    work: str
    payload: bytes
    retries: int | None = None
    timeout: float | None = None
    queue: str | None = None


class Sequence(msgspec.Struct, frozen=True, tag="sequence"):
    """Run ``nodes`` one after another; ``names`` are their path segments."""

    nodes: tuple[Node, ...]
    names: tuple[str, ...]


class Parallel(msgspec.Struct, frozen=True, tag="parallel"):
    """Run ``nodes`` side by side; the group's value gathers theirs (a dict if named)."""

    nodes: tuple[Node, ...]
    names: tuple[str, ...]
    named: bool = False


class Condition(msgspec.Struct, frozen=True, tag="when"):
    """Run ``then`` if the work ``check`` says so of the value before it, else
    ``otherwise``; the group passes that value on unchanged."""

    check: str
    then: Node | None = None
    otherwise: Node | None = None


class ForEach(msgspec.Struct, frozen=True, tag="for_each"):
    """Run ``work`` once per item of the list the node before returned; the group's
    value is their values, in order."""

    work: str
    retries: int | None = None
    timeout: float | None = None
    queue: str | None = None


Node = Step | Sequence | Parallel | Condition | ForEach


def step(
    work: Work | str,
    payload: Any = None,
    *,
    retries: int | None = None,
    timeout: float | None = None,
    queue: str | None = None,
) -> Step:
    """A node that runs ``work`` with ``payload`` (checked now when the work is known)."""
    name, encoded = _encode(work, payload)
    return Step(name, encoded, retries=retries, timeout=timeout, queue=queue)


def sequence(*nodes: Node, **named: Node) -> Sequence:
    """Nodes that run one after another, each reading the one before as ``ctx.previous``.

    Unnamed nodes get their index as their path segment (``report[0]``); named ones
    their name (``report.fetch``).
    """
    items, names = _children("sequence", nodes, named)
    return Sequence(items, names)


def parallel(*nodes: Node, **named: Node) -> Parallel:
    """Nodes that run side by side after the node before; the group's value is the list
    of their values (a dict by name when they are named), once all succeeded."""
    items, names = _children("parallel", nodes, named)
    return Parallel(items, names, named=bool(named))


def when(check: Work | str, then: Node | None = None, otherwise: Node | None = None) -> Condition:
    """Run ``then`` when the registered work ``check``, called where work runs with the
    value before it, returns something true; else ``otherwise`` (or nothing)."""
    return Condition(_work_name(check), then, otherwise)


def for_each(
    work: Work | str,
    *,
    retries: int | None = None,
    timeout: float | None = None,
    queue: str | None = None,
) -> ForEach:
    """Run ``work`` once per item of the list the node before returned (none for an
    empty list): fan-out from data. The group's value is the list of their values."""
    return ForEach(_work_name(work), retries=retries, timeout=timeout, queue=queue)


def _children(
    kind: str, nodes: tuple[Node, ...], named: Mapping[str, Node]
) -> tuple[tuple[Node, ...], tuple[str, ...]]:
    if nodes and named:
        raise UsageError(f"a {kind} takes nodes either all named or all unnamed, not both")
    for node in (*nodes, *named.values()):
        if not isinstance(node, Step | Sequence | Parallel | Condition | ForEach):
            raise UsageError(f"a {kind} takes workflow nodes, got {node!r}")
    if named:
        return tuple(named.values()), tuple(named)
    return nodes, tuple(f"[{index}]" for index in range(len(nodes)))


def _work_name(item: Work | str) -> str:
    if isinstance(item, Work):
        return item.name
    if isinstance(item, str) and item:
        return item
    raise UsageError(f"expected a @work function or its name, got {item!r}")


def _encode(item: Work | str, payload: Any) -> tuple[str, bytes]:
    name = _work_name(item)
    if isinstance(item, Work):
        return name, item.encode_payload(payload)
    if name in default_registry:
        return name, default_registry.get(name).encode_payload(payload)
    return name, _encoder.encode(payload)


# --- registering ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Workflow:
    """A registered workflow: the function that builds its tree, and its defaults."""

    name: str
    func: Callable[..., Node]
    policy: Policy = "stop"

    def build(self, payload: Any) -> Node:
        """The tree for ``payload`` (the function called with it, or with nothing)."""
        takes = bool(inspect.signature(self.func).parameters)
        tree = self.func(payload) if takes else self.func()
        if not isinstance(tree, Step | Sequence | Parallel | Condition | ForEach):
            raise UsageError(
                f"workflow {self.name!r} must return a node (step, sequence, ...), got {tree!r}"
            )
        return tree

    def __call__(self, *args: Any, **kwargs: Any) -> Node:
        return self.func(*args, **kwargs)


@overload
def workflow(func: Callable[..., Node], /) -> Workflow: ...


@overload
def workflow(
    *, name: str | None = None, policy: Policy = "stop"
) -> Callable[[Callable[..., Node]], Workflow]: ...


def workflow(
    func: Callable[..., Node] | None = None,
    *,
    name: str | None = None,
    policy: Policy = "stop",
) -> Workflow | Callable[[Callable[..., Node]], Workflow]:
    """Register a function that builds a workflow's tree from its input.

    ``name`` (default: the function's name) is the root of every node's path;
    ``policy`` is what a failed node does to the rest (``stop`` or ``finish``; a
    submit may say otherwise).
    """
    if policy not in ("stop", "finish"):
        raise UsageError(f"workflow policy must be 'stop' or 'finish', got {policy!r}")

    def register(fn: Callable[..., Node]) -> Workflow:
        root = name or fn.__name__
        if not _NAME.fullmatch(root):
            raise UsageError(f"workflow name {root!r} must be a Python identifier")
        return Workflow(root, fn, policy)

    return register(func) if func is not None else register


# --- compiling into jobs ----------------------------------------------------------------


def node_id(workflow_id: str, path: str) -> str:
    """The job id of the node at ``path``: ``report.pages[2]`` is ``<id>:report.pages.2``."""
    return f"{workflow_id}:{path.replace('[', '.').replace(']', '')}"


def _join(path: str, segment: str) -> str:
    return f"{path}{segment}" if segment.startswith("[") else f"{path}.{segment}"


class Expansion(msgspec.Struct, frozen=True, kw_only=True):
    """What an expander decided: the jobs to add, and the node that gathers them.

    The Scheduler submits ``jobs`` and makes ``gather`` wait for ``tails`` too, in the
    commit of the expander's result.
    """

    jobs: list[SubmitJob]
    gather: str
    tails: list[str]
    #: The nodes of the branch a condition did not take: added as ``skipped`` with
    #: ``reason``, so the tree shows them; a retry leaves them alone.
    skipped: list[SubmitJob] = []
    reason: str = ""
    #: The branch a condition took (``then``, ``otherwise``, or "" for none), or the
    #: number of children a fan-out made.
    decision: str = ""
    count: int = 0


class _ExpandSpec(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of an expander: the node it decides, and where it sits."""

    workflow: str
    policy: str
    path: str
    gather: str
    node: Condition | ForEach


class _GatherSpec(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of a gathering node: how its value is made from its parents'.

    ``pass`` hands on the value of ``source``; ``list`` and ``dict`` collect the values of
    its parents but ``exclude`` (the expander before them), in order; ``dict`` names them.
    """

    mode: Literal["pass", "list", "dict"]
    source: str = ""
    names: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass
class _Compiler:
    """Turns a tree into submits, parents before children."""

    workflow: str
    policy: str
    jobs: list[SubmitJob]

    def submit(
        self,
        path: str,
        work_name: str,
        payload: bytes,
        after: Iterable[str],
        options: Step | ForEach | None = None,
    ) -> str:
        """Add one job; ``options`` gives its retries, timeout and queue."""
        retries = None if options is None else options.retries
        job_id = node_id(self.workflow, path)
        self.jobs.append(
            SubmitJob(
                work=work_name,
                payload=payload,
                job_id=job_id,
                queue=None if options is None else options.queue,
                max_attempts=None if retries is None else retries + 1,
                timeout=None if options is None else options.timeout,
                depends_on=list(after),
                workflow=self.workflow,
                path=path,
                policy=self.policy,  # type: ignore[arg-type]
            )
        )
        return job_id

    def node(self, node: Node, path: str, after: str | None) -> str | None:
        """Add ``node`` at ``path`` after the node ``after``; the id what follows waits for."""
        before = [after] if after else []
        match node:
            case Step():
                return self.submit(path, node.work, node.payload, before, node)
            case Sequence():
                for child, segment in zip(node.nodes, node.names, strict=True):
                    after = self.node(child, _join(path, segment), after)
                return after
            case Parallel():
                tails = [
                    self.node(child, _join(path, segment), after)
                    for child, segment in zip(node.nodes, node.names, strict=True)
                ]
                parents = [tail for tail in tails if tail] or before
                spec = _GatherSpec(
                    mode="dict" if node.named else "list",
                    names=node.names if node.named else (),
                    exclude=() if any(tails) else tuple(before),
                )
                return self.submit(path, GATHER, _encoder.encode(spec), parents)
            case Condition() | ForEach():
                return self.dynamic(node, path, after)

    def dynamic(self, node: Condition | ForEach, path: str, after: str | None) -> str:
        """An expander after ``after`` and the gathering node at ``path`` after it."""
        if isinstance(node, ForEach) and after is None:
            raise UsageError(f"for_each at {path!r} needs a node before it to give its list")
        gather = node_id(self.workflow, path)
        segment = "check" if isinstance(node, Condition) else "each"
        expand = _ExpandSpec(
            workflow=self.workflow, policy=self.policy, path=path, gather=gather, node=node
        )
        before = [after] if after else []
        expander = self.submit(_join(path, segment), EXPAND, _encoder.encode(expand), before)
        if isinstance(node, Condition):
            spec = _GatherSpec(mode="pass", source=after or "")
        else:
            spec = _GatherSpec(mode="list", exclude=(*before, expander))
        return self.submit(path, GATHER, _encoder.encode(spec), [*before, expander])


def compile_workflow(
    flow: Workflow, payload: Any, workflow_id: str, policy: str
) -> list[SubmitJob]:
    """The submits of ``flow``'s tree for ``payload``, every parent before its children."""
    compiler = _Compiler(workflow_id, policy, [])
    compiler.node(flow.build(payload), flow.name, None)
    return compiler.jobs


# --- the built-in works -----------------------------------------------------------------


@work(name=EXPAND, retries=0, queue="default")
async def expand(ctx: WorkContext, spec: _ExpandSpec) -> Expansion:
    """Decide a condition or a fan-out, where work runs; the nodes to add."""
    compiler = _Compiler(spec.workflow, spec.policy, [])
    node, previous = spec.node, ctx.previous
    tails: list[str] = []
    if isinstance(node, Condition):
        taken = await _call(node.check, ctx, previous)
        # The branches run after the node before the condition, and read its value.
        before = next(iter(ctx.parents), None)
        branch, segment = (node.then, "then") if taken else (node.otherwise, "otherwise")
        other, other_segment = (node.otherwise, "otherwise") if taken else (node.then, "then")
        if branch is not None:
            tail = compiler.node(branch, _join(spec.path, segment), before)
            tails = [tail] if tail else []
        left = _Compiler(spec.workflow, spec.policy, [])
        if other is not None:
            left.node(other, _join(spec.path, other_segment), before)
        return Expansion(
            jobs=compiler.jobs,
            gather=spec.gather,
            tails=tails,
            decision=segment if branch is not None else "",
            skipped=left.jobs,
            reason=f"{NOT_TAKEN}: {node.check} returned {taken!r}",
        )
    if not isinstance(previous, list):
        raise WorkFailed(
            f"for_each at {spec.path!r} needs a list from the node before it, "
            f"got {type(previous).__name__}: {previous!r}"
        )
    item_work = default_registry.get(node.work)
    for index, item in enumerate(previous):
        payload = item_work.encode_payload(item)
        path = _join(spec.path, f"[{index}]")
        tails.append(compiler.submit(path, node.work, payload, [ctx.job_id], node))
    return Expansion(jobs=compiler.jobs, gather=spec.gather, tails=tails, count=len(tails))


async def _call(name: str, ctx: WorkContext, value: Any) -> Any:
    """Call the registered work ``name`` in this worker with ``value`` as its payload."""
    check = default_registry.get(name)
    payload = check.decode_payload(_encoder.encode(value)) if check.payload_params else None
    args, kwargs = check.arguments(ctx, payload)
    result = check.func(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


@work(name=GATHER, retries=0, queue="default")
def gather(ctx: WorkContext, spec: _GatherSpec) -> Any:
    """The value of a group: its children's values, or the value it passes on."""
    parents = ctx.parents
    if spec.mode == "pass":
        return parents.get(spec.source)
    values = [value for job_id, value in parents.items() if job_id not in spec.exclude]
    if spec.mode == "dict":
        return dict(zip(spec.names, values, strict=False))
    return values


# --- seeing it ---------------------------------------------------------------------------


class WorkflowNode(msgspec.Struct, frozen=True, kw_only=True):
    """One node of a workflow as it is now: a job, at a path."""

    path: str
    job_id: str
    work: str
    status: str
    attempts: int
    error: str = ""
    #: The return value (decoded), once it succeeded.
    result: Any = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None

    @property
    def seconds(self) -> float | None:
        """How long its latest attempt ran, once it ended."""
        if self.started is None or self.finished is None:
            return None
        return max(0.0, self.finished - self.started)


class WorkflowView(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow's tree: its nodes in the order they were added, and one status.

    ``status`` is ``running`` while a node has not ended, then ``failed`` if one failed,
    ``cancelled`` if one was cancelled, else ``succeeded``.
    """

    id: str
    name: str
    status: str
    policy: str
    nodes: list[WorkflowNode]


def workflow_view(workflow_id: str, jobs: list[JobView]) -> WorkflowView:
    """The tree of ``workflow_id`` from its nodes' jobs, given in the order they were
    added: each node before its children, siblings in the order they were added."""
    nodes = [_node(job) for job in _tree_order(jobs)]
    statuses = {node.status for node in nodes}
    if statuses - TERMINAL:
        status = "running"
    elif statuses & {"failed", "dead"}:
        status = "failed"
    elif "cancelled" in statuses:
        status = "cancelled"
    else:
        status = "succeeded"
    name = nodes[0].path.split(".")[0].split("[")[0] if nodes else ""
    policy = next((job.policy for job in jobs if job.policy), "")
    return WorkflowView(id=workflow_id, name=name, status=status, policy=policy, nodes=nodes)


def _prefixes(path: str) -> list[str]:
    """``a.b[2]`` → ``a``, ``a.b``, ``a.b[2]``."""
    cuts = [i for i, char in enumerate(path) if char in ".["]
    return [path[:cut] for cut in cuts] + [path]


def _tree_order(jobs: list[JobView]) -> list[JobView]:
    first: dict[str, int] = {}
    for index, job in enumerate(jobs):
        for prefix in _prefixes(job.path):
            first.setdefault(prefix, index)
    return sorted(jobs, key=lambda job: [first[prefix] for prefix in _prefixes(job.path)])


def depth(path: str) -> int:
    """How deep a node is in its tree: 0 for a child of the root (``report.fetch``)."""
    return max(0, len(_prefixes(path)) - 2)


def _node(job: JobView) -> WorkflowNode:
    result = job.result
    value = None
    if job.status == "succeeded" and result is not None and result.value is not None:
        value = msgspec.msgpack.decode(result.value)
    return WorkflowNode(
        path=job.path,
        job_id=job.id,
        work=job.work,
        status=job.status,
        attempts=job.attempt,
        error=job.error,
        result=value,
        created=job.created,
        started=result.started or None if result is not None else None,
        finished=result.finished or None if result is not None else None,
    )


def retry_order(jobs: list[JobView]) -> list[str]:
    """The ids of a workflow's nodes to run again (those that ended otherwise than
    succeeded, but the branches a condition did not take), each after those of them it
    depends on, so a node retried waits for its retried parents. ``jobs`` are in the
    order they were added."""
    todo = {
        job.id: job
        for job in jobs
        if job.status in TERMINAL
        and job.status != "succeeded"
        and not job.error.startswith(NOT_TAKEN)
    }
    blocking = {
        job_id: sum(parent in todo for parent in job.depends_on) for job_id, job in todo.items()
    }
    children: dict[str, list[str]] = {}
    for job_id, job in todo.items():
        for parent in job.depends_on:
            if parent in todo:
                children.setdefault(parent, []).append(job_id)
    ready = deque(job_id for job_id in todo if not blocking[job_id])
    order: list[str] = []
    while ready:
        job_id = ready.popleft()
        order.append(job_id)
        for child in children.get(job_id, ()):
            blocking[child] -= 1
            if not blocking[child]:
                ready.append(child)
    return order
