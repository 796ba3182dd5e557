"""Tell and ask over every route: replies, order, timeouts, rejection, encoding, back-pressure."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, assert_never

import anyio
import pytest

from actorwork import (
    Actor,
    ActorNotFound,
    ActorSystem,
    AskTimeout,
    Message,
    MessageRejected,
)
from actorwork.errors import MessageEncodeError
from actorwork.runtime.actor import Reply

from .conftest import Block, Echo, EchoReply, Holding, Outcome

if TYPE_CHECKING:
    from .conftest import OpenHost, OpenPair


class Note(Message, tag="test.messaging.note"):
    value: int


class Chunk(Message, tag="test.messaging.chunk"):
    value: int
    payload: bytes


class GetNotes(Message, tag="test.messaging.get-notes"):
    pass


class NotesReply(Message, tag="test.messaging.notes-reply"):
    values: list[int]


class Stranger(Message, tag="test.messaging.stranger"):
    """A message no actor here accepts."""


class Opaque(Message, tag="test.messaging.opaque"):
    value: Any


class Worker(Holding):
    """Records notes, echoes, and holds Block."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[int] = []

    async def receive(
        self, message: Note | Chunk | GetNotes | Echo | Block
    ) -> NotesReply | EchoReply | None:
        match message:
            case Note(value=value) | Chunk(value=value):
                self.notes.append(value)
                return None
            case GetNotes():
                return NotesReply(list(self.notes))
            case Echo(text=text):
                return EchoReply(text)
            case Block():
                await self.hold()
                return EchoReply("released")
            case _:
                assert_never(message)


# --- tell and ask -----------------------------------------------------------------------


async def test_ask_returns_the_reply(actor_host: OpenHost) -> None:
    async with actor_host() as host:
        worker = await host.spawn(Worker(), name="worker")
        assert await worker.ask(Echo("hello")) == EchoReply("hello")


async def test_tells_are_handled_in_the_order_sent(actor_host: OpenHost) -> None:
    async with actor_host() as host:
        worker = await host.spawn(Worker(), name="worker")
        for value in range(200):
            await worker.tell(Note(value))
        assert await worker.ask(GetNotes()) == NotesReply(list(range(200)))


async def test_ask_of_a_handler_returning_none_returns_none(actor_host: OpenHost) -> None:
    async with actor_host() as host:
        actor = Worker()
        worker = await host.spawn(actor, name="worker")
        assert await worker.ask(Note(7)) is None
        assert actor.notes == [7]


async def test_ask_without_reply_in_time_raises_ask_timeout(actor_host: OpenHost) -> None:
    async with actor_host() as host:
        actor = Worker()
        worker = await host.spawn(actor, name="worker")
        try:
            with pytest.raises(AskTimeout, match="worker") as info:
                await worker.ask(Block(), timeout=0.05)
            assert isinstance(info.value, TimeoutError)
        finally:
            actor.release.set()
        # The late reply to the timed-out ask is dropped; the next ask gets its own.
        assert await worker.ask(Echo("after")) == EchoReply("after")


class Later(Message, tag="test.messaging.later"):
    """Answered only when a following :class:`Echo` arrives (a deferred reply)."""


class Deferring(Actor):
    """Holds the reply to each Later and answers it with the next Echo's text."""

    def __init__(self) -> None:
        self.held: list[Reply] = []

    async def receive(self, message: Later | Echo) -> EchoReply | None:
        match message:
            case Later():
                reply = self.defer_reply()
                assert reply is not None
                self.held.append(reply)
                return None
            case Echo(text=text):
                for reply in self.held:
                    reply.resolve(EchoReply(text))
                self.held.clear()
                return EchoReply("sent")
            case _:
                assert_never(message)


async def test_a_deferred_reply_reaches_the_asker_when_resolved(actor_host: OpenHost) -> None:
    async with actor_host() as host:
        actor = await host.spawn(Deferring(), name="deferring")
        async with anyio.create_task_group() as tg:
            first, second = Outcome(), Outcome()
            tg.start_soon(first.run, actor.ask(Later()))
            tg.start_soon(second.run, actor.ask(Later()))
            await host.settle()
            assert not first.done.is_set()
            assert await actor.ask(Echo("both")) == EchoReply("sent")
        assert (first.value, second.value) == (EchoReply("both"), EchoReply("both"))


