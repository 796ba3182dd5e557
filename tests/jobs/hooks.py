"""Middleware the config tests name by path; importable by child processes."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from actorwork.errors import SubmitRefused
from actorwork.messages import JobSpec, JobView, SubmitJob
from actorwork.middleware import Middleware, with_context
from actorwork.work import WorkContext


class Tenant(Middleware):
    """Adds ``tenant = "acme"`` to every submit; the run hook says which process (and
    host: a container has its own) ran it."""

    def submit(self, job: SubmitJob) -> SubmitJob:
        return with_context(job, tenant="acme")

    def dispatch(self, job: JobSpec) -> None:
        SEEN.append(("dispatch", job.id, job.context.get("tenant", "")))

    def commit(self, job: JobView) -> None:
        SEEN.append(("commit", job.id, job.status))

    async def run(self, ctx: WorkContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
        value = await call_next()
        if isinstance(value, dict):
            return {
                **value,
                "run_hook_pid": str(os.getpid()),
                "run_hook_host": socket.gethostname(),
            }
        return value


#: What the Scheduler's hooks of :class:`Tenant` saw, in this process: ("dispatch" or
#: "commit", job id, tenant).
SEEN: list[tuple[str, str, str]] = []


class NoAdding(Middleware):
    """Refuses every submit of the work ``add``."""

    def submit(self, job: SubmitJob) -> SubmitJob | None:
        if job.work == "add":
            raise SubmitRefused("adding is closed today")
        return None


def closed_for_adding() -> NoAdding:
    """A factory: config calls it with no arguments."""
    return NoAdding()


class NeedsArguments(Middleware):
    """Cannot be made from config: its constructor takes an argument."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
