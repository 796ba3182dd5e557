"""Dependencies and ``Client.map`` through the client, on an inline job system."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from actorwork.cli.jobs import format_job
from actorwork.errors import JobFailed, JobNotFound
from actorwork.testing import job_system
from tests.jobs import works
from tests.jobs.works_workflows import double

MODULES = ("tests.jobs.works", "tests.jobs.works_workflows")


async def test_a_child_runs_after_its_parents_with_their_values() -> None:
    async with job_system(MODULES) as jobs:
        a = await jobs.submit(works.add, works.Pair(x=1, y=2))
        b = await jobs.submit(double, 5)
        total = await jobs.submit(works.add, works.Pair(x=0, y=0), depends_on=[a, b.id])
        assert (await total.view()).depends_on == (a.id, b.id)
        await jobs.run_until_idle()
        assert await total.status() == "succeeded"
        failed = await jobs.submit(works.refuse)
        await jobs.run_until_idle()
        skipped = await jobs.submit(works.noop, depends_on=[failed])
        after_failure = await jobs.submit(works.noop, depends_on=[failed], when="failed")
        await jobs.run_until_idle()
        view = await skipped.view()
        assert view.status == "skipped"
        assert view.error == (
            f"parent {failed.id!r} ended failed; this job runs when its parents succeeded"
        )
        assert await after_failure.status() == "succeeded"
        with pytest.raises(JobFailed, match="ended skipped"):
            await skipped.result()
        shown = format_job(view)
        assert f"  after    {failed.id} (runs when they succeeded)" in shown
        assert "status   skipped" in shown


async def test_unknown_parents_are_refused_naming_them() -> None:
    async with job_system(MODULES) as jobs:
        known = await jobs.submit(works.noop)
        with pytest.raises(JobNotFound, match="depends_on names unknown jobs: 'nope', 'nada'"):
            await jobs.submit(works.noop, depends_on=[known, "nope", "nada"])
        with pytest.raises(ValueError, match=r"when must be .* got 'sometimes'"):
            await jobs.submit(works.noop, depends_on=[known], when="sometimes")  # type: ignore[arg-type]
        await jobs.run_until_idle()


async def test_map_keeps_at_most_window_in_flight_and_reads_the_source_lazily() -> None:
    taken: list[int] = []
    in_flight: list[int] = []

    def source() -> Iterator[int]:
        for n in range(12):
            taken.append(n)
            yield n

    async with job_system(MODULES) as jobs:
        got = []
        async for value in jobs.client.map(double, source(), window=3, ordered=True):
            # When a value is handed over, at most the window was ever taken beyond it.
            in_flight.append(len(taken) - len(got))
            got.append(value)
        assert got == [2 * n for n in range(12)]
        assert max(in_flight) <= 3
        assert len(taken) == 12


async def test_map_does_not_read_ahead_of_capacity() -> None:
    taken: list[int] = []

    def source() -> Iterator[int]:
        for n in range(100):
            taken.append(n)
            yield n

    async with job_system(MODULES) as jobs:
        results = jobs.client.map(double, source(), window=4)
        first = await anext(results)
        assert first in {0, 2, 4, 6}
        await anyio.sleep(0.2)  # give a reader that reads ahead every chance
        assert len(taken) == 5  # the window, and one for the value handed over: no more
        await results.aclose()


async def test_map_from_an_open_queue_in_completion_order() -> None:
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def from_queue() -> AsyncIterator[int]:
        while (item := await queue.get()) is not None:
            yield item

    async with job_system(MODULES) as jobs:
        for n in range(5):
            queue.put_nowait(n)
        got = []
        async for value in jobs.client.map(double, from_queue(), window=2):
            got.append(value)
            if len(got) == 5:
                queue.put_nowait(None)
        assert sorted(got) == [0, 2, 4, 6, 8]


async def test_map_raises_a_failed_job_where_its_value_would_come() -> None:
    async with job_system(MODULES) as jobs:
        with pytest.raises(JobFailed, match="not today"):
            async for _ in jobs.client.map(works.refuse, [None], window=2):
                pass
        with pytest.raises(ValueError, match="window must be at least 1, got 0"):
            async for _ in jobs.client.map(double, [1], window=0):
                pass
