"""Supervision and lifecycle: handler failures, stopping, on_start/on_stop, watch, clean exit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, assert_never

import anyio
import pytest

from actorwork import (
    Actor,
    ActorError,
    ActorNotFound,
    ActorStopped,
    ActorSystem,
    ActorworkError,
    Message,
    RemoteActorError,
    Terminated,
)
from actorwork.messages import Ping, Pong

from .conftest import Block, Echo, EchoReply, Holding, Outcome

if TYPE_CHECKING:
    from .conftest import OpenHost, OpenPair


class Fail(Message, tag="test.lifecycle.fail"):
    reason: str


class FailStopped(Message, tag="test.lifecycle.fail-stopped"):
    """Handled by raising ActorStopped, as a handler whose own ask failed would."""


class Supervised(Holding):
    """Answers Echo, fails on Fail, holds Block; records every on_failure call."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[tuple[Exception, Message]] = []

    async def receive(self, message: Echo | Fail | FailStopped | Block) -> EchoReply:
        match message:
            case Echo(text=text):
                return EchoReply(text)
            case Fail(reason=reason):
                raise ValueError(reason)
            case FailStopped():
                raise ActorStopped("the actor this handler asked has stopped")
            case Block():
                await self.hold()
                return EchoReply("released")
            case _:
                assert_never(message)

    async def on_failure(self, error: Exception, message: Message) -> None:
        self.failures.append((error, message))


class Fragile(Supervised):
    async def on_failure(self, error: Exception, message: Message) -> None:
        raise RuntimeError("on_failure gave up")


class Watcher(Actor):
    def __init__(self) -> None:
        self.terminated: list[Terminated] = []
        self.notified = anyio.Event()

    async def receive(self, message: Terminated) -> None:
        self.terminated.append(message)
        self.notified.set()


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


# --- handler failures --------------------------------------------------------------------


async def test_handler_failure_is_answered_logged_and_survived(
    actor_host: OpenHost, captured_logs: list[dict[str, Any]]
) -> None:
    async with actor_host() as host:
        actor = Supervised()
        worker = await host.spawn(actor, name="worker")

        with pytest.raises(RemoteActorError, match="boom") as info:
            await worker.ask(Fail("boom"))
        assert info.value.error_type == "ValueError"
        assert info.value.actor == "worker"
        await worker.tell(Fail("told"))

        # The actor goes on with later messages, and the system keeps running.
        assert await worker.ask(Echo("after")) == EchoReply("after")
        system_actor = await host.ref("_system")
        assert await system_actor.ask(Ping(b"alive")) == Pong(b"alive")

    assert [(type(e), e.args, m) for e, m in actor.failures] == [
        (ValueError, ("boom",), Fail("boom")),
        (ValueError, ("told",), Fail("told")),
    ]
    failed = [e for e in captured_logs if e["event"] == "actor_handler_failed"]
    assert [(e["log_level"], e["actor"], e["message_type"], e["message"]) for e in failed] == [
        ("error", "worker", "Fail", repr(Fail("boom"))),
        ("error", "worker", "Fail", repr(Fail("told"))),
    ]
    assert isinstance(failed[0]["exc_info"], ValueError)


async def test_handler_raising_an_actor_error_reaches_asker_as_remote_actor_error(
    actor_host: OpenHost, route: str, request: pytest.FixtureRequest
) -> None:
    async with actor_host() as host:
        worker = await host.spawn(Supervised(), name="worker")
        with pytest.raises(RemoteActorError) as info:
            await worker.ask(FailStopped())
        assert info.value.error_type == "ActorStopped"
        assert await worker.ask(Echo("alive")) == EchoReply("alive")


async def test_on_failure_raising_stops_the_actor(
    actor_host: OpenHost, captured_logs: list[dict[str, Any]]
) -> None:
    async with actor_host() as host:
        watcher = Watcher()
        watcher_ref = await host.system.spawn(watcher, name="watcher")
        worker = await host.spawn(Fragile(), name="fragile")
        host.system.watch(host.system.ref("fragile"), watcher_ref)

        with pytest.raises(RemoteActorError, match="boom"):
            await worker.ask(Fail("boom"))
        await watcher.notified.wait()

        [terminated] = watcher.terminated
        assert terminated.name == "fragile"
        assert "on_failure" in terminated.reason
        with pytest.raises(ActorNotFound):
            host.system.ref("fragile")
    assert any(e["event"] == "actor_on_failure_failed" for e in captured_logs)


