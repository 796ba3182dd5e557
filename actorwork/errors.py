"""Every exception actorwork raises, in one tree.

::

    ActorworkError
    ├── ConfigError                  a config key or value is wrong (names both)
    ├── UsageError                   a call's argument is out of range or of the wrong kind
    ├── AddressError                 an address cannot be parsed
    │   └── UnknownSchemeError       no transport is registered for the scheme
    ├── TransportError               something went wrong below the messages
    │   ├── ConnectionClosed         we closed it (using a connection after aclose)
    │   ├── ConnectionBroken         the peer or the network broke it
    │   ├── EndOfStream              the peer ended it in an orderly way
    │   ├── FrameTooLarge            a frame over the cap, refused before allocation
    │   ├── HandshakeError           protocol version or deadline not met
    │   │   └── AuthenticationError  shared secret missing or wrong
    │   └── NoLeader                 no Scheduler of those addresses leads (names each answer)
    ├── ProtocolError                bytes that do not decode to what the protocol expects
    ├── MessageEncodeError           a message holds a value that cannot go on the wire
    ├── EngineError                  the Docker Engine refused or failed a request (says what to do)
    │   ├── EngineUnavailable        no Docker Engine answers where DOCKER_HOST points
    │   └── ImageNotFound            the image is not in the engine (names how to build it)
    ├── ActorError                   the actor layer
    │   ├── ActorNotFound            no actor of that name
    │   ├── ActorStopped             the actor stopped before it handled the message
    │   ├── AskTimeout               no reply within the timeout (also a TimeoutError)
    │   ├── MessageRejected          the actor does not accept that message type
    │   └── RemoteActorError         the handler raised while answering an ask
    └── JobError                     the job system
        ├── WorkNotFound             no work registered under that name (lists the known ones)
        ├── PayloadError             a payload does not match its work's payload type
        ├── SubmitRefused            a middleware refused a submit (names the middleware)
        ├── JobNotFound              no job with that id
        ├── JobFailed                an awaited job ended without succeeding (carries the job)
        ├── WorkFailed               raised by work to fail its job without a retry
        │   └── PageNotReady         a page did not signal readiness in time (names the URL)
        ├── StoreError               the job store cannot be opened, read or written
        │   ├── LeadershipLost       another Scheduler took over the store from this one
        │   └── StoreInUse           another Scheduler leads the store (names it)
        ├── OutboxError              a result cannot be persisted in the pool's outbox
        ├── ChromiumError            Chromium cannot be started, reached or driven
        └── ScheduleError            a schedule's cron, zone, jitter or policy is invalid
            └── ScheduleNotFound     no schedule of that name

Foreign errors (``OSError``, ``ssl.SSLError``, ``msgspec`` errors, anyio's stream
errors) are translated at the transport or codec boundary with ``raise ... from exc``,
so callers only ever need to catch these.
"""

from __future__ import annotations

__all__ = [
    "ActorError",
    "ActorNotFound",
    "ActorStopped",
    "ActorworkError",
    "AddressError",
    "AskTimeout",
    "AuthenticationError",
    "ChromiumError",
    "ConfigError",
    "ConnectionBroken",
    "ConnectionClosed",
    "EndOfStream",
    "EngineError",
    "EngineUnavailable",
    "FrameTooLarge",
    "HandshakeError",
    "ImageNotFound",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "LeadershipLost",
    "MessageEncodeError",
    "MessageRejected",
    "NoLeader",
    "OutboxError",
    "PageNotReady",
    "PayloadError",
    "ProtocolError",
    "RemoteActorError",
    "ScheduleError",
    "ScheduleNotFound",
    "StoreError",
    "StoreInUse",
    "SubmitRefused",
    "TransportError",
    "UnknownSchemeError",
    "UsageError",
    "WorkFailed",
    "WorkNotFound",
]


class ActorworkError(Exception):
    """Base of every error actorwork raises on purpose."""


class ConfigError(ActorworkError, ValueError):
    """A configuration key or value is invalid; the message names both."""


class UsageError(ActorworkError, ValueError, TypeError):
    """A call with an argument out of its range or of the wrong kind; names the argument.

    Also a ValueError and a TypeError, the errors Python raises for such calls."""


class AddressError(ActorworkError, ValueError):
    """An address string cannot be parsed."""


class UnknownSchemeError(AddressError):
    """No transport is registered for an address scheme."""


class TransportError(ActorworkError):
    """A connection could not be made or used."""


