"""A workflow's tree: its nodes, registering the function that builds it, compiling it
into jobs, and the two built-in works that decide and gather (see :mod:`actorwork.workflow`)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import msgspec

from actorwork.errors import UsageError, WorkFailed
from actorwork.messages import SubmitJob
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
    "Policy",
    "Sequence",
    "Step",
    "Workflow",
    "compile_workflow",
    "for_each",
    "node_id",
    "parallel",
    "sequence",
    "step",
    "when",
    "workflow",
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
    #: The queue of the nodes a workflow adds itself (None: the built-in works' own).
    queue: str | None = None


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
    """Turns a tree into submits, parents before children; the expanders and gathering
    nodes go to ``queue`` (None: their works' own, ``default``)."""

    workflow: str
    policy: str
    jobs: list[SubmitJob]
    queue: str | None = None

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
        queue = self.queue if options is None else options.queue
        job_id = node_id(self.workflow, path)
        self.jobs.append(
            SubmitJob(
                work=work_name,
                payload=payload,
                job_id=job_id,
                queue=queue,
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
            workflow=self.workflow,
            policy=self.policy,
            path=path,
            gather=gather,
            node=node,
            queue=self.queue,
        )
        before = [after] if after else []
        expander = self.submit(_join(path, segment), EXPAND, _encoder.encode(expand), before)
        if isinstance(node, Condition):
            spec = _GatherSpec(mode="pass", source=after or "")
        else:
            spec = _GatherSpec(mode="list", exclude=(*before, expander))
        return self.submit(path, GATHER, _encoder.encode(spec), [*before, expander])


def compile_workflow(
    flow: Workflow, payload: Any, workflow_id: str, policy: str, *, queue: str | None = None
) -> list[SubmitJob]:
    """The submits of ``flow``'s tree for ``payload``, every parent before its children;
    the nodes the workflow adds itself (expanders, gathering nodes) go to ``queue``."""
    compiler = _Compiler(workflow_id, policy, [], queue)
    compiler.node(flow.build(payload), flow.name, None)
    return compiler.jobs


# --- the built-in works -----------------------------------------------------------------


@work(name=EXPAND, retries=0, queue="default")
async def expand(ctx: WorkContext, spec: _ExpandSpec) -> Expansion:
    """Decide a condition or a fan-out, where work runs; the nodes to add."""
    compiler = _Compiler(spec.workflow, spec.policy, [], spec.queue)
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
        left = _Compiler(spec.workflow, spec.policy, [], spec.queue)
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
        # Added once this expander succeeded, a child waits for nothing; depending on
        # the expander would hand each child its whole expansion as ``ctx.parents``.
        tails.append(compiler.submit(path, node.work, payload, [], node))
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
