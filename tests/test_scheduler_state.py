"""The Scheduler's pure state machine, driven with clocks we choose: no actor, no sleeping.

Every call gets a :class:`Now` built by hand, jitter comes from a fixed ``draw``, so
each lease end and retry time is checked to the exact value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from actorwork.messages import (
    JobKey,
    JobView,
    Message,
    Outcome,
    ResultAcknowledged,
    RunJob,
    StopJob,
    SubmittedReply,
    WorkResult,
)
from actorwork.scheduler_state import (
    Backoff,
    Effect,
    Finished,
    Job,
    Now,
    Persist,
    Record,
    Reply,
    SchedulerState,
    Send,
)

LEASE = 10.0
#: With ``draw`` fixed at 0.5 and jitter 0.5, every delay is 75% of its raw value.
BACKOFF = Backoff(base=2.0, factor=2.0, cap=60.0, jitter=0.5)
FIRST_RETRY = 1.5
SECOND_RETRY = 3.0


@dataclass
class Clock:
    """Both clocks, moved by the test; they start far apart to catch a mix-up."""

    mono: float = 1_000.0
    wall: float = 1_700_000_000.0

    def now(self) -> Now:
        return Now(self.mono, self.wall)

    def advance(self, seconds: float) -> Now:
        self.mono += seconds
        self.wall += seconds
        return self.now()


def new_state() -> SchedulerState:
    return SchedulerState(lease=LEASE, backoff=BACKOFF, draw=lambda: 0.5)


def make_job(
    state: SchedulerState,
    job_id: str,
    *,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = 3,
    unique_key: str | None = None,
    due: float | None = None,
) -> Job:
    """A job as the Scheduler shell builds it from a validated submit."""
    return Job(
        id=job_id,
        work="tests.echo",
        queue=queue,
        priority=priority,
        payload=b"\x90",
        status="queued",
        attempt=0,
        max_attempts=max_attempts,
        created=0.0,
        updated=0.0,
        seq=state.next_seq(),
        unique_key=unique_key,
        due=due,
    )


def result(job_id: str, attempt: int, outcome: Outcome, pool: str = "p") -> WorkResult:
    return WorkResult(
        job_id=job_id, attempt=attempt, outcome=outcome, error=f"{outcome} of {job_id}", pool=pool
    )


def runs(effects: list[Effect]) -> list[tuple[str, str, int]]:
    """Every RunJob sent, as (pool, job id, attempt), in order."""
    return [
        (e.pool, e.message.job.id, e.message.job.attempt)
        for e in effects
        if isinstance(e, Send) and isinstance(e.message, RunJob)
    ]


def sent(effects: list[Effect], kind: type[Message]) -> list[tuple[str, Message]]:
    return [
        (e.pool, e.message) for e in effects if isinstance(e, Send) and isinstance(e.message, kind)
    ]


def records(effects: list[Effect]) -> list[Record]:
    return [e for e in effects if isinstance(e, Record)]


def finished(effects: list[Effect]) -> list[JobView]:
    return [e.view for e in effects if isinstance(e, Finished)]


def persisted(effects: list[Effect]) -> list[str]:
    return [e.job.id for e in effects if isinstance(e, Persist)]


def start(state: SchedulerState, clock: Clock, job_id: str, **options: object) -> Job:
    """Submit a job to a fresh pool ``p`` with room for one, and check it was dispatched."""
    job = make_job(state, job_id, **options)  # type: ignore[arg-type]
    state.pool_ready("p", [job.queue], 1, [], clock.now())
    assert runs(state.submit(job, clock.now())) == [("p", job_id, 1)]
    return job


@pytest.fixture
def state() -> SchedulerState:
    return new_state()


@pytest.fixture
def clock() -> Clock:
    return Clock()


# --- dispatch order and credit ----------------------------------------------------------


def test_a_queue_is_first_in_first_out(state: SchedulerState, clock: Clock) -> None:
    state.pool_ready("p", ["default"], 0, [], clock.now())
    for job_id in ("a", "b", "c", "d"):
        assert runs(state.submit(make_job(state, job_id), clock.now())) == []

    assert runs(state.request_work("p", 3, clock.now())) == [
        ("p", "a", 1),
        ("p", "b", 1),
        ("p", "c", 1),
    ]
    assert state.jobs["d"].status == "queued"
    assert runs(state.request_work("p", 1, clock.now())) == [("p", "d", 1)]


def test_higher_priority_goes_first_and_ties_keep_submit_order(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("p", ["default"], 0, [], clock.now())
    for job_id, priority in [("low", 0), ("high-1", 5), ("mid", 1), ("high-2", 5)]:
        state.submit(make_job(state, job_id, priority=priority), clock.now())

    order = [job_id for _, job_id, _ in runs(state.request_work("p", 4, clock.now()))]
    assert order == ["high-1", "high-2", "mid", "low"]


def test_a_pool_is_served_only_its_queues(state: SchedulerState, clock: Clock) -> None:
    state.pool_ready("mail", ["mail"], 1, [], clock.now())
    state.pool_ready("both", ["pdf", "mail"], 0, [], clock.now())
    assert runs(state.submit(make_job(state, "pdf-1", queue="pdf"), clock.now())) == []
    assert runs(state.submit(make_job(state, "other-1", queue="other"), clock.now())) == []
    assert runs(state.submit(make_job(state, "mail-1", queue="mail"), clock.now())) == [
        ("mail", "mail-1", 1)
    ]
    # A pool with several queues takes the best job across them.
    state.submit(make_job(state, "mail-2", queue="mail", priority=1), clock.now())
    assert runs(state.request_work("both", 5, clock.now())) == [
        ("both", "mail-2", 1),
        ("both", "pdf-1", 1),
    ]
    assert state.jobs["other-1"].status == "queued"


def test_pools_are_served_in_turn(state: SchedulerState, clock: Clock) -> None:
    state.pool_ready("a", ["default"], 10, [], clock.now())
    state.pool_ready("b", ["default"], 10, [], clock.now())
    state.pool_ready("c", ["default"], 10, [], clock.now())

    pools = [
        pool
        for index in range(6)
        for pool, _, _ in runs(state.submit(make_job(state, f"j{index}"), clock.now()))
    ]
    assert pools == ["a", "b", "c", "a", "b", "c"]


def test_jobs_released_together_are_dealt_out_in_turn(state: SchedulerState, clock: Clock) -> None:
    state.pool_ready("a", ["default"], 2, [], clock.now())
    state.pool_ready("b", ["default"], 3, [], clock.now())
    due = clock.wall + 5
    for index in range(6):
        state.submit(make_job(state, f"j{index}", due=due), clock.now())

    dispatched = runs(state.tick(clock.advance(5)))
    assert [pool for pool, _, _ in dispatched] == ["a", "b", "a", "b", "b"]
    assert [job_id for _, job_id, _ in dispatched] == ["j0", "j1", "j2", "j3", "j4"]
    assert state.jobs["j5"].status == "queued"


def test_a_pool_gets_no_more_than_the_credit_it_asked_for(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("p", ["default"], 2, [], clock.now())
    dispatched = [runs(state.submit(make_job(state, f"j{i}"), clock.now())) for i in range(4)]
    assert dispatched == [[("p", "j0", 1)], [("p", "j1", 1)], [], []]
    assert state.pools["p"].credit == 0

    assert runs(state.request_work("p", 0, clock.now())) == []
    assert runs(state.request_work("p", -3, clock.now())) == []
    assert runs(state.request_work("p", 1, clock.now())) == [("p", "j2", 1)]
    assert state.pools["p"].credit == 0
    # PoolReady states the pool's room afresh rather than adding to what it had.
    state.request_work("p", 5, clock.now())  # credit 5, one job waiting: 4 left
    state.pool_ready("p", ["default"], 1, [], clock.now())
    assert state.pools["p"].credit == 1


def test_nothing_goes_to_a_pool_that_has_not_said_it_is_ready(
    state: SchedulerState, clock: Clock
) -> None:
    state.submit(make_job(state, "j"), clock.now())
    assert state.request_work("stranger", 5, clock.now()) == []
    assert "stranger" not in state.pools
    assert state.jobs["j"].status == "queued"
    # Slots asked for before PoolReady do not count after it.
    state.submit(make_job(state, "k"), clock.now())
    assert runs(state.pool_ready("stranger", ["default"], 1, [], clock.now())) == [
        ("stranger", "j", 1)
    ]


def test_nothing_goes_to_a_lost_pool_until_it_is_ready_again(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("p", ["default"], 3, [], clock.now())
    state.pool_lost("p")
    assert runs(state.submit(make_job(state, "j"), clock.now())) == []
    assert runs(state.request_work("p", 2, clock.now())) == []
    assert runs(state.tick(clock.advance(1))) == []
    assert runs(state.pool_ready("p", ["default"], 1, [], clock.now())) == [("p", "j", 1)]


def test_an_undelivered_dispatch_is_queued_again_at_once(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("a", ["default"], 1, [], clock.now())
    state.pool_ready("b", ["default"], 0, [], clock.now())
    assert runs(state.submit(make_job(state, "j"), clock.now())) == [("a", "j", 1)]
    state.pool_lost("a")
    assert runs(state.request_work("b", 1, clock.now())) == []

    effects = state.dispatch_failed(JobKey("j", 1), clock.now())
    # The attempt number is never reused, even for an attempt that never started.
    assert runs(effects) == [("b", "j", 2)]
    assert "j" in persisted(effects)
    assert state.dispatch_failed(JobKey("j", 1), clock.now()) == []


# --- leases, retries, heartbeats --------------------------------------------------------


def test_a_lost_attempt_is_retried_after_its_backoff_then_buried(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j", max_attempts=2)
    state.request_work("p", 1, clock.now())  # room that must not be used early
    assert job.lease_until == clock.mono + LEASE
    assert state.next_deadline() == (clock.mono + LEASE, None)

    assert state.tick(clock.advance(LEASE - 0.001)) == []
    effects = state.tick(clock.advance(0.001))
    assert job.status == "retrying"
    assert job.failures == 1
    assert job.due == clock.wall + FIRST_RETRY
    assert "lease expired" in job.error
    assert persisted(effects) == ["j"]
    assert runs(effects) == []
    assert state.next_deadline() == (None, clock.wall + FIRST_RETRY)

    assert state.tick(clock.advance(FIRST_RETRY - 0.001)) == []
    assert runs(state.tick(clock.advance(0.001))) == [("p", "j", 2)]
    assert job.status == "running"

    effects = state.tick(clock.advance(LEASE))
    [view] = finished(effects)
    assert (view.status, view.attempt) == ("dead", 2)
    assert "lease expired" in view.error
    assert "j" not in state.jobs
    assert persisted(effects) == ["j"]


def test_retries_back_off_by_the_configured_delay(state: SchedulerState, clock: Clock) -> None:
    job = start(state, clock, "j", max_attempts=5)
    state.result("p", result("j", 1, "error"), clock.now())
    assert job.due == clock.wall + FIRST_RETRY
    state.request_work("p", 1, clock.now())
    state.tick(clock.advance(FIRST_RETRY))
    state.result("p", result("j", 2, "timeout"), clock.now())
    assert job.due == clock.wall + SECOND_RETRY


def test_backoff_grows_is_capped_and_jittered_by_the_draw() -> None:
    backoff = Backoff(base=1.0, factor=3.0, cap=20.0, jitter=0.1)
    assert [backoff.delay(n, lambda: 0.0) for n in (1, 2, 3, 4)] == [1.0, 3.0, 9.0, 20.0]
    assert backoff.delay(2, lambda: 1.0) == pytest.approx(2.7)


def test_heartbeats_keep_a_long_job_running(state: SchedulerState, clock: Clock) -> None:
    """F10 in pure form: three leases long, never expired while it heartbeats."""
    job = start(state, clock, "long")
    for _ in range(6):  # a heartbeat every half lease, for three leases
        assert state.tick(clock.advance(LEASE / 2)) == []
        assert state.heartbeat("p", [JobKey("long", 1)], clock.now()) == []
        assert job.lease_until == clock.mono + LEASE
    assert state.tick(clock.advance(LEASE - 0.001)) == []
    assert job.status == "running"

    state.tick(clock.advance(0.001))
    assert job.status == "retrying"
    assert job.attempt == 1


def test_a_heartbeat_for_an_attempt_that_is_not_current_stops_it(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j")
    state.tick(clock.advance(LEASE))  # attempt 1 is lost
    state.request_work("p", 1, clock.now())
    state.tick(clock.advance(FIRST_RETRY))  # attempt 2 runs
    lease_of_two = job.lease_until

    effects = state.heartbeat(
        "old", [JobKey("j", 1), JobKey("gone", 4), JobKey("j", 2)], clock.advance(1)
    )
    assert sent(effects, StopJob) == [
        ("old", StopJob("j", 1, "not current")),
        ("old", StopJob("gone", 4, "not current")),
    ]
    assert job.lease_until == clock.mono + LEASE != lease_of_two


def test_pool_ready_confirms_what_it_runs_and_stops_the_rest(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j")
    state.pool_lost("p")
    effects = state.pool_ready(
        "p", ["default"], 0, [JobKey("j", 1), JobKey("x", 1)], clock.advance(8)
    )
    assert sent(effects, StopJob) == [("p", StopJob("x", 1, "not current"))]
    assert job.lease_until == clock.mono + LEASE
    assert state.tick(clock.advance(LEASE - 1)) == []


def test_leases_follow_the_monotonic_clock_when_the_wall_clock_jumps(
    state: SchedulerState, clock: Clock
) -> None:
    """F18 in pure form: an hour either way neither expires nor extends a lease."""
    job = start(state, clock, "j")
    mono, wall = clock.mono, clock.wall
    assert state.tick(Now(mono + 1, wall + 3600)) == []
    assert state.tick(Now(mono + 2, wall - 3600)) == []
    assert state.tick(Now(mono + LEASE - 0.001, wall + 7200)) == []
    assert job.status == "running"
    assert job.lease_until == mono + LEASE

    state.tick(Now(mono + LEASE, wall - 3600))
    assert job.status == "retrying"


# --- results ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_a_final_outcome_finishes_the_job(
    state: SchedulerState, clock: Clock, outcome: Outcome
) -> None:
    start(state, clock, "j")
    reported = result("j", 1, outcome)
    effects = state.result("p", reported, clock.advance(1))

    assert records(effects) == [Record(reported, committed=True)]
    assert sent(effects, ResultAcknowledged) == [("p", ResultAcknowledged("j", 1))]
    assert persisted(effects) == ["j"]
    [view] = finished(effects)
    assert (view.status, view.attempt, view.result) == (outcome, 1, reported)
    assert view.updated == clock.wall
    assert "j" not in state.jobs


@pytest.mark.parametrize("outcome", ["error", "timeout", "lost"])
def test_a_retryable_outcome_costs_an_attempt(
    state: SchedulerState, clock: Clock, outcome: Outcome
) -> None:
    job = start(state, clock, "j", max_attempts=2)
    effects = state.result("p", result("j", 1, outcome), clock.now())
    assert [r.committed for r in records(effects)] == [True]
    assert sent(effects, ResultAcknowledged) == [("p", ResultAcknowledged("j", 1))]
    assert finished(effects) == []
    assert (job.status, job.failures, job.due) == ("retrying", 1, clock.wall + FIRST_RETRY)

    state.request_work("p", 1, clock.now())
    state.tick(clock.advance(FIRST_RETRY))
    [view] = finished(state.result("p", result("j", 2, outcome), clock.now()))
    assert (view.status, view.error) == ("dead", f"{outcome} of j")


def test_a_returned_job_is_queued_again_without_costing_an_attempt(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j", max_attempts=1)
    for attempt in (1, 2, 3):
        effects = state.result("p", result("j", attempt, "returned"), clock.now())
        assert [r.committed for r in records(effects)] == [True]
        assert sent(effects, ResultAcknowledged) == [("p", ResultAcknowledged("j", attempt))]
        assert (job.status, job.failures) == ("queued", 0)
        assert runs(state.request_work("p", 1, clock.now())) == [("p", "j", attempt + 1)]

    [view] = finished(state.result("p", result("j", 4, "succeeded"), clock.now()))
    assert view.status == "succeeded"


def test_a_superseded_attempt_is_recorded_but_not_committed(
    state: SchedulerState, clock: Clock
) -> None:
    """I4: attempt 1 comes back after attempt 2 was issued."""
    job = start(state, clock, "j")
    state.tick(clock.advance(LEASE))
    state.request_work("p", 1, clock.now())
    assert runs(state.tick(clock.advance(FIRST_RETRY))) == [("p", "j", 2)]

    late = result("j", 1, "succeeded")
    effects = state.result("p", late, clock.now())
    assert records(effects) == [Record(late, committed=False, note="superseded")]
    assert sent(effects, ResultAcknowledged) == [("p", ResultAcknowledged("j", 1))]
    assert finished(effects) == [] == persisted(effects)
    assert (job.status, job.attempt, job.result) == ("running", 2, None)

    [view] = finished(state.result("p", result("j", 2, "failed"), clock.now()))
    assert (view.status, view.attempt) == ("failed", 2)


def test_a_late_result_of_a_lost_attempt_is_not_committed(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j")
    state.tick(clock.advance(LEASE))
    effects = state.result("p", result("j", 1, "succeeded"), clock.now())
    assert [(r.committed, r.note) for r in records(effects)] == [(False, "job retrying")]
    assert sent(effects, ResultAcknowledged) == [("p", ResultAcknowledged("j", 1))]
    assert job.status == "retrying"


@pytest.mark.parametrize("outcome", ["succeeded", "error", "returned"])
def test_the_same_result_twice_commits_once(
    state: SchedulerState, clock: Clock, outcome: Outcome
) -> None:
    """I3: a result resent after a lost ack is acknowledged again, not applied again."""
    job = start(state, clock, "j")
    reported = result("j", 1, outcome)
    first = state.result("p", reported, clock.now())
    second = state.result("p", reported, clock.now())

    assert [r.committed for r in records(first)] == [True]
    assert [r.committed for r in records(second)] == [False]
    assert sent(second, ResultAcknowledged) == [("p", ResultAcknowledged("j", 1))]
    assert finished(second) == [] == persisted(second)
    assert job.failures == (1 if outcome == "error" else 0)


def test_a_result_for_no_known_attempt_is_recorded_uncommitted(
    state: SchedulerState, clock: Clock
) -> None:
    """I2: nothing is invented from a result the Scheduler never asked for."""
    job = start(state, clock, "j")
    for stray in (result("nobody", 1, "succeeded"), result("j", 7, "succeeded")):
        effects = state.result("p", stray, clock.now())
        assert [(r.result, r.committed) for r in records(effects)] == [(stray, False)]
        assert sent(effects, ResultAcknowledged) == [
            ("p", ResultAcknowledged(stray.job_id, stray.attempt))
        ]
        assert finished(effects) == [] == persisted(effects)
    assert (job.status, job.attempt, list(state.jobs)) == ("running", 1, ["j"])


# --- unique keys, cancelling, schedules ---------------------------------------------------


def test_a_unique_key_held_by_a_live_job_returns_that_job(
    state: SchedulerState, clock: Clock
) -> None:
    start(state, clock, "first", unique_key="report:7")
    effects = state.submit(make_job(state, "second", unique_key="report:7"), clock.now())
    assert effects == [Reply(SubmittedReply("first", created=False))]
    assert list(state.jobs) == ["first"]

    state.result("p", result("first", 1, "succeeded"), clock.now())
    state.request_work("p", 1, clock.now())
    effects = state.submit(make_job(state, "third", unique_key="report:7"), clock.now())
    assert Reply(SubmittedReply("third", created=True)) in effects
    assert runs(effects) == [("p", "third", 1)]


def test_cancelling_a_queued_job_ends_it_at_once(state: SchedulerState, clock: Clock) -> None:
    state.submit(make_job(state, "j", unique_key="k"), clock.now())
    effects = state.cancel("j", "not wanted", clock.advance(1))
    assert sent(effects, StopJob) == []
    [view] = finished(effects)
    assert (view.status, view.error, view.updated) == ("cancelled", "not wanted", clock.wall)
    assert persisted(effects) == ["j"]
    assert state.jobs == {}

    assert runs(state.pool_ready("p", ["default"], 5, [], clock.now())) == []
    assert state.cancel("j", "again", clock.now()) == []
    assert SubmittedReply("k2", created=True) in [
        e.message
        for e in state.submit(make_job(state, "k2", unique_key="k"), clock.now())
        if isinstance(e, Reply)
    ]


def test_cancelling_a_running_job_stops_it_and_ignores_its_result(
    state: SchedulerState, clock: Clock
) -> None:
    start(state, clock, "j")
    effects = state.cancel("j", "user gave up", clock.now())
    assert sent(effects, StopJob) == [("p", StopJob("j", 1, "cancelled"))]
    [view] = finished(effects)
    assert view.status == "cancelled"

    late = state.result("p", result("j", 1, "succeeded"), clock.now())
    assert [r.committed for r in records(late)] == [False]
    assert sent(late, ResultAcknowledged) == [("p", ResultAcknowledged("j", 1))]
    assert finished(late) == []
    assert state.tick(clock.advance(LEASE * 3)) == []


def test_a_scheduled_job_waits_for_its_wall_clock_time(state: SchedulerState, clock: Clock) -> None:
    state.pool_ready("p", ["default"], 5, [], clock.now())
    due = clock.wall + 60
    effects = state.submit(make_job(state, "later", due=due), clock.now())
    assert runs(effects) == []
    assert state.jobs["later"].status == "scheduled"
    assert state.next_deadline() == (None, due)

    assert state.tick(Now(clock.mono + 3600, due - 0.001)) == []  # monotonic time is no help
    effects = state.tick(Now(clock.mono + 3600, due))
    assert runs(effects) == [("p", "later", 1)]
    assert state.jobs["later"].due is None


def test_a_due_time_already_past_queues_at_once(state: SchedulerState, clock: Clock) -> None:
    state.pool_ready("p", ["default"], 5, [], clock.now())
    effects = state.submit(make_job(state, "overdue", due=clock.wall - 5), clock.now())
    assert runs(effects) == [("p", "overdue", 1)]


# --- restart ------------------------------------------------------------------------------


def stored(state: SchedulerState) -> list[Job]:
    """The live jobs as a store hands them back: no pool, no lease."""
    return [dataclasses.replace(job, pool=None, lease_until=None) for job in state.jobs.values()]


def test_a_restarted_scheduler_carries_on_from_the_store(clock: Clock) -> None:
    before = new_state()
    before.pool_ready("p", ["default"], 1, [], clock.now())
    for job_id in ("running", "queued", "waiting"):
        before.submit(
            make_job(before, job_id, due=clock.wall + 100 if job_id == "waiting" else None),
            clock.now(),
        )
    assert before.jobs["running"].status == "running"
    top = max(job.seq for job in before.jobs.values())

    after = new_state()
    restarted = Now(mono=5.0, wall=clock.wall + 20)  # a new process: a new monotonic origin
    after.load(stored(before), restarted)
    assert after.next_seq() == top + 1
    running = after.jobs["running"]
    assert (running.status, running.attempt, running.lease_until) == ("running", 1, 5.0 + LEASE)

    effects = after.pool_ready(
        "p", ["default"], 1, [JobKey("running", 1)], Now(8.0, restarted.wall)
    )
    assert runs(effects) == [("p", "queued", 1)]
    assert running.lease_until == 8.0 + LEASE
    assert after.tick(Now(8.0 + LEASE - 0.001, restarted.wall)) == []
    after.request_work("p", 1, Now(8.0, restarted.wall))
    assert runs(after.tick(Now(9.0, clock.wall + 100))) == [("p", "waiting", 1)]


def test_a_loaded_running_job_whose_pool_never_returns_is_retried(clock: Clock) -> None:
    before = new_state()
    start(before, clock, "j")
    after = new_state()
    after.load(stored(before), Now(0.0, clock.wall))
    assert after.tick(Now(LEASE - 0.001, clock.wall)) == []
    after.tick(Now(LEASE, clock.wall))
    assert (after.jobs["j"].status, after.jobs["j"].failures) == ("retrying", 1)


def test_unique_keys_survive_a_restart(clock: Clock) -> None:
    before = new_state()
    before.submit(make_job(before, "j", unique_key="k"), clock.now())
    after = new_state()
    after.load(stored(before), clock.now())
    assert after.submit(make_job(after, "dup", unique_key="k"), clock.now()) == [
        Reply(SubmittedReply("j", created=False))
    ]
