"""The effects of the Scheduler's pure state: what it asks its shell to carry out.

The store's effects (:class:`~actorwork.stores.base.Persist`, ``Record``, ``Forget``
and those of schedules and queues) are made durable in one group commit; only then
does the shell carry out :class:`Send`, :class:`Reply` and :class:`Finished`, so
nothing leaves the Scheduler that a crash could take back.
"""

from __future__ import annotations

from dataclasses import dataclass

from actorwork.messages import JobView, Message
from actorwork.stores.base import (
    DropSchedule,
    Forget,
    Persist,
    Record,
    SaveSchedule,
    SetFence,
    SetPaused,
)

__all__ = ["Effect", "Finished", "Reply", "Send"]


@dataclass(frozen=True)
class Send:
    """Tell ``message`` to pool ``pool``, after the batch is committed."""

    pool: str
    message: Message


@dataclass(frozen=True)
class Reply:
    """Answer the message being handled, after the batch is committed."""

    message: Message


@dataclass(frozen=True)
class Finished:
    """The job reached a terminal state: wake whoever awaits it."""

    view: JobView


Effect = (
    Persist
    | Record
    | Forget
    | Send
    | Reply
    | Finished
    | SaveSchedule
    | DropSchedule
    | SetFence
    | SetPaused
)
