"""The names ``actorwork`` exports: what a user constructs, and nothing a config starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anyio.abc import AsyncResource

import actorwork
from actorwork import ActorSystem, Client, JobSystem, load_config
from actorwork.chromium.browser import Chromium
from actorwork.cli.demo import Greet, Greeting
from actorwork.docker.engine import Engine
from actorwork.node import Node
from actorwork.transports.base import Connection, Listener
from tests.jobs import works


def test_every_exported_name_exists() -> None:
    missing = [name for name in actorwork.__all__ if not hasattr(actorwork, name)]
    assert missing == []


def test_node_is_exported() -> None:
    assert "Node" in actorwork.__all__
    assert actorwork.Node is Node


def test_roles_a_configuration_starts_are_imported_from_their_packages() -> None:
    assert {"Pool", "Scheduler", "Worker"}.isdisjoint(actorwork.__all__)


@pytest.mark.parametrize(
    "resource",
    [Connection, Listener, ActorSystem, JobSystem, Node, Client, Engine, Chromium],
    ids=lambda cls: cls.__name__,
)
def test_what_is_closed_closes_one_way(resource: type) -> None:
    """``async with`` and ``aclose()`` come from anyio's AsyncResource, not a pair of our own."""
    assert issubclass(resource, AsyncResource)
    assert resource.__aexit__ is AsyncResource.__aexit__


async def test_a_node_closes_its_systems_once(tmp_path: Path) -> None:
    path = tmp_path / "actorwork.toml"
    path.write_text(
        '[actors.greeter]\nfactory = "actorwork.cli.demo:Greeter"\naddress = "inproc://api-node"\n'
    )
    node = Node(load_config(path, env={}))
    async with node:
        greeter = await node.ref("greeter")
        reply = await greeter.ask(Greet("ada"))
        assert isinstance(reply, Greeting)
        assert reply.count == 1
    await node.aclose()  # a second close changes nothing
    with pytest.raises(RuntimeError, match="async with"):
        await node.host()


def test_a_bad_argument_is_an_actorwork_error_and_still_a_value_error() -> None:
    with pytest.raises(actorwork.ActorworkError, match="retries must be 0 or more, got -1"):
        actorwork.work(retries=-1)
    with pytest.raises(ValueError, match="timeout must be positive"):
        actorwork.work(timeout=0)


async def test_a_handle_is_awaited_for_its_result(actorwork_jobs: Any) -> None:
    handle = await actorwork_jobs.submit(works.add, works.Pair(2, 3))
    assert await handle == 5
