"""Middleware named in ``[jobs] middleware``: checked when the config loads, and run by
every role (the client's submit hook, the worker's run hook) inline and in a process
pool, whose workers load it in their own process."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from actorwork import JobSystem
from actorwork.config import Config, load_config
from actorwork.errors import ConfigError, SubmitRefused
from actorwork.topology import start_pools, start_scheduler
from tests.jobs import event_works, hooks, works

MODULES = ["tests.jobs.works", "tests.jobs.event_works"]


def _config(
    tmp_path: Path, kind: str, middleware: list[str], *, topology: str = "", address: str = ""
) -> Config:
    data: dict[str, Any] = {
        "jobs": {
            "topology": topology or ("local" if kind == "process" else "inline"),
            "modules": MODULES,
            "middleware": middleware,
        },
        "scheduler": {
            "address": address or f"inproc://config-middleware-{tmp_path.name}",
            "store": f"{tmp_path}/jobs.db",
        },
        "pools": {
            "main": {"kind": kind, "size": 1, "outbox": f"{tmp_path}/outbox", "heartbeat": 0.5}
        },
    }
    return load_config(data=data, env={})


@pytest.mark.parametrize("kind", ["local", "process"])
async def test_a_tenant_added_by_config_middleware_reaches_the_work(
    tmp_path: Path, kind: str
) -> None:
    config = _config(tmp_path, kind, ["tests.jobs.hooks:Tenant"])
    hooks.SEEN.clear()
    async with JobSystem(config) as jobs:
        handle = await jobs.submit(event_works.context)
        seen = await handle.result(timeout=60)
    assert seen["tenant"] == "acme"
    # The worker's run hook ran, in the worker's process: a child for a process pool.
    ran_here = seen["run_hook_pid"] == str(os.getpid())
    assert ran_here == (kind == "local")
    # The Scheduler's hooks, from the same config.
    assert [("dispatch", handle.id, "acme"), ("commit", handle.id, "succeeded")] == hooks.SEEN


async def test_config_middleware_runs_in_each_role_of_a_distributed_system(
    tmp_path: Path,
) -> None:
    """A Scheduler and a Pool listening and connecting over unix://, each started from
    the config as ``actorwork scheduler`` and ``actorwork pool`` start them, and a
    client of the distributed topology."""
    address = f"unix://{tmp_path}/s.sock"
    roles = _config(tmp_path, "local", ["tests.jobs.hooks:Tenant"], address=address)
    client = _config(
        tmp_path, "local", ["tests.jobs.hooks:Tenant"], topology="distributed", address=address
    )
    hooks.SEEN.clear()
    async with AsyncExitStack() as stack:
        await start_scheduler(stack, roles)
        await start_pools(stack, roles)
        async with JobSystem(client) as jobs:
            handle = await jobs.submit(event_works.context)
            seen = await handle.result(timeout=60)
    assert seen["tenant"] == "acme"
    assert "run_hook_pid" in seen
    assert hooks.SEEN[0] == ("dispatch", handle.id, "acme")


async def test_config_middleware_refuses_a_submit_with_a_clear_error(tmp_path: Path) -> None:
    config = _config(tmp_path, "local", ["tests.jobs.hooks:closed_for_adding"])
    async with JobSystem(config) as jobs:
        with pytest.raises(
            SubmitRefused,
            match=r"middleware tests\.jobs\.hooks\.NoAdding refused a submit of work 'add': "
            "adding is closed today",
        ):
            await jobs.submit(works.add, works.Pair(1, 2))
        assert await (await jobs.submit(works.noop)).result(timeout=60) is None


async def test_config_middleware_sees_each_job_of_a_submit_many(tmp_path: Path) -> None:
    config = _config(tmp_path, "local", ["tests.jobs.hooks:Tenant", "tests.jobs.hooks:NoAdding"])
    async with JobSystem(config) as jobs:
        handles = await jobs.submit_many(event_works.context, [None, None])
        for handle in handles:
            assert (await handle.result(timeout=60))["tenant"] == "acme"
        with pytest.raises(SubmitRefused, match=r"payloads\[0\]: middleware .* closed today"):
            await jobs.submit_many(works.add, [works.Pair(1, 2)])


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("tests.jobs.hooks", "must look like 'package.module:attribute'"),
        ("tests.jobs.nowhere:Tenant", "cannot import 'tests.jobs.nowhere:Tenant'"),
        ("tests.jobs.hooks:NeedsArguments", "cannot be made with no arguments: TypeError"),
        ("tests.jobs.hooks:os", "has none of the hooks"),
    ],
)
def test_a_bad_middleware_entry_is_a_config_error_naming_key_and_value(
    tmp_path: Path, entry: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(tmp_path, "local", ["tests.jobs.hooks:Tenant", entry])
    message = str(raised.value)
    assert f"jobs.middleware[1] = {entry!r}" in message
    assert problem in message