class ConnectionClosed(TransportError):
    """This side closed the connection; it cannot be used any more."""


class ConnectionBroken(TransportError):
    """The peer or the network broke the connection (reset, killed, truncated frame)."""


class EndOfStream(TransportError):
    """The peer ended the connection in an orderly way, between two frames."""


class FrameTooLarge(TransportError):
    """A frame is larger than the configured cap; refused before it is allocated."""


class HandshakeError(TransportError):
    """The connection handshake failed: version mismatch, bad data or deadline."""


class AuthenticationError(HandshakeError):
    """The shared-secret challenge failed: no secret, or the wrong one."""


class NoLeader(TransportError):
    """None of the Scheduler addresses tried leads its store (each answer named).

    ``standbys`` is True when some answered in standby: a leader is being chosen, so
    trying again soon is worth it.
    """

    def __init__(self, message: str, *, standbys: bool = False) -> None:
        super().__init__(message)
        self.standbys = standbys


class ProtocolError(ActorworkError):
    """Bytes that do not decode to the message the protocol expects."""


class ActorError(ActorworkError):
    """Base of the errors of the actor layer."""


class ActorNotFound(ActorError, LookupError):
    """No actor of that name lives in the target system."""


class ActorStopped(ActorError):
    """The target actor stopped, or became unreachable, before handling the message."""


class AskTimeout(ActorError, TimeoutError):
    """No reply arrived within the ask's timeout."""


class MessageRejected(ActorError, TypeError):
    """The target actor does not accept messages of that type."""


class RemoteActorError(ActorError):
    """The handler of an ask raised; carries the remote exception's type and text.

    ``error_type`` is the qualified name of the exception class that the handler raised.
    """

    def __init__(self, message: str, *, error_type: str = "", actor: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.actor = actor


class MessageEncodeError(ActorworkError, TypeError):
    """A message cannot be encoded for the wire (a field holds an unencodable value)."""


class EngineError(ActorworkError):
    """The Docker Engine refused or failed a request; the message says what to do."""


class EngineUnavailable(EngineError):
    """No Docker Engine answers at the configured place (``DOCKER_HOST`` or its socket)."""


class ImageNotFound(EngineError, LookupError):
    """An image is not in the engine, which pulls nothing; the message names how to build it."""


class JobError(ActorworkError):
    """Base of the errors of the job system."""


class WorkNotFound(JobError, LookupError):
    """No work is registered under that name; the message lists the registered ones."""


class PayloadError(JobError, TypeError):
    """A payload does not match the payload type of its work; names both."""


class SubmitRefused(JobError):
    """A middleware refused a submit; the message names the middleware and why."""


class JobNotFound(JobError, LookupError):
    """No job with that id is known to the Scheduler."""


class JobFailed(JobError):
    """An awaited job ended failed, dead or cancelled; ``job`` is its final view."""

    def __init__(self, message: str, *, job: object = None) -> None:
        super().__init__(message)
        self.job = job


class StoreError(JobError):
    """The job store cannot be opened, read or written (a corrupt file, a full disk)."""


class LeadershipLost(StoreError):
    """Another Scheduler took the store over (this one was paused past its lease, say).

    Nothing of this Scheduler's was written after the takeover: every write
    transaction checks the leadership epoch first. The Scheduler stops.
    """


class StoreInUse(StoreError):
    """Another Scheduler leads the store, and this one was not to wait for it."""


class OutboxError(JobError, OSError):
    """A result cannot be persisted in the Pool's outbox (a full disk, no permission)."""


class WorkFailed(JobError):
    """Raised by work to end its job as ``failed``: a verdict, not an accident, so no retry."""


class PageNotReady(WorkFailed):
    """A page did not call ``window.actorworkReady()`` within its readiness timeout.

    Its message names the timeout and the URL; no retry, since the page decides.
    """


class ChromiumError(JobError):
    """Chromium cannot be launched, its container started, or its DevTools reached.

    The message says what was tried and what to do (install it, build the image).
    """


class ScheduleError(JobError, ValueError):
    """A schedule is invalid: a cron expression, time zone, jitter or policy; names the value.

    ``key`` is the schedule's field at fault (``"cron"``, ``"timezone"``, ...) and
    ``reason`` the message without the schedule's name, when known.
    """

    def __init__(self, message: str, *, key: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.reason = reason or message


class ScheduleNotFound(ScheduleError, LookupError):
    """No schedule is registered under that name."""
