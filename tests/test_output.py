"""Live output of running attempts: a Worker's one alarm sends their start notices.

Waits are for the notices themselves (events), bounded generously; nothing asserts on
speed.
"""

from __future__ import annotations

import anyio
import msgspec

from actorwork.messages import JobOutput, JobSpec
from actorwork.output import LiveOutput, StartedAlarm

DEADLINE = 60.0  # a bound for liveness, never a measure of speed


def _spec(job_id: str) -> JobSpec:
    return JobSpec(id=job_id, work="w", payload=msgspec.msgpack.encode(None), attempt=1)


async def test_one_alarm_sends_the_start_notice_of_the_attempt_still_running() -> None:
    """Attempts that end before the interval send nothing live; the one that runs on gets
    its start notice once, from the alarm the ended ones had set."""
    sent: list[JobOutput] = []
    notice = anyio.Event()

    def send(output: JobOutput) -> None:
        sent.append(output)
        notice.set()

    alarm = StartedAlarm()
    for short in ("a", "b", "c"):
        output = LiveOutput(_spec(short), send, interval=0.05, alarm=alarm)
        output.started(1.0)
        output.close()
    running = LiveOutput(_spec("d"), send, interval=0.05, alarm=alarm)
    running.started(2.0)
    with anyio.fail_after(DEADLINE):
        await notice.wait()
    assert [(o.job_id, o.started) for o in sent] == [("d", 2.0)]
    assert running.remainder() is None  # nothing more gathered since the notice
    running.close()


async def test_a_start_notice_goes_with_the_first_line_and_the_alarm_sends_nothing_more() -> None:
    sent: list[JobOutput] = []
    second = anyio.Event()

    def send(output: JobOutput) -> None:
        sent.append(output)
        if len(sent) == 2:
            second.set()

    alarm = StartedAlarm()
    output = LiveOutput(_spec("a"), send, interval=0.05, alarm=alarm)
    output.started(1.0)
    output.progress(0.5, "half")  # the first batch goes at once, the start with it
    assert [(o.started, o.fraction) for o in sent] == [(1.0, 0.5)]
    assert output.start_notice_due() is None  # the alarm, ringing, finds nothing due
    # A later attempt on the same alarm still gets its own notice.
    later = LiveOutput(_spec("b"), send, interval=0.05, alarm=alarm)
    later.started(2.0)
    with anyio.fail_after(DEADLINE):
        await second.wait()
    assert [(o.job_id, o.started) for o in sent] == [("a", 1.0), ("b", 2.0)]
    output.close()
    later.close()


async def test_attempts_running_side_by_side_each_get_their_start_notice() -> None:
    """A Pool's workers share one alarm: each attempt still running gets its notice."""
    sent: list[JobOutput] = []
    both = anyio.Event()

    def send(output: JobOutput) -> None:
        sent.append(output)
        if len(sent) == 2:
            both.set()

    alarm = StartedAlarm()
    outputs = [LiveOutput(_spec(job), send, interval=0.05, alarm=alarm) for job in "abc"]
    for started, output in enumerate(outputs):
        output.started(float(started))
    outputs[1].close()  # ended early: sends nothing
    with anyio.fail_after(DEADLINE):
        await both.wait()
    assert sorted((o.job_id, o.started) for o in sent) == [("a", 0.0), ("c", 2.0)]
    for output in outputs:
        output.close()
