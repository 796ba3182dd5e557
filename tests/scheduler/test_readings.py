"""The Scheduler's readings for metrics, from its pure state on a manual clock: how long
jobs waited queued (from the time they were queued to their dispatch), how long their
attempts ran (as the worker timed them), each pool's outbox backlog, and pauses as
stored effects."""

from __future__ import annotations

import msgspec

from actorwork.messages import TIMING_BUCKETS, JobKey
from actorwork.scheduler.readings import Histogram
from actorwork.scheduler.state import SchedulerState, SetPaused
from tests.scheduler.test_state import Clock, make_job, new_state, result, runs


def _submitted(state: SchedulerState, clock: Clock, job_id: str, work: str) -> None:
    job = make_job(state, job_id, work=work)
    job.created = job.updated = clock.now().wall  # as the shell makes it
    state.submit(job, clock.now())


def test_queue_wait_is_from_queued_to_dispatched_per_work() -> None:
    state, clock = new_state(), Clock()
    state.pool_ready("p", ["default"], 0, [], clock.now())
    _submitted(state, clock, "a", "mail")
    clock.advance(2.0)
    _submitted(state, clock, "b", "mail")
    clock.advance(3.0)
    assert runs(state.request_work("p", 2, clock.now())) == [("p", "a", 1), ("p", "b", 1)]
    waits = state.readings.queue_waits["mail"]
    assert (sum(waits.counts), waits.total) == (2, 8.0)  # 5 s and 3 s
    assert waits.counts[TIMING_BUCKETS.index(5.0)] == 2  # both over 2.5 s, at most 5 s


def test_run_time_is_the_workers_timing_and_a_lost_attempt_has_none() -> None:
    state, clock = new_state(), Clock()
    state.pool_ready("p", ["default"], 2, [], clock.now())
    state.submit(make_job(state, "a", work="pdf"), clock.now())
    state.submit(make_job(state, "b", work="pdf"), clock.now())
    timed = msgspec.structs.replace(result("a", 1, "succeeded"), started=100.0, finished=100.25)
    state.result("p", timed, clock.now())
    clock.advance(1000.0)  # b's lease runs out: lost, with no timing of its own
    state.tick(clock.now())
    runs_of_pdf = state.readings.run_times["pdf"]
    assert (sum(runs_of_pdf.counts), runs_of_pdf.total) == (1, 0.25)


def test_a_heartbeat_says_the_pools_backlog() -> None:
    state, clock = new_state(), Clock()
    state.pool_ready("p", ["default"], 1, [], clock.now())
    state.heartbeat("p", [], clock.now(), backlog=3)
    assert [view.backlog for view in state.pool_views(clock.now())] == [3]
    state.heartbeat("p", [JobKey("x", 1)], clock.now())
    assert [view.backlog for view in state.pool_views(clock.now())] == [0]


def test_a_pause_and_a_resume_are_stored() -> None:
    state, clock = new_state(), Clock()
    assert state.pause("mail", True, clock.now()) == [SetPaused("mail", True)]
    assert state.pause("mail", False, clock.now())[0] == SetPaused("mail", False)


def test_a_histogram_passes_over_what_a_clock_jump_made() -> None:
    histogram = Histogram()
    for seconds in (-1.0, float("nan"), float("inf"), 0.001, 7200.0):
        histogram.observe(seconds)
    assert (histogram.counts[0], histogram.counts[-1], histogram.total) == (1, 1, 7200.001)
