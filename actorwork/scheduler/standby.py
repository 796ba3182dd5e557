"""What a Scheduler in standby answers while another leads its store.

A standby that listens (``[scheduler] listen``) runs this actor under the
Scheduler's name until it leads: every ask, whatever it asks, is answered with
:class:`~actorwork.messages.NotLeaderReply` naming the leader's advertised address,
so a Pool or client that reached it connects to the leader instead. Tells (a Pool's
results, say) are dropped: the Pool keeps them in its outbox until the leader
acknowledges them.
"""

from __future__ import annotations

from actorwork.messages import Message, NotLeaderReply
from actorwork.runtime import Actor
from actorwork.scheduler.leadership import leader_address

__all__ = ["Standby"]


class Standby(Actor):
    """Answers every message with where the leader is; :meth:`seen` keeps that current."""

    def __init__(self) -> None:
        #: The leader's advertised address, as last read from the store; None if unknown.
        self.leader: str | None = None

    def seen(self, holder: str | None) -> None:
        """The store's leader row names ``holder`` now."""
        self.leader = leader_address(holder)

    async def receive(self, message: Message) -> NotLeaderReply:
        return NotLeaderReply(leader=self.leader)
