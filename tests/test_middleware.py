"""Middleware: a submit refused with an error naming the middleware, context added by a
middleware and seen by the work, and hooks run in order around submit, dispatch,
commit and run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from actorwork import middleware
from actorwork.errors import SubmitRefused
from actorwork.messages import JobSpec, JobView, SubmitJob
from actorwork.middleware import Middleware, MiddlewareChain, with_context
from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs
from actorwork.work import WorkContext
from tests.jobs import event_works, works

MODULES = ["tests.jobs.works", "tests.jobs.event_works"]


@contextmanager
def registered(*items: object) -> Iterator[None]:
    for item in items:
        middleware.register(item)
    try:
        yield
    finally:
        for item in items:
            middleware.unregister(item)


@asynccontextmanager
async def inline(*items: object) -> AsyncIterator[InlineJobs]:
    with registered(*items):
        async with job_system(MODULES) as jobs:
            yield jobs


class NoAdding(Middleware):
    def submit(self, job: SubmitJob) -> SubmitJob | None:
        if job.work == works.add.name:
            raise SubmitRefused("adding is closed today")
        return None


class Tenant(Middleware):
    def submit(self, job: SubmitJob) -> SubmitJob:
        return with_context(job, tenant="acme")


class Recorder(Middleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def submit(self, job: SubmitJob) -> SubmitJob:
        self.calls.append(f"{self.name}.submit")
        order = job.context.get("order", "")
        return with_context(job, order=order + self.name)

    def dispatch(self, job: JobSpec) -> None:
        self.calls.append(f"{self.name}.dispatch:{job.context['order']}")

    def commit(self, job: JobView) -> None:
        self.calls.append(f"{self.name}.commit:{job.status}")

    async def run(self, ctx: WorkContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
        self.calls.append(f"{self.name}.run>")
        try:
            return await call_next()
        finally:
            self.calls.append(f"{self.name}.run<")


async def test_a_middleware_refuses_a_submit_naming_itself_and_others_go_on() -> None:
    async with inline(NoAdding()) as jobs:
        with pytest.raises(SubmitRefused, match=r"middleware \S*test_middleware\.NoAdding refused"):
            await jobs.submit(works.add, {"x": 1, "y": 2})
        with pytest.raises(SubmitRefused, match="adding is closed today"):
            await jobs.submit(works.add, {"x": 1, "y": 2})
        assert await (await jobs.submit(works.noop)).result(timeout=20) is None
        assert await jobs.client.list() != []


async def test_an_error_in_a_submit_hook_refuses_it_too() -> None:
    class Broken(Middleware):
        def submit(self, job: SubmitJob) -> SubmitJob:
            raise KeyError("tenant")

    chain = MiddlewareChain([Broken()], include_registered=False)
    with pytest.raises(SubmitRefused, match=r"Broken refused a submit of work 'noop': KeyError"):
        chain.submit(SubmitJob(work="noop", payload=b"\xc0"))


async def test_context_added_by_a_middleware_reaches_the_work() -> None:
    async with inline(Tenant()) as jobs:
        handle = await jobs.client.submit(event_works.context, context={"region": "eu"})
        assert await handle.result(timeout=20) == {"region": "eu", "tenant": "acme"}


async def test_hooks_run_in_order_around_submit_dispatch_commit_and_run() -> None:
    calls: list[str] = []
    async with inline(Recorder("a", calls), Recorder("b", calls)) as jobs:
        handle = await jobs.client.submit(event_works.context)
        assert await handle.result(timeout=20) == {"order": "ab"}
    assert calls == [
        "a.submit",
        "b.submit",
        "a.dispatch:ab",
        "b.dispatch:ab",
        "a.run>",
        "b.run>",
        "b.run<",
        "a.run<",
        "a.commit:succeeded",
        "b.commit:succeeded",
    ]


def test_middleware_by_path_is_made_and_an_object_without_hooks_is_refused() -> None:
    (made,) = middleware.load(["tests.test_middleware:Tenant"])
    assert type(made).__name__ == "Tenant"  # made from the class, not the class itself
    with pytest.raises(ValueError, match="has none of the hooks"):
        middleware.load(["tests.test_middleware:MODULES"])
    with pytest.raises(ValueError, match=r"cannot import 'tests\.nowhere:Thing'"):
        middleware.load(["tests.nowhere:Thing"])


def test_context_out_of_bounds_is_refused_at_the_client() -> None:
    from actorwork.codec import check

    with pytest.raises(Exception, match="context"):
        check(SubmitJob(work="noop", payload=b"", context={"k": "v" * 2000}))
