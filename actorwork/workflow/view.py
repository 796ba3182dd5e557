"""A workflow as it is seen: its nodes' jobs as a tree with one status, and which of
them a retry runs again, in what order (see :mod:`actorwork.workflow`)."""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from actorwork.messages import TERMINAL, JobView
from actorwork.workflow.tree import NOT_TAKEN

__all__ = ["WorkflowNode", "WorkflowView", "depth", "retry_order", "workflow_view"]


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