# --- messages the actor does not accept ------------------------------------------------


async def test_local_send_of_an_unaccepted_type_raises_message_rejected() -> None:
    async with ActorSystem("local") as system:
        worker = await system.spawn(Worker(), name="worker")
        with pytest.raises(MessageRejected) as info:
            await worker.tell(Stranger())
        text = str(info.value)
        assert "Stranger" in text
        assert "accepts: Block, Chunk, Echo, GetNotes, Note" in text
        with pytest.raises(MessageRejected, match="Stranger"):
            await worker.ask(Stranger())
        assert await worker.ask(Echo("still here")) == EchoReply("still here")


async def test_remote_ask_of_an_unaccepted_type_raises_message_rejected(
    system_pair: OpenPair,
) -> None:
    async with system_pair() as pair:
        await pair.server.spawn(Worker(), name="worker")
        worker = await pair.remote("worker")
        with pytest.raises(MessageRejected, match="Stranger"):
            await worker.ask(Stranger())
        assert await worker.ask(Echo("still here")) == EchoReply("still here")


async def test_remote_tell_of_an_unaccepted_type_is_logged_and_dropped(
    system_pair: OpenPair, captured_logs: list[dict[str, Any]]
) -> None:
    async with system_pair() as pair:
        await pair.server.spawn(Worker(), name="worker")
        worker = await pair.remote("worker")
        [link] = pair.client.links
        await worker.tell(Stranger())
        await worker.tell(Note(1))
        # The ask travels behind both tells, so its answer shows how they were handled.
        assert await worker.ask(GetNotes()) == NotesReply([1])
        assert pair.client.links == [link]
        assert not link.closed
    rejected = [e for e in captured_logs if e["event"] == "message_rejected"]
    assert len(rejected) == 1
    assert rejected[0]["recipient"] == "worker"
    assert "Stranger" in rejected[0]["reason"]


async def test_remote_ask_of_an_unknown_actor_raises_actor_not_found(
    system_pair: OpenPair, captured_logs: list[dict[str, Any]]
) -> None:
    async with system_pair() as pair:
        nobody = await pair.remote("nobody")
        with pytest.raises(ActorNotFound, match="nobody"):
            await nobody.ask(Echo("anyone?"))
        await nobody.tell(Echo("anyone?"))
        await pair.server.spawn(Worker(), name="worker")
        worker = await pair.remote("worker")
        assert await worker.ask(Echo("hello")) == EchoReply("hello")
    rejected = [e for e in captured_logs if e["event"] == "message_rejected"]
    assert [e["recipient"] for e in rejected] == ["nobody", "nobody"]


# --- encoding ----------------------------------------------------------------------------


async def test_unencodable_message_fails_at_the_sender(system_pair: OpenPair) -> None:
    async with system_pair() as pair:
        await pair.server.spawn(Worker(), name="worker")
        worker = await pair.remote("worker")
        with pytest.raises(MessageEncodeError, match="Opaque"):
            await worker.tell(Opaque(object()))
        with pytest.raises(MessageEncodeError, match="Opaque"):
            await worker.ask(Opaque(object()))
        assert await worker.ask(Echo("still linked")) == EchoReply("still linked")


# --- back-pressure -----------------------------------------------------------------------


async def test_full_mailbox_holds_back_a_local_sender() -> None:
    async with ActorSystem("local") as system, anyio.create_task_group() as tg:
        actor = Worker()
        worker = await system.spawn(actor, name="worker", mailbox_capacity=2)
        try:
            await worker.tell(Block())
            await actor.blocked.wait()  # Block has left the mailbox: two places free
            await worker.tell(Note(1))
            await worker.tell(Note(2))
            third = Outcome()
            tg.start_soon(third.run, worker.tell(Note(3)))
            await anyio.wait_all_tasks_blocked()
            assert not third.done.is_set()
        finally:
            actor.release.set()
        await third.done.wait()
        assert third.error is None
        assert await worker.ask(GetNotes()) == NotesReply([1, 2, 3])


# More than fits between a sender and a blocked actor: inproc holds about 6150 frames
# (4096 in its buffer, 1024 in the link's outbox, a batch in the writer's hands), unix
# and tcp on loopback a few thousand frames of this size in their socket buffers.
_FLOOD_COUNT = 10_000
_FLOOD_PAYLOAD = b"x" * 4096


