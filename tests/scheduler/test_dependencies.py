"""Job dependencies in the Scheduler's pure state: waiting, going on, skipped."""

from __future__ import annotations

import msgspec

from actorwork.messages import TERMINAL, RunJob, WorkResult
from actorwork.scheduler.state import Effect, Job, SchedulerState, Send
from tests.scheduler.test_state import Clock, finished, make_job, new_state, runs


def child(
    state: SchedulerState, job_id: str, parents: tuple[str, ...], when: str = "succeeded"
) -> Job:
    job = make_job(state, job_id)
    job.depends_on, job.when = parents, when
    return job


def ok(job_id: str, attempt: int, value: object) -> WorkResult:
    return WorkResult(
        job_id=job_id,
        attempt=attempt,
        outcome="succeeded",
        value=msgspec.msgpack.encode(value),
        pool="p",
    )


def bad(job_id: str, attempt: int) -> WorkResult:
    return WorkResult(job_id=job_id, attempt=attempt, outcome="failed", error="no", pool="p")


def specs(effects: list[Effect]) -> dict[str, RunJob]:
    return {
        e.message.job.id: e.message
        for e in effects
        if isinstance(e, Send) and isinstance(e.message, RunJob)
    }


def ready_state() -> tuple[Clock, SchedulerState]:
    clock, state = Clock(), new_state()
    state.pool_ready("p", ["default"], 100, [], clock.now())
    return clock, state


def test_a_child_waits_for_its_parents_then_runs_with_their_values() -> None:
    clock, state = ready_state()
    state.submit(make_job(state, "a"), clock.now())
    state.submit(make_job(state, "b"), clock.now())
    effects = state.submit(child(state, "c", ("a", "b")), clock.now())
    assert runs(effects) == []
    view = state.view(state.jobs["c"])
    assert view.status == "waiting"
    assert view.waiting == "waits for 'a', 'b' to have succeeded"
    assert view.depends_on == ("a", "b")
    assert runs(state.result("p", ok("a", 1, 1), clock.now())) == []
    assert state.view(state.jobs["c"]).waiting == "waits for 'b' to have succeeded"
    run = specs(state.result("p", ok("b", 1, [2]), clock.now()))["c"]
    assert {k: msgspec.msgpack.decode(v or b"\xc0") for k, v in run.job.parents.items()} == {
        "a": 1,
        "b": [2],
    }


def test_a_failed_parent_skips_its_children_transitively_in_one_step() -> None:
    clock, state = ready_state()
    state.submit(make_job(state, "head"), clock.now())
    previous = "head"
    for n in range(2000):  # deeper than the recursion limit
        state.submit(child(state, f"n{n}", (previous,)), clock.now())
        previous = f"n{n}"
    effects = state.result("p", bad("head", 1), clock.now())
    views = {v.id: v for v in finished(effects)}
    assert len(views) == 2001
    assert views["n0"].status == "skipped"
    assert views["n0"].error == (
        "parent 'head' ended failed; this job runs when its parents succeeded"
    )
    assert views["n1999"].error.startswith("parent 'n1998' ended skipped")
    assert not state.jobs


def test_when_failed_runs_only_after_a_failure_and_finished_runs_either_way() -> None:
    clock, state = ready_state()
    state.submit(make_job(state, "a"), clock.now())
    state.submit(child(state, "on-fail", ("a",), "failed"), clock.now())
    state.submit(child(state, "always", ("a",), "finished"), clock.now())
    state.submit(child(state, "on-ok", ("a",), "succeeded"), clock.now())
    effects = state.result("p", bad("a", 1), clock.now())
    assert sorted(specs(effects)) == ["always", "on-fail"]
    assert [(v.id, v.status) for v in finished(effects)] == [("a", "failed"), ("on-ok", "skipped")]


def test_a_failed_when_child_is_skipped_by_a_success() -> None:
    clock, state = ready_state()
    state.submit(make_job(state, "a"), clock.now())
    state.submit(child(state, "on-fail", ("a",), "failed"), clock.now())
    effects = state.result("p", ok("a", 1, None), clock.now())
    (skipped,) = [v for v in finished(effects) if v.id == "on-fail"]
    assert skipped.status == "skipped"
    assert "parent 'a' ended succeeded" in skipped.error


def test_a_parent_that_ended_before_the_submit_decides_at_once() -> None:
    clock, state = ready_state()
    state.submit(make_job(state, "a"), clock.now())
    state.result("p", ok("a", 1, "x"), clock.now())
    run = specs(state.submit(child(state, "c", ("a",)), clock.now()))["c"]
    assert run.job.parents == {"a": msgspec.msgpack.encode("x")}
    state.submit(make_job(state, "f"), clock.now())
    state.result("p", bad("f", 1), clock.now())
    effects = state.submit(child(state, "d", ("f",)), clock.now())
    assert [v.status for v in finished(effects)] == ["skipped"]


def test_cancelling_a_waiting_job_skips_its_children() -> None:
    clock, state = ready_state()
    state.submit(make_job(state, "a"), clock.now())
    state.submit(child(state, "b", ("a",)), clock.now())
    state.submit(child(state, "c", ("b",)), clock.now())
    effects = state.cancel("b", "no", clock.now())
    assert [(v.id, v.status) for v in finished(effects)] == [("b", "cancelled"), ("c", "skipped")]
    # The parent ending later finds no waiting child.
    assert finished(state.result("p", ok("a", 1, 1), clock.now()))[0].id == "a"


def test_a_restart_resumes_the_graph_from_what_the_store_says() -> None:
    clock, state = ready_state()
    live_parent = make_job(state, "live")
    waiting = child(state, "w", ("done", "live"))
    waiting.status = "waiting"
    waiting.parents["done"] = ("succeeded", msgspec.msgpack.encode(7))
    ready = child(state, "r", ("done",))
    ready.status = "waiting"  # its parent ended, the commit of its release was lost
    ready.parents["done"] = ("succeeded", msgspec.msgpack.encode(7))
    orphan = child(state, "o", ("forgotten",))
    orphan.status = "waiting"
    fresh = new_state()
    effects = fresh.load([live_parent, waiting, ready, orphan], clock.now())
    assert fresh.jobs["r"].status == "queued"
    assert [(v.id, v.status) for v in finished(effects)] == [("o", "skipped")]
    assert "parent 'forgotten' ended unknown" in finished(effects)[0].error
    fresh.pool_ready("p", ["default"], 10, [], clock.now())
    assert fresh.jobs["w"].status == "waiting"
    effects = fresh.result("p", ok("live", 1, 8), clock.now())
    assert "w" in specs(effects)
    assert all(v.status in TERMINAL for v in finished(effects))
