"""The Scheduler's pure state machine, driven with clocks we choose: no actor, no sleeping.

Every call gets a :class:`Now` built by hand, jitter comes from a fixed ``draw``, so
each lease end and retry time is checked to the exact value.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actorwork.messages import (
    TERMINAL,
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
from actorwork.scheduler.state import (
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
    work: str = "tests.echo",
) -> Job:
    """A job as the Scheduler shell builds it from a validated submit."""
    return Job(
        id=job_id,
        work=work,
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

    effects = state.request_work("p", 3, clock.now())
    assert runs(effects) == [("p", "a", 1), ("p", "b", 1), ("p", "c", 1)]
    assert persisted(effects) == ["a", "b", "c"]  # the attempt numbers are stored first
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


# --- routing by work (F28) --------------------------------------------------------------


def test_a_job_goes_only_to_a_pool_that_has_its_work(state: SchedulerState, clock: Clock) -> None:
    state.pool_ready("old", ["default"], 5, [], clock.now(), works=["tests.echo"])
    state.pool_ready("new", ["default"], 5, [], clock.now(), works=["tests.echo", "tests.v2"])
    dispatched = [
        runs(state.submit(make_job(state, f"v2-{n}", work="tests.v2"), clock.now()))
        for n in range(3)
    ]
    assert dispatched == [[("new", f"v2-{n}", 1)] for n in range(3)]
    # Work both have is still dealt out in turn.
    pools = [runs(state.submit(make_job(state, f"e{n}"), clock.now()))[0][0] for n in range(2)]
    assert sorted(pools) == ["new", "old"]


def test_a_job_no_pool_can_run_waits_and_says_so(state: SchedulerState, clock: Clock) -> None:
    """A rolling deploy: the new work waits for a Pool that has it, never failed; the
    jobs behind it that the old Pool can run are not held up."""
    state.pool_ready("old", ["default"], 2, [], clock.now(), works=["tests.echo"])
    new = make_job(state, "new", work="tests.v2", priority=5)
    assert runs(state.submit(new, clock.now())) == []
    assert runs(state.submit(make_job(state, "old-1"), clock.now())) == [("old", "old-1", 1)]
    assert new.status == "queued"
    assert state.view(new).waiting == "waits for a pool with work 'tests.v2' on queue 'default'"
    assert state.view(state.jobs["old-1"]).waiting == ""
    assert runs(state.tick(clock.advance(3600))) == []

    effects = state.pool_ready("new", ["default"], 1, [], clock.now(), works=["tests.v2"])
    assert runs(effects) == [("new", "new", 1)]
    assert state.view(new).waiting == ""


def test_a_job_waits_while_the_pool_that_has_its_work_is_away(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("new", ["default"], 0, [], clock.now(), works=["tests.v2"])
    job = make_job(state, "j", work="tests.v2")
    state.submit(job, clock.now())
    assert state.view(job).waiting == ""  # a pool has it: the job only waits its turn
    state.pool_lost("new")
    assert "tests.v2" in state.view(job).waiting
    other_queue = make_job(state, "k", work="tests.v2", queue="pdf")
    state.submit(other_queue, clock.now())
    assert state.view(other_queue).waiting == (
        "waits for a pool with work 'tests.v2' on queue 'pdf'"
    )


def test_a_pool_that_does_not_name_its_works_is_sent_any(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("p", ["default"], 2, [], clock.now())
    assert runs(state.submit(make_job(state, "j", work="anything"), clock.now())) == [("p", "j", 1)]


def test_a_heartbeat_naming_new_works_lets_their_jobs_go(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("p", ["default"], 2, [], clock.now(), works=["tests.echo"])
    state.submit(make_job(state, "j", work="tests.late"), clock.now())
    assert runs(state.heartbeat("p", [], clock.now())) == []
    effects = state.heartbeat("p", [], clock.now(), works=["tests.echo", "tests.late"])
    assert runs(effects) == [("p", "j", 1)]


# --- a pool restarted (F26) ---------------------------------------------------------------


def test_a_restarted_pool_ends_the_attempts_of_its_previous_life_at_once(
    state: SchedulerState, clock: Clock
) -> None:
    state.pool_ready("p", ["default"], 2, [], clock.now(), incarnation="first")
    state.pool_ready("q", ["default"], 0, [], clock.now(), incarnation="other")
    for job_id in ("a", "b"):
        state.submit(make_job(state, job_id), clock.now())
    state.request_work("q", 1, clock.now())
    state.submit(make_job(state, "on-q"), clock.now())
    state.pool_lost("p")  # SIGKILLed

    effects = state.pool_ready("p", ["default"], 0, [], clock.advance(3), incarnation="second")
    for job_id in ("a", "b"):
        job = state.jobs[job_id]
        assert (job.status, job.failures, job.pool) == ("retrying", 1, None)
        assert job.due == clock.wall + FIRST_RETRY  # backoff, as for any lost worker
        assert job.error == "pool 'p' restarted: the attempt ended with its previous process"
    assert sorted(persisted(effects)) == ["a", "b"]
    assert state.jobs["on-q"].status == "running"  # another pool's attempt is untouched
    # A late verdict of the previous life (from its outbox) still stands.
    late = state.result("p", result("a", 1, "succeeded"), clock.now())
    assert [view.status for view in finished(late)] == ["succeeded"]


@pytest.mark.parametrize("incarnation", ["first", ""])
def test_a_pool_that_reconnects_keeps_its_attempts(
    state: SchedulerState, clock: Clock, incarnation: str
) -> None:
    """Same incarnation (a reconnect), or none said (an older Pool): leases decide."""
    state.pool_ready("p", ["default"], 1, [], clock.now(), incarnation="first")
    state.submit(make_job(state, "j"), clock.now())
    state.pool_lost("p")
    state.pool_ready("p", ["default"], 0, [JobKey("j", 1)], clock.now(), incarnation=incarnation)
    assert state.jobs["j"].status == "running"
    state.pool_lost("p")
    # The incarnation known is kept when a PoolReady does not say one.
    state.pool_ready("p", ["default"], 0, [], clock.now(), incarnation="second")
    assert state.jobs["j"].status == "retrying"


# --- a dispatch lost on a live link (F8) ----------------------------------------------


def test_a_dispatch_lost_on_a_live_link_gives_the_pool_its_slot_back(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j")  # its RunJob never arrives; the pool waits for it
    state.tick(clock.advance(LEASE))
    assert (job.status, state.pools["p"].credit) == ("retrying", 0)
    clock.advance(FIRST_RETRY)
    assert runs(state.tick(clock.now())) == []  # no credit: stranded without the fix

    effects = state.heartbeat("p", [], clock.now())  # the pool does not run it
    assert runs(effects) == [("p", "j", 2)]
    assert state.pools["p"].owed == set()
    state.tick(clock.advance(LEASE))
    assert state.heartbeat("p", [JobKey("j", 2)], clock.now()) == [
        Send("p", StopJob("j", 2, "not current"))
    ]
    assert state.pools["p"].credit == 0  # it had attempt 2: it asks again itself


def test_an_attempt_a_heartbeat_listed_is_not_given_back(
    state: SchedulerState, clock: Clock
) -> None:
    start(state, clock, "j")
    state.heartbeat("p", [JobKey("j", 1)], clock.advance(1))
    state.tick(clock.advance(LEASE))
    state.heartbeat("p", [], clock.now())
    assert state.pools["p"].credit == 0


def test_an_attempt_whose_worker_does_not_answer_is_not_given_back(
    state: SchedulerState, clock: Clock
) -> None:
    """F9/F10: the pool has it on a stopped or blocked worker; it earns no lease, and
    its slot stays taken until the worker's result comes."""
    job = start(state, clock, "stuck")
    state.heartbeat("p", [], clock.advance(1), unresponsive=[JobKey("stuck", 1)])
    state.tick(clock.advance(LEASE))
    assert job.status == "retrying"
    state.heartbeat("p", [], clock.now(), unresponsive=[JobKey("stuck", 1)])
    assert state.pools["p"].credit == 0
    # Listed so only after the lease ran out: still not given back.
    other = start(state, clock, "other")
    state.tick(clock.advance(LEASE))
    state.heartbeat("p", [], clock.now(), unresponsive=[other.key])
    assert state.pools["p"].credit == 0


