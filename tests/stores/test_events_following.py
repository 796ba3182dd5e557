"""An event stream follows the leader: three Schedulers on one store, each a real
process listening on TCP (:mod:`tests.stores.fleet`), and a subscriber given all three
addresses, through :meth:`Client.events` and through the API's SSE ``/events`` (which
rides on it). The leader is SIGKILLed: each stream yields EventsLost once it has
subscribed at the new leader, then the events of a job submitted after the failover.
On PostgreSQL, and on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import msgspec
import pytest
from starlette.requests import Request

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.events import Event
from actorwork.node import system_from_settings
from actorwork.testing.stores import TemporaryPostgres
from actorwork.web.app import create_app
from tests.stores.fleet import Fleet

pytestmark = pytest.mark.slow

#: A guard against a hang, not a measure: a failover takes a few seconds.
PATIENCE = 120


async def as_dicts(events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
    """The events of a :meth:`Client.events` stream, each as its JSON-able dict."""
    async for event in events:
        yield msgspec.to_builtins(event)  # type: ignore[no-any-return]


async def sse_events(body: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The events of an SSE body, each chunk ``event: KIND\\ndata: JSON\\n\\n``."""
    async for chunk in body:
        kind, data = chunk.decode().strip().split("\n")
        event: dict[str, Any] = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        yield event


async def read_until(
    events: AsyncIterator[dict[str, Any]], kind: str, job_id: str = ""
) -> list[dict[str, Any]]:
    """Events up to and including the first of ``kind`` (and ``job_id``, if given)."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(PATIENCE):
        async for event in events:
            seen.append(event)
            if event["type"] == kind and event.get("job_id", "") == job_id:
                return seen
    raise AssertionError(f"the stream ended before {kind} {job_id}: {seen}")


async def test_event_streams_subscribe_again_at_the_new_leader(
    fleet: tuple[Fleet, tuple[TemporaryPostgres | None, str]],
) -> None:
    cluster, (server, database) = fleet
    cluster.start_all()
    config = load_config(cluster.config)
    async with AsyncExitStack() as stack:
        system = await stack.enter_async_context(
            system_from_settings(config.system, name="test-subscriber")
        )
        client = await stack.enter_async_context(
            Client(system, config.scheduler.address, connect_timeout=PATIENCE)
        )
        await client.ping(timeout=PATIENCE)
        assert client.follows_leader
        stream = await stack.enter_async_context(client.events())
        app = create_app(client)
        scope = {"type": "http", "method": "GET", "query_string": b"", "headers": [], "app": app}
        response = await app.state.api.events(Request(scope))
        body = response.body_iterator
        stack.push_async_callback(body.aclose)  # type: ignore[attr-defined]
        streams = {"client": as_dicts(stream), "sse": sse_events(body)}  # type: ignore[arg-type]

        before = await client.submit("noop")
        for events in streams.values():
            await read_until(events, "job.succeeded", before.id)

        cluster.kill(cluster.leader(server, database))
        # Each stream subscribes at the new leader before it tells of the gap.
        for name, events in streams.items():
            lost = (await read_until(events, "events.lost"))[-1]
            assert lost["count"] >= 1, (name, lost)

        after = await client.submit("noop")
        for name, events in streams.items():
            seen = await read_until(events, "job.succeeded", after.id)
            kinds = [event["type"] for event in seen if event.get("job_id") == after.id]
            assert kinds[0] == "job.submitted", (name, kinds)
    cluster.stop_all()
