"""The Pool's bookkeeping and timing rules as a pure state machine: times are passed
in as :class:`Now` values, nothing sleeps."""

from __future__ import annotations

import math

import pytest

from actorwork.clock import Now
from actorwork.errors import ConfigError
from actorwork.messages import JobKey, JobSpec, Outcome, WorkResult
from actorwork.pool.state import Attempt, PoolState

#: Wall readings sit far from monotonic ones, so a rule that mixes them up shows.
EPOCH = 1_750_000_000.0


def at(mono: float, wall: float | None = None) -> Now:
    """A reading ``mono`` seconds on the monotonic clock; the wall clock in step unless
    given."""
    return Now(mono, EPOCH + mono if wall is None else wall)


def spec(job_id: str, attempt: int = 1, timeout: float | None = None) -> JobSpec:
    return JobSpec(id=job_id, work="w", payload=b"\xc0", attempt=attempt, timeout=timeout)


def result(job_id: str, attempt: int = 1, outcome: Outcome = "succeeded") -> WorkResult:
    return WorkResult(job_id=job_id, attempt=attempt, outcome=outcome)


def pool(*workers: str, heartbeat: float = 5.0) -> PoolState:
    state = PoolState(name="p", heartbeat=heartbeat)
    for worker in workers:
        state.add_worker(worker)
    return state


# --- workers and attempts ----------------------------------------------------------------


def test_attempts_go_to_idle_workers_in_the_order_they_came_free() -> None:
    state = pool("w0", "w1")
    first = state.assign(spec("a"), at(10.0))
    second = state.assign(spec("b"), at(11.0))
    assert first == Attempt(spec("a"), "w0", at(10.0))
    assert second == Attempt(spec("b"), "w1", at(11.0))
    assert state.free == 0
    assert state.finished(result("b")) == second
    assert state.finished(result("a")) == first
    third = state.assign(spec("c"), at(12.0))
    assert isinstance(third, Attempt)
    assert third.worker == "w1"  # w1 came free first


def test_a_duplicate_dispatch_runs_once() -> None:
    state = pool("w0", "w1")
    assert isinstance(state.assign(spec("a"), at(0.0)), Attempt)
    assert state.assign(spec("a"), at(1.0)) is None
    assert state.free == 1
    # A new attempt of the same job is a different dispatch.
    assert isinstance(state.assign(spec("a", attempt=2), at(2.0)), Attempt)


def test_a_job_beyond_capacity_or_while_draining_is_returned() -> None:
    state = pool("w0")
    state.assign(spec("a"), at(0.0))
    full = state.assign(spec("b"), at(0.0))
    assert isinstance(full, WorkResult)
    assert (full.job_id, full.outcome, full.error) == (
        "b",
        "returned",
        "pool 'p' had no free worker",
    )
    state.finished(result("a"))
    state.drain(30.0, at(1.0))
    stopping = state.assign(spec("c"), at(2.0))
    assert isinstance(stopping, WorkResult)
    assert (stopping.outcome, stopping.error) == ("returned", "pool 'p' is stopping")
    assert state.running == {}


def test_a_lost_worker_ends_its_attempt_once_and_a_late_result_is_dropped() -> None:
    state = pool("w0", "w1")
    state.assign(spec("a"), at(5.0, wall=1005.0))
    error = "worker process exited (code -9) without a result"
    lost = state.lose("w0", error, at(7.5, wall=1007.5))
    assert lost is not None
    assert (lost.job_id, lost.attempt, lost.outcome) == ("a", 1, "lost")
    # The record's times are wall-clock readings.
    assert (lost.started, lost.finished, lost.worker, lost.pool) == (1005.0, 1007.5, "w0", "p")
    assert state.lose("w0", "again", at(8.0)) is None
    assert state.finished(result("a")) is None
    assert state.idle == ["w1"]  # the lost worker is replaced by the shell, not reused
    assert state.lose("w1", "idle worker gone", at(9.0)) is None