def test_a_result_from_the_pool_shows_it_had_the_attempt(
    state: SchedulerState, clock: Clock
) -> None:
    start(state, clock, "j")
    state.tick(clock.advance(LEASE))
    assert state.pools["p"].owed == {JobKey("j", 1)}
    state.result("p", result("j", 1, "error"), clock.now())  # it ran, and asks on its own
    state.heartbeat("p", [], clock.now())
    assert state.pools["p"].credit == 0


def test_a_cancelled_attempt_whose_dispatch_was_lost_gives_the_slot_back(
    state: SchedulerState, clock: Clock
) -> None:
    start(state, clock, "j")
    state.cancel("j", "not wanted", clock.now())
    state.heartbeat("p", [], clock.now())
    assert state.pools["p"].credit == 1


def test_pool_ready_states_the_credit_afresh_and_forgets_what_was_owed(
    state: SchedulerState, clock: Clock
) -> None:
    start(state, clock, "j")
    state.tick(clock.advance(LEASE))
    state.pool_ready("p", ["default"], 1, [], clock.now())
    state.heartbeat("p", [], clock.now())
    assert state.pools["p"].credit == 1


def test_a_dispatch_lost_before_a_pool_ready_is_not_given_back_twice(
    state: SchedulerState, clock: Clock
) -> None:
    """PoolReady's free count already has the slot of a RunJob the pool never got."""
    start(state, clock, "j")  # lost
    state.pool_ready("p", ["default"], 1, [], clock.now())
    state.tick(clock.advance(LEASE))
    state.heartbeat("p", [], clock.now())
    assert state.pools["p"].credit == 1


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


