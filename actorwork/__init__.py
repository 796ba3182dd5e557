"""actorwork: background work as asyncio actors.

The public API; everything here is re-exported from its home module. The roles a
configuration starts (``actorwork.scheduler.Scheduler``, ``actorwork.pool.Pool``,
``actorwork.worker.Worker``) are imported from their own packages.
"""

from actorwork._version import __version__
from actorwork.addressing import Address, parse_address
from actorwork.client import Client, JobHandle
from actorwork.config import load_config
from actorwork.errors import (
    ActorError,
    ActorNotFound,
    ActorStopped,
    ActorworkError,
    AskTimeout,
    ConfigError,
    JobError,
    JobFailed,
    JobNotFound,
    MessageRejected,
    PayloadError,
    ProtocolError,
    RemoteActorError,
    ScheduleError,
    ScheduleNotFound,
    TransportError,
    UsageError,
    WorkFailed,
    WorkNotFound,
)
from actorwork.messages import JobView, LogLine, Message, Terminated, WorkResult
from actorwork.node import Node
from actorwork.runtime import Actor, ActorRef, ActorSystem, Reply, current_actor
from actorwork.schedules import Schedule, schedule
from actorwork.sync import SyncClient, SyncJobHandle
from actorwork.topology import JobSystem
from actorwork.transports import Transport, register_transport
from actorwork.work import Limit, Work, WorkContext, work
from actorwork.workflow import (
    Workflow,
    WorkflowView,
    for_each,
    parallel,
    sequence,
    step,
    when,
    workflow,
)

__all__ = [
    "Actor",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "ActorworkError",
    "Address",
    "AskTimeout",
    "Client",
    "ConfigError",
    "JobError",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "JobSystem",
    "JobView",
    "Limit",
    "LogLine",
    "Message",
    "MessageRejected",
    "Node",
    "PayloadError",
    "ProtocolError",
    "RemoteActorError",
    "Reply",
    "Schedule",
    "ScheduleError",
    "ScheduleNotFound",
    "SyncClient",
    "SyncJobHandle",
    "Terminated",
    "Transport",
    "TransportError",
    "UsageError",
    "Work",
    "WorkContext",
    "WorkFailed",
    "WorkNotFound",
    "WorkResult",
    "Workflow",
    "WorkflowView",
    "__version__",
    "current_actor",
    "for_each",
    "load_config",
    "parallel",
    "parse_address",
    "register_transport",
    "schedule",
    "sequence",
    "step",
    "when",
    "work",
    "workflow",
]
