"""The Pool's bookkeeping as a pure state machine: times are passed in, nothing sleeps."""

from __future__ import annotations

from actorwork.messages import JobKey, JobSpec, Outcome, WorkResult
from actorwork.pool.state import Attempt, PoolState


def spec(job_id: str, attempt: int = 1, timeout: float | None = None) -> JobSpec:
    return JobSpec(id=job_id, work="w", payload=b"\xc0", attempt=attempt, timeout=timeout)


def result(job_id: str, attempt: int = 1, outcome: Outcome = "succeeded") -> WorkResult:
    return WorkResult(job_id=job_id, attempt=attempt, outcome=outcome)


def pool(*workers: str) -> PoolState:
    state = PoolState(name="p")
    for worker in workers:
        state.add_worker(worker)
    return state


def test_attempts_go_to_idle_workers_in_the_order_they_came_free() -> None:
    state = pool("w0", "w1")
    first = state.assign(spec("a"), now=10.0)
    second = state.assign(spec("b"), now=11.0)
    assert first == Attempt(spec("a"), "w0", 10.0)
    assert second == Attempt(spec("b"), "w1", 11.0)
    assert state.free == 0
    assert state.finished(result("b")) == second
    assert state.finished(result("a")) == first
    third = state.assign(spec("c"), now=12.0)
    assert isinstance(third, Attempt)
    assert third.worker == "w1"  # w1 came free first


def test_a_duplicate_dispatch_runs_once() -> None:
    state = pool("w0", "w1")
    assert isinstance(state.assign(spec("a"), now=0.0), Attempt)
    assert state.assign(spec("a"), now=1.0) is None
    assert state.free == 1
    # A new attempt of the same job is a different dispatch.
    assert isinstance(state.assign(spec("a", attempt=2), now=2.0), Attempt)


def test_a_job_beyond_capacity_or_while_draining_is_returned() -> None:
    state = pool("w0")
    state.assign(spec("a"), now=0.0)
    full = state.assign(spec("b"), now=0.0)
    assert isinstance(full, WorkResult)
    assert (full.job_id, full.outcome, full.error) == (
        "b",
        "returned",
        "pool 'p' had no free worker",
    )
    state.finished(result("a"))
    state.draining = True
    stopping = state.assign(spec("c"), now=0.0)
    assert isinstance(stopping, WorkResult)
    assert (stopping.outcome, stopping.error) == ("returned", "pool 'p' is stopping")
    assert state.running == {}


def test_a_lost_worker_ends_its_attempt_once_and_a_late_result_is_dropped() -> None:
    state = pool("w0", "w1")
    state.assign(spec("a"), now=5.0)
    lost = state.lose("w0", "worker process exited (code -9) without a result", now=7.5)
    assert lost is not None
    assert (lost.job_id, lost.attempt, lost.outcome) == ("a", 1, "lost")
    assert (lost.started, lost.finished, lost.worker, lost.pool) == (5.0, 7.5, "w0", "p")
    assert state.lose("w0", "again", now=8.0) is None
    assert state.finished(result("a")) is None
    assert state.idle == ["w1"]  # the lost worker is replaced by the shell, not reused
    assert state.lose("w1", "idle worker gone", now=9.0) is None


def test_hand_back_returns_every_running_attempt_and_frees_the_workers() -> None:
    state = pool("w0", "w1", "w2")
    state.assign(spec("a"), now=1.0)
    state.assign(spec("b", attempt=3), now=2.0)
    ended = state.hand_back(now=4.0)
    assert [(a.key, r.outcome, r.started, r.finished) for a, r in ended] == [
        (JobKey("a", 1), "returned", 1.0, 4.0),
        (JobKey("b", 3), "returned", 2.0, 4.0),
    ]
    assert state.running == {}
    assert sorted(state.idle) == ["w0", "w1", "w2"]
    assert state.finished(result("a")) is None  # the worker's own result comes too late


def test_overdue_attempts_by_the_clock() -> None:
    state = pool("w0", "w1", "w2")
    short = state.assign(spec("short", timeout=2.0), now=0.0)
    long = state.assign(spec("long", timeout=100.0), now=0.0)
    state.assign(spec("none"), now=0.0)
    assert state.overdue(now=2.9, grace=1.0) == []
    assert state.overdue(now=3.0, grace=1.0) == [short]
    # The grace is at least a tenth of the timeout.
    assert state.overdue(now=109.9, grace=1.0) == [short]
    assert state.overdue(now=110.0, grace=1.0) == [short, long]


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


def test_results_not_acknowledged_in_time_are_reported_again_until_they_are() -> None:
    state = PoolState("p")
    state.hold("e1", [result("a")], now=100.0)
    state.hold("e2", [result("b")], now=104.0)
    assert state.unanswered(105.0, after=6.0) == []
    assert [r.job_id for r in state.unanswered(106.0, after=6.0)] == ["a"]
    assert state.unanswered(107.0, after=6.0) == []  # "a" counts as reported at 106
    assert state.acknowledge(JobKey("b", 1)) == "e2"
    assert [r.job_id for r in state.unanswered(112.0, after=6.0)] == ["a"]  # not "b"
    assert [r.job_id for r in state.to_deliver(now=200.0)] == ["a"]  # a reconnect reports
    assert state.unanswered(205.0, after=6.0) == []