def test_hand_back_returns_every_running_attempt_and_frees_the_workers() -> None:
    state = pool("w0", "w1", "w2")
    state.assign(spec("a"), at(1.0, wall=101.0))
    state.assign(spec("b", attempt=3), at(2.0, wall=102.0))
    ended = state.hand_back(at(4.0, wall=104.0))
    assert [(a.key, r.outcome, r.started, r.finished) for a, r in ended] == [
        (JobKey("a", 1), "returned", 101.0, 104.0),
        (JobKey("b", 3), "returned", 102.0, 104.0),
    ]
    assert state.running == {}
    assert sorted(state.idle) == ["w0", "w1", "w2"]
    assert state.finished(result("a")) is None  # the worker's own result comes too late


# --- overrun attempts --------------------------------------------------------------------


def test_an_attempt_is_overdue_past_its_timeout_plus_the_grace() -> None:
    state = pool("w0", "w1", "w2")
    short = state.assign(spec("short", timeout=2.0), at(0.0))
    long = state.assign(spec("long", timeout=100.0), at(0.0))
    state.assign(spec("none"), at(0.0))
    assert isinstance(short, Attempt)
    assert isinstance(long, Attempt)
    assert state.next_deadline() == 3.0
    assert state.overdue(at(2.9)) == []
    assert state.overdue(at(3.0)) == [short]
    # The grace is at least a tenth of the timeout.
    assert state.next_deadline() == 110.0
    assert state.overdue(at(109.9)) == []
    assert state.overdue(at(110.0)) == [long]
    assert state.next_deadline() is None  # "none" has no timeout


def test_an_overdue_attempt_is_named_once_until_it_ends() -> None:
    state = pool("w0", "w1")
    slow = state.assign(spec("slow", timeout=10.0), at(0.0))
    assert state.overdue(at(11.0)) == [slow]
    # Its worker is being stopped: not named again, not waited for again.
    assert state.overdue(at(12.0)) == []
    assert state.overdue(at(500.0)) == []
    assert state.next_deadline() is None
    assert state.lose("w0", "killed after its timeout", at(12.5)) is not None
    assert state.stopping == set()
    # The same job again, on a fresh attempt, has a deadline of its own.
    state.add_worker("w2")
    again = state.assign(spec("slow", attempt=2, timeout=10.0), at(20.0))
    assert state.next_deadline() == 31.0
    assert state.overdue(at(31.0)) == [again]


def test_overrun_is_measured_on_the_monotonic_clock_not_the_calendar() -> None:
    """F18: the wall clock jumping an hour forward does not make an attempt overdue,
    nor one jumping back keep an overdue attempt running."""
    state = pool("w0", "w1")
    first = state.assign(spec("a", timeout=5.0), at(0.0, wall=EPOCH))
    assert state.overdue(at(1.0, wall=EPOCH + 3600.0)) == []
    assert state.overdue(at(6.0, wall=EPOCH - 3600.0)) == [first]


def test_a_finished_or_handed_back_attempt_is_no_longer_watched() -> None:
    state = pool("w0", "w1")
    state.assign(spec("a", timeout=1.0), at(0.0))
    state.assign(spec("b", timeout=1.0), at(0.0))
    assert len(state.overdue(at(2.0))) == 2
    state.finished(result("a"))
    state.hand_back(at(3.0))
    assert state.stopping == set()
    assert state.overdue(at(9.0)) == []


# --- graceful stop -----------------------------------------------------------------------


def test_a_drain_ends_at_its_deadline() -> None:
    state = pool("w0")
    assert (state.draining, state.drain_left(at(0.0))) == (False, math.inf)
    assert state.drain(10.0, at(100.0)) is True
    assert state.draining
    assert state.drain_left(at(100.0)) == 10.0
    assert state.drain_left(at(107.5)) == 2.5
    assert state.drain_left(at(110.0)) == 0.0
    assert state.drain_left(at(200.0)) == 0.0


