"""The Scheduler's pure state behind the API: paused queues, queue and pool views."""

from __future__ import annotations

from actorwork.messages import JobKey
from tests.scheduler.test_state import Clock, make_job, new_state, runs


def test_a_paused_queue_dispatches_nothing_and_resuming_dispatches_what_waited() -> None:
    state, clock = new_state(), Clock()
    state.pool_ready("p", ["default", "other"], 2, [], clock.now())
    state.pause("default", True, clock.now())
    job = make_job(state, "a")
    assert runs(state.submit(job, clock.now())) == []
    assert "queue 'default' is paused" in state.view(job).waiting
    other = make_job(state, "b", queue="other")
    assert runs(state.submit(other, clock.now())) == [("p", "b", 1)]  # only its queue stops
    assert runs(state.pause("default", False, clock.now())) == [("p", "a", 1)]


def test_queue_views_count_live_jobs_and_age_the_oldest_ready_one() -> None:
    state, clock = new_state(), Clock()
    first = make_job(state, "a")
    first.updated = clock.wall
    state.submit(first, clock.now())
    clock.advance(30)
    second = make_job(state, "b")
    second.updated = clock.wall
    state.submit(second, clock.now())
    state.submit(make_job(state, "c", due=clock.wall + 60), clock.now())
    state.pause("idle", True, clock.now())
    clock.advance(10)
    views = {view.name: view for view in state.queues(clock.now())}
    assert set(views) == {"default", "idle"}
    default = views["default"]
    assert (default.queued, default.scheduled, default.running) == (2, 1, 0)
    assert default.oldest_age == 40.0
    assert not default.paused
    assert views["idle"].paused


def test_pool_views_show_capacity_credit_busy_attempts_and_heartbeat_age() -> None:
    state, clock = new_state(), Clock()
    state.pool_ready("p", ["default"], 2, [], clock.now(), capacity=4)
    state.submit(make_job(state, "a"), clock.now())
    clock.advance(5)
    state.heartbeat("p", [JobKey("a", 1)], clock.now())
    clock.advance(2)
    (view,) = state.pool_views(clock.now())
    assert (view.name, view.capacity, view.free, view.connected) == ("p", 4, 1, True)
    assert [(b.job_id, b.attempt) for b in view.busy] == [("a", 1)]
    assert view.heartbeat_age == 2.0
    state.pool_lost("p")
    (view,) = state.pool_views(clock.now())
    assert (view.connected, view.free) == (False, 0)
