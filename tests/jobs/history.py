"""A fault test's history and the checks of RELIABILITY.md's invariants against it.

A history holds what the test saw: every submit (and whether the Scheduler
acknowledged it), every execution start and end the works appended to the history
file (see ``tests.jobs.works.traced``), and, once the fault healed and the backlog
drained, each job's final view and every result the store recorded for it
(:meth:`actorwork.stores.sqlite.SQLiteStore.attempts`). :meth:`History.check` asserts I1-I4;
I5 and I6 are asserted by the tests (what survived which kill; the bounded waits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from actorwork.messages import TERMINAL, JobView, WorkResult

__all__ = ["Execution", "History"]

#: Outcomes that end an attempt without ending the job (it is retried or buried).
RETRYABLE = frozenset({"error", "timeout", "lost", "returned"})
#: Outcomes that, committed, end the job with that status.
FINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Execution:
    """One line a traced work wrote: ``start``, ``end`` or ``stopped``."""

    event: str
    job_id: str
    attempt: int
    pid: int


@dataclass(frozen=True)
class Recorded:
    """One row of the store's ``results`` table."""

    result: WorkResult
    committed: bool
    note: str


@dataclass
class History:
    path: Path
    #: job id -> True once the Scheduler acknowledged the submit.
    submits: dict[str, bool] = field(default_factory=dict)
    final: dict[str, JobView] = field(default_factory=dict)
    recorded: dict[str, list[Recorded]] = field(default_factory=dict)

    def submitted(self, job_id: str, *, acknowledged: bool) -> None:
        self.submits[job_id] = acknowledged

    def executions(self) -> list[Execution]:
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            event, job_id, attempt, pid = line.split()
            found.append(Execution(event, job_id, int(attempt), int(pid)))
        return found

    def started(self, job_id: str, attempt: int | None = None) -> list[Execution]:
        return [
            e
            for e in self.executions()
            if e.event == "start"
            and e.job_id == job_id
            and (attempt is None or e.attempt == attempt)
        ]

    def committed(self, job_id: str) -> list[WorkResult]:
        return [r.result for r in self.recorded.get(job_id, []) if r.committed]

    def check(self) -> None:
        """Assert I1-I4 over the whole history; the message names the job and the rule."""
        self._check_terminal()
        self._check_invented()
        for job_id in self.submits:
            if job_id in self.final:
                self._check_committed(self.final[job_id], self.recorded.get(job_id, []))

    def _check_terminal(self) -> None:
        for job_id, acknowledged in self.submits.items():
            if not acknowledged:
                continue
            view = self.final.get(job_id)
            assert view is not None, f"I1: acknowledged job {job_id} is unknown to the scheduler"
            assert view.status in TERMINAL, f"I1: job {job_id} ended the test {view.status}"

    def _check_invented(self) -> None:
        for job_id, rows in self.recorded.items():
            view = self.final.get(job_id)
            assert job_id in self.submits, f"I2: results for unsubmitted job {job_id}"
            assert view is not None, f"I2: results for unknown job {job_id}"
            for row in rows:
                result = row.result
                assert result.job_id == job_id, f"I2: {result.job_id} filed under {job_id}"
                assert 1 <= result.attempt <= view.attempt, (
                    f"I2: job {job_id} has a result for attempt {result.attempt}, "
                    f"but only {view.attempt} were dispatched"
                )
        for execution in self.executions():
            view = self.final.get(execution.job_id)
            assert view is not None, f"I2: an execution of unknown job {execution.job_id}"
            assert 1 <= execution.attempt <= view.attempt, (
                f"I2: job {execution.job_id} ran attempt {execution.attempt}, "
                f"but only {view.attempt} were dispatched"
            )

    def _check_committed(self, view: JobView, rows: list[Recorded]) -> None:
        job_id = view.id
        committed = [row.result for row in rows if row.committed]
        final = [r for r in committed if r.outcome in FINAL]
        assert len({r.attempt for r in committed}) == len(committed), f"I3: {job_id}"
        if view.status == "cancelled" and view.attempt == 0:
            assert not rows, f"I3: job {job_id} was cancelled while queued but has results"
            return
        if view.status in ("succeeded", "failed"):
            assert len(final) == 1, (
                f"I3: job {job_id} is {view.status} with {len(final)} committed final results"
            )
            (result,) = final
            assert result.attempt == view.attempt, (
                f"I3: job {job_id} committed attempt {result.attempt}, "
                f"its last attempt is {view.attempt}"
            )
            assert result.outcome == view.status, f"I3: {job_id}: {result.outcome}"
            assert view.result is not None, f"I3: job {job_id} has no result"
            assert view.result.key == result.key, f"I3: {job_id}: {view.result.key}"
            # "stopped": told to stop (its lease lapsed under load, say), the work checked
            # in and returned; its result stands if no newer attempt was issued meanwhile.
            ran = {
                (e.job_id, e.attempt) for e in self.executions() if e.event in ("end", "stopped")
            }
            if result.outcome == "succeeded":
                assert (job_id, result.attempt) in ran, (
                    f"I2: job {job_id} attempt {result.attempt} committed a success "
                    "that no execution produced"
                )
        else:
            assert len(final) <= 1, f"I3: job {job_id} has {len(final)} committed final results"
            if view.status == "dead":
                assert not final, f"I3: job {job_id} is dead with a committed {final[0].outcome}"
        for result in committed:
            if result.attempt < view.attempt:
                assert result.outcome in RETRYABLE, (
                    f"I4: job {job_id} committed {result.outcome} for attempt "
                    f"{result.attempt}, older than its last attempt {view.attempt}"
                )
