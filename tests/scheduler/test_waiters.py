"""The Scheduler's waiters: long polls answered at the finish or at their deadline."""

from __future__ import annotations

from typing import Any

from actorwork.messages import SubmitJobsReply, SubmitRefusedReply, SubmittedReply
from actorwork.scheduler.waiters import Gather, Slot, Waiters


class Handle:
    """A reply handle that remembers what it got."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.errors: list[Exception] = []

    def resolve(self, result: Any) -> None:
        self.results.append(result)

    def fail(self, error: Exception) -> None:
        self.errors.append(error)


def test_a_wait_ends_at_the_finish_or_at_its_deadline_never_both() -> None:
    waiters = Waiters()
    early, late, other = Handle(), Handle(), Handle()
    waiters.add("a", early, 10.0)
    waiters.add("a", late, 20.0)
    waiters.add("b", other, 15.0)
    assert len(waiters) == 3
    assert list(waiters.expired(12.0)) == [("a", early)]
    assert waiters.pop("a") == [late]  # the job finished: only the one still waiting
    assert list(waiters.expired(30.0)) == [("b", other)]  # late's entry is skipped
    assert len(waiters) == 0


def test_answered_waits_leave_the_heap_once_they_are_most_of_it() -> None:
    waiters = Waiters()
    handles = [Handle() for _ in range(3000)]
    for i, handle in enumerate(handles):
        waiters.add(f"job-{i}", handle, 600.0)
    for i in range(2990):
        waiters.pop(f"job-{i}")
    waiters.compact()
    assert waiters.entries == 10
    assert [job for job, _ in waiters.expired(601.0)] == [f"job-{i}" for i in range(2990, 3000)]


def test_clear_hands_back_every_waiting_handle() -> None:
    waiters = Waiters()
    a, b = Handle(), Handle()
    waiters.add("x", a, 1.0)
    waiters.add("y", b, 2.0)
    assert set(map(id, waiters.clear())) == {id(a), id(b)}
    assert (len(waiters), waiters.entries) == (0, 0)


def test_a_gather_replies_once_with_every_reply_in_order() -> None:
    handle = Handle()
    gather = Gather(handle, 3)
    slots = [Slot(gather, i) for i in range(3)]
    slots[2].resolve(SubmittedReply("c"))
    slots[0].resolve(SubmitRefusedReply("WorkNotFound", "nope"))
    assert handle.results == []
    slots[1].resolve(SubmittedReply("b"))
    slots[1].resolve(SubmittedReply("again"))  # a second answer changes nothing
    assert handle.results == [
        SubmitJobsReply(
            [SubmitRefusedReply("WorkNotFound", "nope"), SubmittedReply("b"), SubmittedReply("c")]
        )
    ]


def test_a_failed_slot_fails_the_gather_once() -> None:
    handle = Handle()
    gather = Gather(handle, 2)
    Slot(gather, 0).fail(RuntimeError("stopped"))
    Slot(gather, 1).resolve(SubmittedReply("b"))
    Slot(gather, 1).fail(RuntimeError("again"))
    assert [str(e) for e in handle.errors] == ["stopped"]
    assert handle.results == []


def test_a_nan_deadline_is_over_at_once_and_later_waits_still_run_out() -> None:
    """F22: a NaN at the top of the heap used to keep every wait from running out."""
    waiters = Waiters()
    poisoned, later, endless = Handle(), Handle(), Handle()
    waiters.add("a", poisoned, float("nan"))
    waiters.add("b", later, 5.0)
    waiters.add("c", endless, float("inf"))
    assert list(waiters.expired(1.0)) == [("a", poisoned)]
    assert list(waiters.expired(6.0)) == [("b", later)]
    assert list(waiters.expired(1e308)) == []  # an infinite wait ends with its job
    assert waiters.pop("c") == [endless]
    assert len(waiters) == 0
