"""Workflows: code plus input that builds a tree of jobs, run and watched as one.

::

    @actorwork.workflow
    def report(month: str) -> Node:
        return sequence(
            fetch=step(fetch_rows, month),
            charts=parallel(bar=step(chart, "bar"), pie=step(chart, "pie")),
            mail=when(has_rows, then=step(send_mail, month)),
            pdf=step(render_pdf, month),
        )

    flow = await client.submit_workflow(report, "2026-11")   # the workflow's id
    tree = await client.workflow(flow)          # every node: path, status, result, times

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

:mod:`.tree` holds the nodes, their compiling and the two built-in works;
:mod:`.view` the tree as it is seen (``client.workflow(id)``) and the order of a retry.

Failure policy: ``stop`` ends the rest of the workflow when a node fails (pending
nodes skipped, running ones cancelled); ``finish`` runs every node that does not
depend on the failed one. A node's dependants are skipped in both.
"""

from actorwork.workflow.tree import (
    EXPAND,
    GATHER,
    NOT_TAKEN,
    Condition,
    Expansion,
    ForEach,
    Node,
    Parallel,
    Policy,
    Sequence,
    Step,
    Workflow,
    compile_workflow,
    for_each,
    node_id,
    parallel,
    sequence,
    step,
    when,
    workflow,
)
from actorwork.workflow.view import (
    WorkflowNode,
    WorkflowView,
    depth,
    retry_order,
    workflow_view,
)

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
