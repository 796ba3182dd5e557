"""What a client gives beside submit: ping, submit_many, patience with a Scheduler
that is not there yet, and pools added to and removed from a running inline system."""

from __future__ import annotations

import socket
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from actorwork import SyncClient
from actorwork.client import Client
from actorwork.config import load_config
from actorwork.errors import ConfigError, PayloadError, TransportError, WorkNotFound
from actorwork.messages import SubmitJob
from actorwork.runtime import ActorSystem
from actorwork.testing import InlineJobs, job_system
from actorwork.topology import start_scheduler
from tests.jobs import works

MODULES = ["tests.jobs.works"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(jobs: InlineJobs, job_id: str, status: str) -> None:
    with anyio.fail_after(30):
        while (await jobs.client.get(job_id)).status != status:  # noqa: ASYNC110 - polls the Scheduler
            await anyio.sleep(0.01)


# --- ping ---------------------------------------------------------------------------------


async def test_ping_is_answered_by_the_scheduler() -> None:
    async with job_system(MODULES) as jobs:
        took = await jobs.client.ping()
        assert took >= 0
        assert await jobs.system.ping(timeout=5) >= 0


async def test_ping_of_no_scheduler_names_the_address_and_how_long_it_tried() -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    async with ActorSystem("client") as system, Client(system, address) as client:
        with pytest.raises(TransportError) as refused:
            await client.ping(timeout=0.3)
    text = str(refused.value)
    assert f"cannot reach the Scheduler at {address!r}" in text
    assert "(connect_timeout=0.3)" in text


# --- patience with a Scheduler that is starting ----------------------------------------


async def test_a_client_gives_up_naming_the_address_and_its_connect_timeout() -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    async with (
        ActorSystem("client") as system,
        Client(system, address, connect_timeout=0.2) as client,
    ):
        with pytest.raises(TransportError) as refused:
            await client.get("some-job")
    text = str(refused.value)
    assert f"cannot reach the Scheduler at {address!r}: tried " in text
    assert "(connect_timeout=0.2); last error: cannot connect to" in text


async def test_a_client_waits_for_a_scheduler_that_starts_after_it(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    config = load_config(
        data={
            "jobs": {"topology": "distributed", "modules": MODULES},
            "scheduler": {"address": address, "store": str(tmp_path / "jobs.db")},
        },
        env={},
    )
    started, done = anyio.Event(), anyio.Event()

    async def serve_later() -> None:
        await anyio.sleep(1.0)  # the client has tried, and failed, to connect by now
        async with AsyncExitStack() as stack:
            await start_scheduler(stack, config)
            started.set()
            await done.wait()

    async with ActorSystem("client") as system, anyio.create_task_group() as tg:
        tg.start_soon(serve_later)
        async with Client(system, address, connect_timeout=30) as client:
            handle = await client.submit(works.add, works.Pair(1, 2))
            assert started.is_set()
            assert (await handle.view()).status == "queued"
        done.set()


# --- submit_many ----------------------------------------------------------------------------


async def test_five_thousand_jobs_submitted_in_bulk_all_run() -> None:
    async with job_system(MODULES) as jobs:
        pairs = [works.Pair(i, i) for i in range(5000)]
        handles = await jobs.system.submit_many(works.add, pairs)
        assert len(handles) == 5000
        assert len({h.id for h in handles}) == 5000
        await handles[-1].wait(timeout=300)
        with anyio.fail_after(300):
            while True:
                done = await jobs.client.list(status="succeeded", limit=6000)
                if len(done) == 5000:
                    break
                await anyio.sleep(0.2)
        assert {view.id for view in done} == {h.id for h in handles}
        assert await handles[4321].result() == 8642


async def test_a_refused_payload_names_its_index_and_nothing_is_sent() -> None:
    async with job_system(MODULES) as jobs:
        with pytest.raises(PayloadError, match=r"^payloads\[2\]: payload for work 'add' must be"):
            await jobs.client.submit_many(works.add, [{"x": 1, "y": 2}] * 2 + [{"x": "a"}])
        assert await jobs.client.list() == []


async def test_a_work_the_scheduler_does_not_know_is_refused_naming_the_index() -> None:
    async with job_system(MODULES) as jobs:
        with pytest.raises(WorkNotFound, match=r"^payloads\[0\]: .*'no-such-work'"):
            await jobs.client.submit_many("no-such-work", [1, 2, 3])


def test_bulk_submits_are_chunked_by_count_and_by_size() -> None:
    from actorwork.client import _chunks

    small = [SubmitJob(work="w", payload=b"x") for _ in range(5000)]
    assert [len(chunk) for chunk in _chunks(small, 10**9)] == [2000, 2000, 1000]
    big = [SubmitJob(work="w", payload=b"x" * 1000) for _ in range(10)]
    sizes = [len(chunk) for chunk in _chunks(big, 3000)]
    assert sizes == [2, 2, 2, 2, 2]  # ~1,130 bytes each: two fit in 3,000
    huge = [SubmitJob(work="w", payload=b"x" * 5000), *big[:2]]
    assert [len(chunk) for chunk in _chunks(huge, 3000)] == [1, 2]  # too big: alone
    assert [m for chunk in _chunks(small, 1000) for m in chunk] == small  # all, in order


def test_the_sync_client_submits_many_and_pings(tmp_path: Path) -> None:
    config = load_config(
        data={
            "jobs": {"modules": MODULES},
            "scheduler": {
                "address": f"inproc://extras-{tmp_path.name}",
                "store": str(tmp_path / "jobs.db"),
            },
            "pools": {"main": {"size": 4, "outbox": str(tmp_path / "outbox")}},
        },
        env={},
    )
    with SyncClient(config) as jobs:
        assert jobs.ping(timeout=10) >= 0
        handles = jobs.submit_many(works.add, ({"x": i, "y": 1} for i in range(200)))
        assert [h.result(timeout=60) for h in handles] == [i + 1 for i in range(200)]
        with pytest.raises(PayloadError, match=r"^payloads\[1\]: "):
            jobs.submit_many(works.add, [{"x": 1, "y": 1}, None])


# --- pools added to and removed from a running system --------------------------------------


async def test_a_pool_added_to_a_running_system_takes_its_queue() -> None:
    async with job_system(MODULES) as jobs:
        handle = await jobs.client.submit(works.add, works.Pair(2, 3), queue="pdf")
        assert (await handle.view()).status == "queued"  # no pool takes "pdf"
        await jobs.system.add_pool("pdf", {"queues": ["pdf"], "size": 1})
        assert await handle.result(timeout=30) == 5
        assert "pdf" in jobs.system.config.pools


async def test_a_removed_pool_drains_and_hands_back_what_runs() -> None:
    async with job_system(MODULES) as jobs:
        await jobs.system.add_pool("pdf", {"queues": ["pdf"], "size": 1})
        handle = await jobs.client.submit(works.sleep, 3600.0, queue="pdf")
        await _until(jobs, handle.id, "running")
        reply = await jobs.system.remove_pool("pdf", grace=0)
        assert reply is not None
        assert (reply.finished, reply.returned) == (0, 1)
        assert "pdf" not in jobs.system.config.pools
        await _until(jobs, handle.id, "queued")  # handed back, not lost nor dead
        later = await jobs.client.submit(works.add, works.Pair(1, 1), queue="pdf")
        await jobs.system.add_pool("pdf", {"queues": ["pdf"], "size": 2})
        assert await later.result(timeout=30) == 2
        await handle.cancel()


async def test_a_pool_is_refused_naming_the_key_the_name_or_the_system() -> None:
    async with job_system(MODULES) as jobs:
        with pytest.raises(ConfigError, match="sise"):
            await jobs.system.add_pool("x", {"sise": 2})
        with pytest.raises(ConfigError, match=r"pools\.x\.size = 0 must be 1 to"):
            await jobs.system.add_pool("x", {"size": 0})
        with pytest.raises(ConfigError, match=r"pools\.x\.kind = 'process' runs workers"):
            await jobs.system.add_pool("x", {"kind": "process"})
        name = next(iter(jobs.system.config.pools))
        with pytest.raises(ConfigError, match=f"a pool named {name!r} is already running"):
            await jobs.system.add_pool(name, {})
        with pytest.raises(ConfigError, match=r"no pool named 'nope' is running \(running: "):
            await jobs.system.remove_pool("nope")
        assert "x" not in jobs.system.config.pools
