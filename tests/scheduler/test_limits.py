"""Concurrency and rate limits in the Scheduler's pure state: no actor, no sleeping.

A limit names a key (a work, or a work and a payload field's value); the state counts
the running jobs of each key across every pool and keeps a token bucket per key on the
monotonic clock. Times are passed in, so each start is checked to the exact instant.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actorwork.errors import PayloadError
from actorwork.messages import JobKey, RunJob
from actorwork.scheduler.state import Effect, Job, SchedulerState, Send
from actorwork.work import Limit, WorkRegistry, work
from tests.scheduler.test_state import Clock, make_job, new_state, result, runs


def limited(
    state: SchedulerState, job_id: str, key: str, limit: Limit, *, priority: int = 0
) -> Job:
    job = make_job(state, job_id, priority=priority)
    job.limit_key, job.limit = key, limit
    return job


def started(effects: list[Effect]) -> list[str]:
    return [job_id for _, job_id, _ in runs(effects)]


# --- concurrency ---------------------------------------------------------------------


def test_at_most_concurrency_run_per_key_across_pools() -> None:
    clock, state = Clock(), new_state()
    two = Limit(concurrency=2, key="customer")
    state.pool_ready("p", ["default"], 5, [], clock.now())
    state.pool_ready("q", ["default"], 5, [], clock.now())
    effects: list[Effect] = []
    for n in range(4):
        effects += state.submit(limited(state, f"a{n}", "mail[customer='a']", two), clock.now())
    effects += state.submit(limited(state, "b0", "mail[customer='b']", two), clock.now())
    assert sorted(started(effects)) == ["a0", "a1", "b0"]
    assert state.running_under("mail[customer='a']") == 2
    held = state.view(state.jobs["a2"])
    assert held.status == "queued"
    assert held.waiting == "held by limit \"mail[customer='a']\": 2 of 2 running"
    # One of them ends: exactly one held job starts, the oldest first.
    ended = state.result("p", result("a0", 1, "succeeded"), clock.now())
    assert started(ended) == ["a2"]
    assert state.view(state.jobs["a3"]).waiting.startswith("held by limit")
    assert state.view(state.jobs["a2"]).waiting == ""


def test_a_lost_lease_frees_the_slot_of_its_limit() -> None:
    clock, state = Clock(), new_state()
    one = Limit(concurrency=1)
    state.pool_ready("p", ["default"], 2, [], clock.now())
    first = state.submit(limited(state, "j0", "w", one), clock.now())
    second = state.submit(limited(state, "j1", "w", one), clock.now())
    assert started(first) == ["j0"]
    assert started(second) == []
    state.pool_lost("p")  # the pool is gone; its job keeps the slot until its lease ends
    state.pool_ready("q", ["default"], 2, [], clock.now())
    assert started(state.tick(clock.advance(5.0))) == []
    assert state.running_under("w") == 1
    effects = state.tick(clock.advance(6.0))  # past the 10 s lease
    assert started(effects) == ["j1"]
    assert state.running_under("w") == 1
    assert state.jobs["j0"].status == "retrying"


def test_cancel_of_a_running_job_frees_its_slot() -> None:
    clock, state = Clock(), new_state()
    one = Limit(concurrency=1)
    state.pool_ready("p", ["default"], 2, [], clock.now())
    state.submit(limited(state, "j0", "w", one), clock.now())
    state.submit(limited(state, "j1", "w", one), clock.now())
    assert started(state.cancel("j0", "no", clock.now())) == ["j1"]


def test_running_counts_rebuild_from_live_jobs_after_a_restart() -> None:
    clock, state = Clock(), new_state()
    one = Limit(concurrency=1)
    running = limited(state, "j0", "w", one)
    running.status, running.attempt = "running", 1
    queued = limited(state, "j1", "w", one)
    state.load([running, queued], clock.now())
    assert state.running_under("w") == 1
    assert started(state.pool_ready("p", ["default"], 2, [JobKey("j0", 1)], clock.now())) == []
    assert state.view(state.jobs["j1"]).waiting == "held by limit 'w': 1 of 1 running"


# --- rate --------------------------------------------------------------------------------


def test_rate_spaces_starts_on_the_monotonic_clock() -> None:
    clock, state = Clock(), new_state()
    rate = Limit(rate=2.0, burst=1)
    state.pool_ready("p", ["default"], 10, [], clock.now())
    effects: list[Effect] = []
    for n in range(3):
        effects += state.submit(limited(state, f"j{n}", "api", rate), clock.now())
    assert started(effects) == ["j0"]
    assert (
        state.view(state.jobs["j1"]).waiting == "held by limit 'api': at most 2 starts per second"
    )
    assert started(state.tick(clock.advance(0.49))) == []
    assert started(state.tick(clock.advance(0.01))) == ["j1"]
    assert started(state.tick(clock.advance(0.25))) == []
    assert started(state.tick(clock.advance(0.25))) == ["j2"]


def test_a_wall_clock_jump_does_not_refill_a_bucket() -> None:
    clock, state = Clock(), new_state()
    rate = Limit(rate=1.0, burst=1)
    state.pool_ready("p", ["default"], 10, [], clock.now())
    assert started(state.submit(limited(state, "j0", "api", rate), clock.now())) == ["j0"]
    assert started(state.submit(limited(state, "j1", "api", rate), clock.now())) == []
    clock.wall += 3600.0
    assert started(state.tick(clock.now())) == []


# --- the limit's key from the payload ------------------------------------------------------


class Mail(msgspec.Struct):
    customer: str
    body: str = ""


def test_limit_key_comes_from_the_payload_field() -> None:
    registry = WorkRegistry()

    @work(name="mail", registry=registry, limit=Limit(concurrency=2, key="customer"))
    def mail(payload: Mail) -> None: ...

    @work(name="whole", registry=registry, limit=Limit(rate=5))
    def whole() -> None: ...

    payload = mail.encode_payload(Mail("acme"))
    assert mail.limit_key(payload) == "mail[customer='acme']"
    assert whole.limit_key(whole.encode_payload(None)) == "whole"
    assert whole.limit is not None
    assert whole.limit.tokens == 5


def test_a_payload_without_the_key_field_is_refused_naming_it() -> None:
    registry = WorkRegistry()

    @work(name="anything", registry=registry, limit=Limit(concurrency=1, key="customer"))
    def anything(payload: dict[str, int]) -> None: ...

    with pytest.raises(PayloadError, match=r"payload field 'customer'.*\{'other': 1\}"):
        anything.limit_key(anything.encode_payload({"other": 1}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs a concurrency, a rate or both"),
        ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
        ({"rate": math.inf}, "rate must be a finite number > 0, got inf"),
        ({"rate": -1.0}, "rate must be a finite number > 0, got -1.0"),
        ({"concurrency": 1, "burst": 3}, "burst must be at least 1 and go with a rate, got 3"),
        ({"concurrency": 1, "key": ""}, "limit key must name a payload field"),
    ],
)
def test_bad_limits_are_refused_naming_the_value(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Limit(**options)  # type: ignore[arg-type]


# --- any interleaving ------------------------------------------------------------------------

KEYS = ("k0", "k1", "k2")
CONCURRENCY = 2
RATE = 4.0
BURST = 2
LIMITS = {
    "k0": Limit(concurrency=CONCURRENCY),
    "k1": Limit(concurrency=CONCURRENCY, rate=RATE, burst=BURST),
    "k2": Limit(rate=RATE, burst=BURST),
}


class LimitsUnderInterleavings(RuleBasedStateMachine):
    """Submits under three limits, pools asking for work, results, lost pools, leases
    running out, cancels and clock steps in any order.

    After every step no key has more running jobs than its concurrency (counted from
    the jobs themselves, not the state's counters), and in every window of time the
    starts of a rate-limited key are at most ``burst + rate * window``. At the end,
    with a healthy pool, every job ends: nothing is held for ever.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.state = new_state()
        self.ids = itertools.count()
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.state.pool_ready("p", ["default"], 0, [], self.clock.now())
        self.state.pool_ready("q", ["default"], 0, [], self.clock.now())
        self.submitted: set[str] = set()
        self.ended: set[str] = set()

    def take(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send) and isinstance(effect.message, RunJob):
                job = self.state.jobs[effect.message.job.id]
                assert job.limit_key is not None
                self.starts[job.limit_key].append(self.clock.mono)
        self.ended.update(job_id for job_id in self.submitted if job_id not in self.state.jobs)

    @rule(key=st.sampled_from(KEYS), priority=st.integers(0, 2))
    def submit(self, key: str, priority: int) -> None:
        job_id = f"j{next(self.ids)}"
        self.submitted.add(job_id)
        job = limited(self.state, job_id, key, LIMITS[key], priority=priority)
        self.take(self.state.submit(job, self.clock.now()))

    @rule(pool=st.sampled_from(["p", "q"]), slots=st.integers(1, 4))
    def request(self, pool: str, slots: int) -> None:
        self.take(self.state.request_work(pool, slots, self.clock.now()))

    @rule(pool=st.sampled_from(["p", "q"]), data=st.data())
    def finish(self, pool: str, data: st.DataObject) -> None:
        mine = sorted(
            j.id for j in self.state.jobs.values() if j.status == "running" and j.pool == pool
        )
        if not mine:
            return
        job_id = data.draw(st.sampled_from(mine))
        outcome = data.draw(st.sampled_from(["succeeded", "error", "returned", "failed"]))
        attempt = self.state.jobs[job_id].attempt
        self.take(self.state.result(pool, result(job_id, attempt, outcome, pool), self.clock.now()))

    @rule(pool=st.sampled_from(["p", "q"]))
    def lose(self, pool: str) -> None:
        self.state.pool_lost(pool)

    @rule(pool=st.sampled_from(["p", "q"]), free=st.integers(0, 3))
    def reconnect(self, pool: str, free: int) -> None:
        running = [
            j.key for j in self.state.jobs.values() if j.status == "running" and j.pool == pool
        ]
        self.take(self.state.pool_ready(pool, ["default"], free, running, self.clock.now()))

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        live = sorted(self.state.jobs)
        if live:
            self.take(self.state.cancel(data.draw(st.sampled_from(live)), "x", self.clock.now()))

    @rule(seconds=st.sampled_from([0.05, 0.1, 0.25, 0.5, 3.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.take(self.state.tick(self.clock.advance(seconds)))

    @invariant()
    def concurrency_never_exceeded(self) -> None:
        running = Counter(j.limit_key for j in self.state.jobs.values() if j.status == "running")
        for key, count in running.items():
            limit = LIMITS[str(key)]
            if limit.concurrency is not None:
                assert count <= limit.concurrency, (key, count)

    @invariant()
    def rate_never_exceeded(self) -> None:
        for key, times in self.starts.items():
            limit = LIMITS[key]
            if limit.rate is None:
                continue
            for i, first in enumerate(times):
                for j in range(i, len(times)):
                    window = times[j] - first
                    assert j - i + 1 <= limit.tokens + limit.rate * window + 1e-9, (key, times)

    @rule()
    def drain_heals(self) -> None:
        """Sometimes, mid-run: a healthy pool that finishes everything it is sent."""
        self.heal()

    def heal(self) -> None:
        for _ in range(2000):
            if not self.state.jobs:
                return
            for job in [j for j in self.state.jobs.values() if j.status == "running"]:
                effects = self.state.result(
                    job.pool or "p",
                    result(job.id, job.attempt, "succeeded", job.pool or "p"),
                    self.clock.now(),
                )
                self.take(effects)
            self.take(self.state.pool_ready("p", ["default"], 4, [], self.clock.now()))
            self.take(self.state.tick(self.clock.advance(1.0)))
        raise AssertionError(f"jobs never ended: {sorted(self.state.jobs)}")

    def teardown(self) -> None:
        self.heal()
        assert self.ended == self.submitted


LimitsUnderInterleavings.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_limits_under_interleavings = LimitsUnderInterleavings.TestCase
