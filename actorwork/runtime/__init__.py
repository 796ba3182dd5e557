"""The actor runtime: actors, refs, mailboxes and the system that runs them."""

from actorwork.runtime.actor import Actor, Reply
from actorwork.runtime.ref import ActorRef, LocalRef, RemoteRef, current_actor
from actorwork.runtime.system import ActorSystem

__all__ = ["Actor", "ActorRef", "ActorSystem", "LocalRef", "RemoteRef", "Reply", "current_actor"]
