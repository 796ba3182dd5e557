"""The job a submit asks for: its id, the work's defaults, and what is refused.

Pure functions of the shell (:mod:`actorwork.scheduler.actor`): a submit is checked
against the registered work (its name, its payload, its attempts and timeout) and
made a :class:`~actorwork.scheduler.state.Job` with the work's defaults filled in.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

from actorwork.errors import PayloadError, WorkNotFound
from actorwork.messages import SubmitJob, SubmitRefusedReply
from actorwork.scheduler.state import Job, Now
from actorwork.work import WorkRegistry

__all__ = ["build_job", "new_job", "new_job_id"]

# Job ids are 128 random bits in hex, like a uuid4's, from a generator seeded by the OS
# (again in a forked child): a uuid4 asks the kernel for every id, which costs more than
# the rest of a no-op job's submit. Ids need to be unique, not unguessable.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_job_id() -> str:
    """A fresh job id: 32 hex digits."""
    return f"{_ids.getrandbits(128):032x}"


def new_job(
    registry: WorkRegistry, message: SubmitJob, now: Now, next_seq: Callable[[], int]
) -> Job | SubmitRefusedReply:
    """The job a submit asks for, or why it is refused (see :func:`build_job`)."""
    try:
        return build_job(registry, message, now, next_seq)
    except (WorkNotFound, PayloadError, ValueError) as exc:
        return SubmitRefusedReply(type(exc).__name__, str(exc))


def build_job(
    registry: WorkRegistry, message: SubmitJob, now: Now, next_seq: Callable[[], int]
) -> Job:
    """The job a submit asks for, its sequence number from ``next_seq`` once it is valid.

    Raises :class:`~actorwork.errors.WorkNotFound`, :class:`~actorwork.errors.PayloadError`
    or :class:`ValueError`, naming what is wrong.
    """
    work = registry.get(message.work)
    work.decode_payload(message.payload)
    max_attempts = message.max_attempts if message.max_attempts is not None else work.max_attempts
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
    timeout = message.timeout if message.timeout is not None else work.timeout
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if message.when not in ("succeeded", "finished", "failed"):
        raise ValueError(f"when must be 'succeeded', 'finished' or 'failed', got {message.when!r}")
    return Job(
        id=message.job_id or new_job_id(),
        work=work.name,
        queue=message.queue or work.queue,
        priority=message.priority if message.priority is not None else work.priority,
        payload=message.payload,
        status="queued",
        attempt=0,
        max_attempts=max_attempts,
        created=now.wall,
        updated=now.wall,
        seq=next_seq(),
        timeout=timeout,
        unique_key=message.unique_key,
        due=message.due,
        context=dict(message.context),
        depends_on=tuple(dict.fromkeys(message.depends_on)),
        when=message.when,
        workflow=message.workflow,
        path=message.path,
        policy=message.policy,
        limit_key=work.limit_key(message.payload),
        limit=work.limit,
    )