async def test_ask_to_a_stopped_actor_fails(actor_host: OpenHost) -> None:
    async with actor_host() as host:
        worker = await host.spawn(Supervised(), name="worker")
        await host.system.stop(host.system.ref("worker"))
        # Locally the ref knows its actor stopped; a remote system only knows the name
        # is gone, so it answers ActorNotFound.
        with pytest.raises((ActorStopped, ActorNotFound), match="worker"):
            await worker.ask(Echo("anyone?"))


# --- stopping with messages pending --------------------------------------------------------


async def test_queued_asks_fail_when_the_actor_stops(actor_host: OpenHost) -> None:
    async with actor_host() as host, anyio.create_task_group() as tg:
        actor = Supervised()
        worker = await host.spawn(actor, name="worker")
        handled = Outcome()
        tg.start_soon(handled.run, worker.ask(Block()))
        await actor.blocked.wait()
        queued = [Outcome(), Outcome()]
        for outcome in queued:
            tg.start_soon(outcome.run, worker.ask(Echo("queued")))
        await host.settle()

        stopping = Outcome()
        tg.start_soon(stopping.run, host.system.stop(host.system.ref("worker")))
        for outcome in queued:
            await outcome.done.wait()
            assert isinstance(outcome.error, ActorStopped)
        assert not handled.done.is_set()

        # The message being handled when stop() came is finished and answered.
        actor.release.set()
        await handled.done.wait()
        assert handled.value == EchoReply("released")
        await stopping.done.wait()
        assert stopping.error is None


async def test_ask_being_handled_fails_when_stop_cancels_it(actor_host: OpenHost) -> None:
    async with actor_host() as host, anyio.create_task_group() as tg:
        actor = Supervised()
        worker = await host.spawn(actor, name="worker")
        handled = Outcome()
        tg.start_soon(handled.run, worker.ask(Block()))
        await actor.blocked.wait()
        try:
            await host.system.stop(host.system.ref("worker"), grace=0)
            await host.settle()
            await anyio.wait_all_tasks_blocked()
            assert handled.done.is_set()
            assert isinstance(handled.error, ActorStopped)
        finally:
            tg.cancel_scope.cancel()


async def test_remote_ask_pending_when_the_server_closes_fails(system_pair: OpenPair) -> None:
    async with anyio.create_task_group() as tg, system_pair() as pair:
        actor = Supervised()
        await pair.server.spawn(actor, name="worker")
        worker = await pair.remote("worker")
        pending = Outcome()
        tg.start_soon(pending.run, worker.ask(Block()))
        await actor.blocked.wait()
        # Waits out the stop grace of the blocked handler, then cancels it.
        await pair.server.aclose()
        await pending.done.wait()
        assert isinstance(pending.error, ActorStopped)


# --- on_start and on_stop ------------------------------------------------------------------


class StartFails(Actor):
    def __init__(self) -> None:
        self.stops = 0

    async def receive(self, message: Echo) -> None:
        pass

    async def on_start(self) -> None:
        raise RuntimeError("cannot start")

    async def on_stop(self) -> None:
        self.stops += 1


class CountsStops(Actor):
    def __init__(self) -> None:
        self.stops = 0

    async def receive(self, message: Echo) -> EchoReply:
        return EchoReply(message.text)

    async def on_stop(self) -> None:
        self.stops += 1


async def test_on_start_failure_makes_spawn_fail() -> None:
    async with ActorSystem("local") as system:
        with pytest.raises(BaseException) as info:  # noqa: PT011 - see the next test
            await system.spawn(StartFails(), name="starter")
        assert [(type(e), e.args) for e in _leaves(info.value)] == [
            (RuntimeError, ("cannot start",))
        ]
        with pytest.raises(ActorNotFound):
            system.ref("starter")
        # The name is free again and the system still runs.
        ref = await system.spawn(CountsStops(), name="starter")
        assert await ref.ask(Echo("up")) == EchoReply("up")