def test_a_late_result_of_a_lost_attempt_stands_while_no_newer_attempt_was_issued(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j")
    state.tick(clock.advance(LEASE))
    assert job.status == "retrying"
    effects = state.result("p", result("j", 1, "succeeded"), clock.now())
    assert [(r.committed, r.note) for r in records(effects)] == [(True, "")]
    assert sent(effects, ResultAcknowledged) == [("p", ResultAcknowledged("j", 1))]
    assert [view.status for view in finished(effects)] == ["succeeded"]
    assert (job.status, job.failures) == ("succeeded", 0)


def test_a_late_error_of_a_lost_attempt_is_not_counted_twice(
    state: SchedulerState, clock: Clock
) -> None:
    job = start(state, clock, "j")
    state.tick(clock.advance(LEASE))
    effects = state.result("p", result("j", 1, "error"), clock.now())
    assert [(r.committed, r.note) for r in records(effects)] == [(False, "job retrying")]
    assert (job.status, job.failures) == ("retrying", 1)


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


def test_a_submit_of_a_known_id_returns_that_job_and_runs_nothing(
    state: SchedulerState, clock: Clock
) -> None:
    """A retried submit (the client timed out, or the CLI ran again) is one execution."""
    start(state, clock, "dup-1")
    again = state.submit(make_job(state, "dup-1"), clock.now())
    assert again == [Reply(SubmittedReply("dup-1", created=False))]
    assert state.jobs["dup-1"].attempt == 1  # the live job goes on untouched

    state.result("p", result("dup-1", 1, "succeeded"), clock.now())
    state.request_work("p", 1, clock.now())
    # Finished: the shell found it in the store, and says so.
    again = state.submit(make_job(state, "dup-1"), clock.now(), finished=True)
    assert again == [Reply(SubmittedReply("dup-1", created=False))]
    assert state.jobs == {}


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


class Store:
    """Rows as the shell writes them: what each Persist effect says, no pool, no lease."""

    def __init__(self) -> None:
        self.rows: dict[str, Job] = {}

    def take(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            if isinstance(effect, Persist):
                job = effect.job
                self.rows[job.id] = dataclasses.replace(job, pool=None, lease_until=None)
        return effects

    def live_jobs(self) -> list[Job]:
        return [
            dataclasses.replace(row) for row in self.rows.values() if row.status not in TERMINAL
        ]


def test_a_restarted_scheduler_carries_on_from_the_store(clock: Clock) -> None:
    before, store = new_state(), Store()
    store.take(before.pool_ready("p", ["default"], 1, [], clock.now()))
    for job_id in ("running", "queued", "waiting"):
        due = clock.wall + 100 if job_id == "waiting" else None
        store.take(before.submit(make_job(before, job_id, due=due), clock.now()))
    assert store.rows["running"].status == "running"
    top = max(job.seq for job in before.jobs.values())

    after = new_state()
    restarted = Now(mono=5.0, wall=clock.wall + 20)  # a new process: a new monotonic origin
    after.load(store.live_jobs(), restarted)
    assert after.next_seq() == top + 1
    running = after.jobs["running"]
    assert (running.status, running.attempt, running.lease_until) == ("running", 1, 5.0 + LEASE)
    assert after.jobs["waiting"].status == "scheduled"

    effects = after.pool_ready(
        "p", ["default"], 1, [JobKey("running", 1)], Now(8.0, restarted.wall)
    )
    assert runs(effects) == [("p", "queued", 1)]
    assert running.lease_until == 8.0 + LEASE
    assert after.tick(Now(8.0 + LEASE - 0.001, restarted.wall)) == []
    after.request_work("p", 1, Now(8.0, restarted.wall))
    assert runs(after.tick(Now(9.0, clock.wall + 100))) == [("p", "waiting", 1)]


def test_a_restart_never_reissues_an_attempt(clock: Clock) -> None:
    before, store = new_state(), Store()
    store.take(before.pool_ready("p", ["default"], 1, [], clock.now()))
    store.take(before.submit(make_job(before, "j"), clock.now()))
    store.take(before.tick(clock.advance(LEASE)))  # attempt 1 lost
    store.take(before.request_work("p", 1, clock.now()))
    assert runs(store.take(before.tick(clock.advance(FIRST_RETRY)))) == [("p", "j", 2)]

    after = new_state()
    after.load(store.live_jobs(), clock.now())
    late = after.result("p", result("j", 1, "succeeded"), clock.now())
    assert [(r.committed, r.note) for r in records(late)] == [(False, "superseded")]
    assert after.jobs["j"].failures == 1


def test_a_loaded_running_job_whose_pool_never_returns_is_retried(clock: Clock) -> None:
    before, store = new_state(), Store()
    store.take(before.pool_ready("p", ["default"], 1, [], clock.now()))
    store.take(before.submit(make_job(before, "j"), clock.now()))
    after = new_state()
    after.load(store.live_jobs(), Now(0.0, clock.wall))
    assert after.tick(Now(LEASE - 0.001, clock.wall)) == []
    after.tick(Now(LEASE, clock.wall))
    assert (after.jobs["j"].status, after.jobs["j"].failures) == ("retrying", 1)


def test_a_restart_grace_lengthens_the_lease_of_loaded_running_jobs(clock: Clock) -> None:
    before, store = new_state(), Store()
    store.take(before.pool_ready("p", ["default"], 1, [], clock.now()))
    store.take(before.submit(make_job(before, "j"), clock.now()))
    after = new_state()
    after.load(store.live_jobs(), Now(0.0, clock.wall), grace=5.0)
    assert after.tick(Now(LEASE + 4.999, clock.wall)) == []
    assert after.jobs["j"].status == "running"
    after.tick(Now(LEASE + 5.0, clock.wall))
    assert after.jobs["j"].status == "retrying"


def test_a_revived_job_does_not_take_over_a_unique_key_held_by_a_live_job(
    state: SchedulerState, clock: Clock
) -> None:
    old = start(state, clock, "old", unique_key="k", max_attempts=1)
    state.result("p", result("old", 1, "error"), clock.now())
    assert old.status == "dead"
    holder = make_job(state, "new", unique_key="k")
    state.submit(holder, clock.now())
    state.revive(old, clock.now())
    effects = state.submit(make_job(state, "third", unique_key="k"), clock.now())
    assert [e.message for e in effects if isinstance(e, Reply)] == [SubmittedReply("new", False)]
    state.cancel("old", "done with it", clock.now())
    effects = state.submit(make_job(state, "fourth", unique_key="k"), clock.now())
    assert [e.message for e in effects if isinstance(e, Reply)] == [SubmittedReply("new", False)]


def test_unique_keys_survive_a_restart(clock: Clock) -> None:
    before, store = new_state(), Store()
    store.take(before.submit(make_job(before, "j", unique_key="k"), clock.now()))
    after = new_state()
    after.load(store.live_jobs(), clock.now())
    assert after.submit(make_job(after, "dup", unique_key="k"), clock.now()) == [
        Reply(SubmittedReply("j", created=False))
    ]


# --- a random history, checked at every step ------------------------------------------------

OUTCOMES: tuple[Outcome, ...] = (
    "succeeded",
    "failed",
    "error",
    "timeout",
    "lost",
    "cancelled",
    "returned",
)
FINAL = frozenset({"succeeded", "failed", "cancelled"})
CAPACITY = 2


@dataclass
class FakePool:
    """A pool as the Scheduler sees it from outside: what it runs and what it asked for."""

    name: str
    queues: tuple[str, ...]
    works: tuple[str, ...]
    connected: bool = False
    running: list[JobKey] = field(default_factory=list)
    #: Slots asked for (PoolReady free, RequestWork slots) and not yet filled.
    asked: int = 0
    #: Drawn anew when the pool's process restarts.
    incarnation: int = 0
    #: The next RunJob to this pool is lost on the way (the link stays up).
    lose_next: bool = False
    #: Attempts whose RunJob was lost: the pool still waits for their slots.
    lost: set[JobKey] = field(default_factory=set)


class SchedulerUnderFaults(RuleBasedStateMachine):
    """Submits, pools coming and going, results of every outcome for current, stale and
    made-up attempts, heartbeats, dispatches that fail or are lost on a live link,
    pools restarted, clock jumps and Scheduler restarts in any order.

    After every step: at most one committed terminal result per job, none for an attempt
    that is not the current running one, the live jobs are exactly those submitted and
    not finished, no pool is sent a work it does not have or more than it asked for,
    and each pool's credit is what it asked for less the dispatches it lost that are not
    yet given back (given back at the first heartbeat after the attempt ends). At the
    end the pools heal and answer every RunJob with success, and every job must end
    (I1, I6).
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        draws = itertools.cycle([0.0, 0.35, 0.99])
        self.draw = lambda: next(draws)
        self.state = self.fresh_state()
        self.pools = {
            "only-a": FakePool("only-a", ("a",), ("w1",)),
            "a-and-b": FakePool("a-and-b", ("b", "a"), ("w1", "w2")),
        }
        self.ids = itertools.count()
        self.submitted: set[str] = set()
        self.finished: dict[str, str] = {}
        self.committed: Counter[JobKey] = Counter()
        self.final_commits: Counter[str] = Counter()
        self.issued: dict[str, int] = {}
        self.attempts: list[JobKey] = []
        self.store = Store()
        self.backward_jumps = 0
        self.unique_keys: dict[str, str] = {}

    def fresh_state(self) -> SchedulerState:
        return SchedulerState(lease=LEASE, backoff=BACKOFF, draw=self.draw)

    # --- carrying out effects as the shell and the pools would ---------------------

    def apply(self, effects: list[Effect]) -> list[Effect]:
        for effect in self.store.take(effects):
            match effect:
                case Finished(view=view):
                    assert view.status in TERMINAL
                    assert view.id not in self.finished, f"{view.id} finished twice"
                    assert view.id not in self.state.jobs
                    self.finished[view.id] = view.status
                case Send(pool=name, message=RunJob(job=spec)):
                    pool = self.pools[name]
                    assert pool.connected, f"RunJob to {name}, which is not connected"
                    assert pool.asked - len(pool.lost) > 0, f"RunJob to {name} beyond its credit"
                    assert spec.work in pool.works, f"{spec.work} to {name}, which lacks it"
                    assert spec.attempt > self.issued.get(spec.id, 0), "an attempt reused"
                    key = JobKey(spec.id, spec.attempt)
                    self.issued[spec.id] = spec.attempt
                    self.attempts.append(key)
                    if pool.lose_next:
                        pool.lose_next = False
                        pool.lost.add(key)
                        continue
                    pool.asked -= 1
                    pool.running.append(key)
                    assert len(pool.running) <= CAPACITY
                case Send(pool=name, message=StopJob(job_id=job_id, attempt=attempt)):
                    pool = self.pools[name]
                    key = JobKey(job_id, attempt)
                    if pool.connected and key in pool.running:
                        # The attempt stops and its pool reports it, before its next heartbeat.
                        pool.running.remove(key)
                        self.report(name, key, "returned")
                case _:
                    pass
        return effects

    def is_current(self, key: JobKey) -> bool:
        job = self.state.jobs.get(key.job_id)
        return job is not None and job.key == key and job.status == "running"

    def is_late_verdict(self, key: JobKey, outcome: Outcome) -> bool:
        """The attempt was presumed lost, no newer one was issued, and it brings a verdict."""
        job = self.state.jobs.get(key.job_id)
        return (
            job is not None
            and job.key == key
            and job.lost_attempt == key.attempt
            and job.status in ("retrying", "queued")
            and outcome in FINAL
        )

    def report(self, name: str, key: JobKey, outcome: Outcome) -> None:
        current = self.is_current(key) or self.is_late_verdict(key, outcome)
        failures = self.state.jobs[key.job_id].failures if current else 0
        reported = result(key.job_id, key.attempt, outcome, pool=name)
        effects = self.apply(self.state.result(name, reported, self.clock.now()))

        [record] = records(effects)
        assert record.result == reported
        assert record.committed == current, (key, outcome, record.note)
        assert sent(effects, ResultAcknowledged) == [
            (name, ResultAcknowledged(key.job_id, key.attempt))
        ]
        if record.committed:
            self.committed[key] += 1
            assert self.committed[key] == 1, f"{key} committed twice"
            if outcome in FINAL:
                self.final_commits[key.job_id] += 1
                assert [view.status for view in finished(effects)] == [outcome]
            elif outcome == "returned":
                assert self.state.jobs[key.job_id].failures == failures
            elif key.job_id in self.state.jobs:
                assert self.state.jobs[key.job_id].failures == failures + 1
        else:
            assert finished(effects) == [] == persisted(effects)

    def ready(self, pool: FakePool) -> None:
        known = self.state.pools.get(pool.name)
        restarted = known is not None and known.incarnation != str(pool.incarnation)
        pool.connected = True
        pool.asked = CAPACITY - len(pool.running)
        pool.lost.clear()
        effects = self.state.pool_ready(
            pool.name,
            list(pool.queues),
            pool.asked,
            list(pool.running),
            self.clock.now(),
            works=list(pool.works),
            incarnation=str(pool.incarnation),
        )
        self.apply(effects)
        if restarted:  # F26: nothing of its previous life runs on, lease or not
            for job in self.state.jobs.values():
                if job.status == "running" and job.pool == pool.name:
                    assert job.key in pool.running or job.key in pool.lost, job

    def ask(self, pool: FakePool) -> None:
        slots = CAPACITY - len(pool.running) - pool.asked
        if slots > 0:
            pool.asked += slots
            self.apply(self.state.request_work(pool.name, slots, self.clock.now()))

    # --- rules ----------------------------------------------------------------------------

    @rule(
        queue=st.sampled_from(["a", "b"]),
        work=st.sampled_from(["w1", "w2"]),
        priority=st.integers(0, 2),
        max_attempts=st.integers(1, 3),
        unique_key=st.none() | st.sampled_from(["u1", "u2"]),
        delay=st.none() | st.floats(-5, 50),
    )
    def submit(
        self,
        queue: str,
        work: str,
        priority: int,
        max_attempts: int,
        unique_key: str | None,
        delay: float | None,
    ) -> None:
        job_id = f"j{next(self.ids)}"
        due = None if delay is None else self.clock.wall + delay
        job = make_job(
            self.state,
            job_id,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            unique_key=unique_key,
            due=due,
            work=work,
        )
        assert all(job.seq > row.seq for row in self.state.jobs.values())
        holders = [
            other
            for other in self.submitted - set(self.finished)
            if unique_key is not None and self.unique_keys.get(other) == unique_key
        ]
        holder = holders[0] if holders else None
        effects = self.apply(self.state.submit(job, self.clock.now()))
        [reply] = [e.message for e in effects if isinstance(e, Reply)]
        assert isinstance(reply, SubmittedReply)
        if holder is not None:
            assert reply == SubmittedReply(holder, created=False)
            assert job_id not in self.state.jobs
        else:
            assert reply == SubmittedReply(job_id, created=True)
            self.submitted.add(job_id)
            if unique_key is not None:
                self.unique_keys[job_id] = unique_key

    @rule(name=st.sampled_from(["only-a", "a-and-b"]))
    def pool_ready(self, name: str) -> None:
        self.ready(self.pools[name])

    @rule(name=st.sampled_from(["only-a", "a-and-b"]))
    def request_work(self, name: str) -> None:
        if self.pools[name].connected:
            self.ask(self.pools[name])
        else:  # sent before the link broke, handled after the pool was marked lost
            self.apply(self.state.request_work(name, 1, self.clock.now()))

    @rule(name=st.sampled_from(["only-a", "a-and-b"]))
    def lose_pool(self, name: str) -> None:
        self.pools[name].connected = False
        self.state.pool_lost(name)

    @rule(name=st.sampled_from(["only-a", "a-and-b"]))
    def pool_restarts(self, name: str) -> None:
        """The pool is killed with its workers: what it ran is gone; it comes back (when
        ``pool_ready`` runs) as a new incarnation."""
        self.lose_pool(name)
        self.pools[name].running.clear()
        self.pools[name].incarnation += 1

    @rule(name=st.sampled_from(["only-a", "a-and-b"]))
    def lose_next_dispatch(self, name: str) -> None:
        """The next RunJob to this pool is lost on the way; the connection stays up (F8).

        The pool asks for its free room now, so a ready job goes (and is lost) at once.
        """
        pool = self.pools[name]
        pool.lose_next = True
        if pool.connected:
            self.ask(pool)

    @rule(name=st.sampled_from(["only-a", "a-and-b"]))
    def lease_passes(self, name: str) -> None:
        """A lease's worth of time passes, then the pool heartbeats."""
        self.tick_at(self.clock.mono + LEASE, self.clock.wall + LEASE)
        self.send_heartbeat(name)

    @rule(
        name=st.sampled_from(["only-a", "a-and-b"]),
        index=st.integers(0, 9),
        outcome=st.sampled_from(OUTCOMES),
    )
    def finish(self, name: str, index: int, outcome: Outcome) -> None:
        pool = self.pools[name]
        if pool.connected and pool.running:
            key = pool.running.pop(index % len(pool.running))
            self.report(name, key, outcome)

    @precondition(lambda self: self.attempts)
    @rule(
        name=st.sampled_from(["only-a", "a-and-b"]),
        index=st.integers(0, 99),
        outcome=st.sampled_from(OUTCOMES),
    )
    def report_any_attempt(self, name: str, index: int, outcome: Outcome) -> None:
        """A resent, stale or current result, from either pool (never from a pool whose
        RunJob for it was lost: that pool never had it)."""
        key = self.attempts[index % len(self.attempts)]
        if key not in self.pools[name].lost:
            self.report(name, key, outcome)

    @rule(
        name=st.sampled_from(["only-a", "a-and-b"]),
        job=st.integers(0, 99),
        attempt=st.integers(1, 4),
    )
    def report_made_up_attempt(self, name: str, job: int, attempt: int) -> None:
        self.report(name, JobKey(f"j{job}", attempt + 10), "succeeded")

    @rule(name=st.sampled_from(["only-a", "a-and-b"]), then=st.integers(0, 12))
    def heartbeat(self, name: str, then: int) -> None:
        """The pool says what it runs, then ``then`` seconds pass (past the old lease end)."""
        self.send_heartbeat(name)
        self.tick_at(self.clock.mono + then, self.clock.wall + then)

    def send_heartbeat(self, name: str) -> None:
        pool = self.pools[name]
        if pool.connected:
            stale = [key for key in pool.running if not self.is_current(key)]
            # A lost dispatch whose attempt ended is given back by this heartbeat.
            pool.lost = {key for key in pool.lost if self.is_current(key)}
            effects = self.apply(self.state.heartbeat(name, list(pool.running), self.clock.now()))
            assert sent(effects, StopJob) == [
                (name, StopJob(key.job_id, key.attempt, "not current")) for key in stale
            ]
            assert not any(key in pool.running for key in stale)
            for key in pool.running:
                assert self.state.jobs[key.job_id].lease_until == self.clock.mono + LEASE

    @rule(name=st.sampled_from(["only-a", "a-and-b"]), index=st.integers(0, 9))
    def drop_dispatch(self, name: str, index: int) -> None:
        """A RunJob that never arrived: the send failed, so the pool counts as lost."""
        pool = self.pools[name]
        if pool.connected and pool.running:
            key = pool.running.pop(index % len(pool.running))
            pool.connected = False
            self.state.pool_lost(name)
            self.apply(self.state.dispatch_failed(key, self.clock.now()))

    @precondition(lambda self: self.submitted)
    @rule(index=st.integers(0, 99))
    def cancel(self, index: int) -> None:
        job_id = sorted(self.submitted)[index % len(self.submitted)]
        job = self.state.jobs.get(job_id)
        stop = (
            [(job.pool, StopJob(job.id, job.attempt, "cancelled"))]
            if job is not None and job.status == "running" and job.pool is not None
            else []
        )
        effects = self.apply(self.state.cancel(job_id, "test", self.clock.now()))
        assert sent(effects, StopJob) == stop
        assert [view.status for view in finished(effects)] == (["cancelled"] if job else [])

    def tick_at(self, mono: float, wall: float) -> None:
        """Tick, and check that exactly the leases ended by ``mono`` expired."""
        self.clock.mono, self.clock.wall = mono, wall
        running = {
            job.key: job.lease_until for job in self.state.jobs.values() if job.status == "running"
        }
        self.apply(self.state.tick(self.clock.now()))
        for key, lease_until in running.items():
            assert lease_until is not None
            assert self.is_current(key) == (lease_until > mono), (key, lease_until, mono)

    @rule(mono=st.integers(0, 12), wall=st.integers(-5, 30))  # whole seconds: ties with leases
    def tick(self, mono: int, wall: int) -> None:
        self.tick_at(self.clock.mono + mono, self.clock.wall + wall)

    @rule(forward=st.booleans())
    def wall_jump(self, forward: bool) -> None:
        self.backward_jumps += not forward
        self.tick_at(self.clock.mono, self.clock.wall + (3600 if forward else -3600))

    @rule()
    def restart(self) -> None:
        """The Scheduler dies and comes back from what it persisted; every link breaks."""
        live = self.store.live_jobs()
        assert {row.id for row in live} == set(self.state.jobs)
        self.state = self.fresh_state()
        self.state.load(live, self.clock.now())
        for pool in self.pools.values():
            pool.connected = False

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def live_jobs_are_exactly_the_unfinished_ones(self) -> None:
        assert set(self.state.jobs) == self.submitted - set(self.finished)
        assert all(job.status not in TERMINAL for job in self.state.jobs.values())
        assert all(count <= 1 for count in self.final_commits.values())

    @invariant()
    def live_jobs_go_by_seq(self) -> None:
        """The Scheduler's listing stops at the first live job older than a full page."""
        seqs = [job.seq for job in self.state.jobs.values()]
        assert seqs == sorted(seqs)

    @invariant()
    def credit_matches_what_each_pool_asked_for(self) -> None:
        for slot in self.state.pools.values():
            assert slot.credit >= 0
        for pool in self.pools.values():
            assert pool.asked >= 0
            assert len(pool.running) + pool.asked <= CAPACITY
            if pool.connected:
                assert self.state.pools[pool.name].credit == pool.asked - len(pool.lost)

    def teardown(self) -> None:
        """The faults heal: healthy pools answer every RunJob with success; all jobs end.

        A round answers everything the pools are given, then lets a lease and an hour
        pass: orphaned attempts expire in round one, their retries run in round two and
        end in round three. A job scheduled before the wall clock went back an hour
        waits one round longer per such jump.
        """
        for pool in self.pools.values():
            pool.lose_next = False
            self.ready(pool)
        rounds = 0
        while self.state.jobs:
            rounds += 1
            assert rounds <= 3 + self.backward_jumps, f"not drained: {self.state.jobs}"
            for pool in self.pools.values():
                while True:
                    while pool.running:
                        self.report(pool.name, pool.running.pop(), "succeeded")
                    self.ask(pool)
                    if not pool.running:
                        break
            self.clock.mono += LEASE + 1
            self.clock.wall += 3600
            self.apply(self.state.tick(self.clock.now()))
        assert set(self.finished) == self.submitted
        assert all(count <= 1 for count in self.final_commits.values())


TestSchedulerUnderFaults = SchedulerUnderFaults.TestCase
TestSchedulerUnderFaults.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