async def test_full_mailbox_eventually_holds_back_a_remote_sender(
    system_pair: OpenPair,
) -> None:
    async def flood(worker: Any) -> int:
        for value in range(_FLOOD_COUNT):
            await worker.tell(Chunk(value, _FLOOD_PAYLOAD))
        return _FLOOD_COUNT

    async with system_pair() as pair, anyio.create_task_group() as tg:
        actor = Worker()
        await pair.server.spawn(actor, name="worker", mailbox_capacity=2)
        worker = await pair.remote("worker")
        try:
            await worker.tell(Block())
            await actor.blocked.wait()
            sender = Outcome()
            tg.start_soon(sender.run, flood(worker))
            await anyio.wait_all_tasks_blocked()
            assert not sender.done.is_set()
        finally:
            actor.release.set()
        await sender.done.wait()
        assert sender.error is None
        notes = await worker.ask(GetNotes())
        assert notes.values == list(range(_FLOOD_COUNT))


# --- bugs --------------------------------------------------------------------------------


class Relay(Message, tag="test.messaging.relay"):
    """Ask the sender of this message for an Echo, and record what came back."""


class Relayer(Actor):
    def __init__(self) -> None:
        self.answered = anyio.Event()
        self.answer: object = None

    async def receive(self, message: Relay | Note) -> None:
        match message:
            case Relay():
                assert self.sender is not None
                try:
                    self.answer = await self.sender.ask(Echo("ping"), timeout=1.0)
                except Exception as exc:
                    self.answer = exc
                self.answered.set()
            case Note():
                pass
            case _:
                assert_never(message)


class Replier(Holding):
    """Answers Echo only once the test releases it."""

    async def receive(self, message: Echo) -> EchoReply:
        await self.hold()
        return EchoReply(message.text)


async def test_reply_is_not_stuck_behind_a_full_mailbox(system_pair: OpenPair) -> None:
    async with system_pair() as pair:
        relayer = Relayer()
        await pair.server.spawn(relayer, name="relayer", mailbox_capacity=1)
        replier = Replier()
        replier_ref = await pair.client.spawn(replier, name="replier")
        remote_relayer = await pair.remote("relayer")
        await remote_relayer.tell(Relay(), sender=replier_ref)
        await replier.blocked.wait()  # the relayer is now waiting for the replier's answer
        await remote_relayer.tell(Note(1))  # fills the relayer's mailbox
        await remote_relayer.tell(Note(2))  # cannot be delivered until the relayer is done
        replier.release.set()  # the reply is sent on the connection after the notes
        await relayer.answered.wait()
        assert relayer.answer == EchoReply("ping")


class Trigger(Message, tag="test.messaging.trigger"):
    """Handled by cancelling the task the test stored in the actor."""


class Canceller(Holding):
    def __init__(self) -> None:
        super().__init__()
        self.victim: asyncio.Task[None] | None = None
        self.notes: list[int] = []

    async def receive(self, message: Block | Trigger | Note) -> None:
        match message:
            case Block():
                await self.hold()
            case Trigger():
                assert self.victim is not None
                self.victim.cancel()
            case Note(value=value):
                self.notes.append(value)
            case _:
                assert_never(message)


async def test_cancelled_sender_does_not_strand_the_next_one() -> None:
    async with ActorSystem("local") as system:
        actor = Canceller()
        ref = await system.spawn(actor, name="canceller", mailbox_capacity=1)
        await ref.tell(Block())
        await actor.blocked.wait()
        await ref.tell(Trigger())  # the mailbox is now full
        first = asyncio.ensure_future(ref.tell(Note(1)))
        second = asyncio.ensure_future(ref.tell(Note(2)))
        actor.victim = first
        try:
            await anyio.wait_all_tasks_blocked()  # both senders wait for room
            # Taking Trigger wakes the first sender, and handling it cancels that sender
            # before it could use the room.
            actor.release.set()
            await anyio.wait_all_tasks_blocked()
            assert first.cancelled()
            assert second.done()
        finally:
            second.cancel()
            await asyncio.gather(first, second, return_exceptions=True)