async def test_spawn_raises_the_on_start_exception_itself() -> None:
    async with ActorSystem("local") as system:
        with pytest.raises(RuntimeError, match="cannot start"):
            await system.spawn(StartFails(), name="starter")


async def test_on_stop_runs_once() -> None:
    stopped_early = CountsStops()
    stopped_at_close = CountsStops()
    async with ActorSystem("local") as system:
        ref = await system.spawn(stopped_early, name="early")
        await system.spawn(stopped_at_close, name="late")
        await system.stop(ref)
        await system.stop(ref)
        assert stopped_early.stops == 1
        assert stopped_at_close.stops == 0
    assert stopped_early.stops == 1
    assert stopped_at_close.stops == 1


# --- watch -----------------------------------------------------------------------------------


async def test_watcher_is_told_when_a_local_actor_stops() -> None:
    async with ActorSystem("local") as system:
        watcher = Watcher()
        watcher_ref = await system.spawn(watcher, name="watcher")
        target = await system.spawn(Supervised(), name="target")
        system.watch(target, watcher_ref)
        await system.stop(target)
        await watcher.notified.wait()
        assert [t.name for t in watcher.terminated] == ["target"]


async def test_watcher_is_told_when_a_remote_system_goes_away(system_pair: OpenPair) -> None:
    async with system_pair() as pair:
        watcher = Watcher()
        watcher_ref = await pair.client.spawn(watcher, name="watcher")
        await pair.server.spawn(Supervised(), name="target")
        target = await pair.remote("target")
        pair.client.watch(target, watcher_ref)
        await pair.server.aclose()
        await watcher.notified.wait()
        assert [t.name for t in watcher.terminated] == ["target"]
        # The ref still names its address; with no one listening it cannot reconnect.
        with pytest.raises(ActorworkError):
            await target.ask(Echo("anyone?"))


async def test_watcher_is_told_when_a_remote_actor_stops(system_pair: OpenPair) -> None:
    async with system_pair() as pair:
        watcher = Watcher()
        watcher_ref = await pair.client.spawn(watcher, name="watcher")
        await pair.server.spawn(Supervised(), name="target")
        target = await pair.remote("target")
        pair.client.watch(target, watcher_ref)
        await pair.server.stop(pair.server.ref("target"))
        # A round trip on the connection: whatever the server sent before is delivered.
        system_actor = await pair.remote("_system")
        assert await system_actor.ask(Ping()) == Pong()
        await anyio.wait_all_tasks_blocked()
        assert [t.name for t in watcher.terminated] == ["target"]


# --- refs of other systems ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["inproc"])
async def test_stop_of_a_remote_ref_leaves_a_local_namesake_running(
    system_pair: OpenPair,
) -> None:
    async with system_pair() as pair:
        await pair.server.spawn(Supervised(), name="worker")
        await pair.client.spawn(Supervised(), name="worker")
        remote = await pair.remote("worker")
        with contextlib.suppress(TypeError, ValueError, ActorError):
            await pair.client.stop(remote)
        local = pair.client.ref("worker")
        assert await local.ask(Echo("still here")) == EchoReply("still here")


# --- clean exit ------------------------------------------------------------------------------


class Background(Supervised):
    async def on_start(self) -> None:
        self.start_soon(anyio.sleep_forever)


async def test_no_tasks_are_left_after_the_systems_close(actor_host: OpenHost) -> None:
    before = asyncio.all_tasks()
    async with actor_host() as host:
        worker = await host.spawn(Background(), name="worker")
        assert await worker.ask(Echo("x")) == EchoReply("x")
        with pytest.raises(RemoteActorError):
            await worker.ask(Fail("boom"))
        await host.spawn(Background(), name="other")
        await host.system.stop(host.system.ref("other"))
    assert asyncio.all_tasks() == before