def test_a_second_drain_shortens_the_grace_and_never_lengthens_it() -> None:
    state = pool("w0")
    state.drain(60.0, at(0.0))
    assert state.drain(120.0, at(10.0)) is False  # later than the deadline: kept
    assert state.drain_left(at(10.0)) == 50.0
    assert state.drain(5.0, at(20.0)) is False  # escalated: 5 s from now
    assert state.drain_left(at(20.0)) == 5.0
    assert state.drain(0.0, at(21.0)) is False  # hand back now
    assert state.drain_left(at(21.0)) == 0.0


@pytest.mark.parametrize("grace", [-1.0, math.nan])
def test_a_drain_with_a_grace_that_is_no_duration_is_refused_naming_it(grace: float) -> None:
    state = pool("w0")
    with pytest.raises(ConfigError, match=f"drain grace .* got {grace!r}"):
        state.drain(grace, at(0.0))
    assert not state.draining  # nothing began


# --- the Scheduler's answers -------------------------------------------------------------


def test_a_link_that_answers_nothing_for_three_heartbeats_is_silent() -> None:
    state = pool(heartbeat=0.5)
    state.linked(at(100.0))  # a new link counts as an answer
    assert not state.silent(at(101.4))
    assert state.silent(at(101.5))
    state.heartbeat_answered(at(101.2))  # an answer that was on its way
    assert not state.silent(at(102.6))
    assert state.silent(at(102.7))
    state.heartbeat_answered(at(100.5))  # a stale answer does not move it back
    assert state.answered == 101.2


def test_a_new_link_is_not_silent_whatever_the_old_one_was() -> None:
    state = pool(heartbeat=1.0)
    state.linked(at(0.0))
    assert state.silent(at(50.0))
    state.linked(at(50.0))
    assert not state.silent(at(52.9))


# --- results waiting for acknowledgement -------------------------------------------------


def test_an_outbox_entry_is_released_when_its_last_result_is_acknowledged() -> None:
    state = pool()
    state.hold("e1", [result("a"), result("b")])
    state.hold("e2", [result("c", attempt=2)])
    state.hold("e3", [])
    assert "e3" not in state.entries
    assert [r.job_id for r in state.to_deliver()] == ["a", "b", "c"]
    assert state.acknowledge(JobKey("a", 1)) is None
    assert state.acknowledge(JobKey("a", 1)) is None  # a repeated ack changes nothing
    assert state.acknowledge(JobKey("c", 1)) is None  # not an attempt held here
    assert state.acknowledge(JobKey("c", 2)) == "e2"
    assert state.acknowledge(JobKey("b", 1)) == "e1"
    assert state.unacked == {} == state.entries
    assert state.to_deliver() == []


def test_results_unacknowledged_for_three_heartbeats_are_reported_again() -> None:
    state = pool(heartbeat=2.0)  # three heartbeats: 6 s
    state.hold("e1", [result("a")], at(100.0))
    state.hold("e2", [result("b")], at(104.0))
    assert state.unanswered(at(105.0)) == []
    assert [r.job_id for r in state.unanswered(at(106.0))] == ["a"]
    assert state.unanswered(at(107.0)) == []  # "a" counts as reported at 106
    assert state.acknowledge(JobKey("b", 1)) == "e2"
    assert [r.job_id for r in state.unanswered(at(112.0))] == ["a"]  # not "b"
    assert [r.job_id for r in state.to_deliver(at(200.0))] == ["a"]  # a reconnect reports
    assert state.unanswered(at(205.0)) == []


def test_results_found_in_the_outbox_go_out_with_the_next_report() -> None:
    state = pool(heartbeat=2.0)
    state.hold("e1", [result("a")])  # read back at start, never reported
    assert [r.job_id for r in state.unanswered(at(0.0))] == ["a"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("heartbeat", 0.0), ("heartbeat", -1.0), ("heartbeat", math.inf), ("timeout_grace", -1.0)],
)
def test_settings_that_are_no_durations_are_refused_naming_them(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"pool {field} .* got {value!r}"):
        PoolState("p", **{field: value})  # type: ignore[arg-type]


def test_resending_after_no_heartbeat_at_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="resend_after must be at least 1, got 0"):
        PoolState("p", resend_after=0)
