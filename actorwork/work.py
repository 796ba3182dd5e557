"""Work: user code registered by name, and the context it runs with.

::

    class Page(msgspec.Struct):
        url: str

    @actorwork.work(queue="render", retries=2, timeout=60)
    async def render(ctx: WorkContext, page: Page) -> int:
        ctx.log.info("rendering", url=page.url)
        ctx.progress(0.5, "loaded")
        ctx.add_artifact("page.pdf", pdf_bytes, media_type="application/pdf")
        return len(pdf_bytes)

A function takes an optional first parameter annotated :class:`WorkContext` and at
most one more, the payload; its annotation (a msgspec Struct, a plain type, a
container of them) is the payload type, checked when the job is submitted and again
in the worker. A function with several payload parameters takes them as one mapping
(they become the fields of a generated Struct). Sync functions run in a thread,
async ones on the worker's loop. The decorated object can still be called directly.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints, overload

import msgspec
import structlog

from actorwork._importing import import_object
from actorwork.errors import PayloadError, UsageError, WorkNotFound
from actorwork.messages import Artifact

__all__ = [
    "FINISHED",
    "Keep",
    "Limit",
    "Work",
    "WorkContext",
    "WorkRegistry",
    "default_registry",
    "work",
]

_encoder = msgspec.msgpack.Encoder()

#: The statuses a retention policy is given for: the terminal ones.
FINISHED = ("succeeded", "failed", "dead", "cancelled", "skipped")

_MISSING = object()


class Limit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How many jobs of a work may run at once, and how fast they may start.

    The Scheduler enforces it across every Pool. ``concurrency`` is the most jobs
    running at once; ``rate`` the most starts per second, a token bucket of ``burst``
    tokens (default: ``rate`` rounded up) refilled on the monotonic clock, so in any
    ``t`` seconds at most ``burst + rate * t`` jobs start. With ``key``, the limit holds
    per value of that payload field (``Limit(concurrency=2, key="customer")``: at most
    two running per customer); without it, for the work as a whole. A job held by a
    limit stays queued and its status says why.
    """

    concurrency: int | None = None
    rate: float | None = None
    burst: int | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if self.concurrency is None and self.rate is None:
            raise UsageError("a Limit needs a concurrency, a rate or both")
        if self.concurrency is not None and self.concurrency < 1:
            raise UsageError(f"limit concurrency must be at least 1, got {self.concurrency!r}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise UsageError(f"limit rate must be a finite number > 0, got {self.rate!r}")
        if self.burst is not None and (self.burst < 1 or self.rate is None):
            raise UsageError(
                f"limit burst must be at least 1 and go with a rate, got {self.burst!r}"
            )
        if self.key is not None and not self.key:
            raise UsageError("limit key must name a payload field, got ''")

    @property
    def tokens(self) -> int:
        """The bucket's size: how many jobs may start at once after a quiet spell."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate or 1.0))


class Keep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How long finished jobs of one status are kept (see :mod:`actorwork.stores`).

    ``hours`` after they finished, and only the newest ``rows`` of them; None is no
    limit on that side. A job goes as soon as either says so. In a config file:
    ``succeeded = { hours = 24, rows = 100000 }``.
    """

    hours: float | None = None
    rows: int | None = None

    def __post_init__(self) -> None:
        if self.hours is not None and not (math.isfinite(self.hours) and self.hours >= 0):
            raise UsageError(f"keep hours must be a finite number >= 0, got {self.hours!r}")
        if self.rows is not None and self.rows < 0:
            raise UsageError(f"keep rows must be 0 or more, got {self.rows!r}")


class WorkContext:
    """What a running job can reach: its identity, a logger, progress, check-ins, artifacts.

    Every method is safe to call from the thread a sync work runs in.
    """

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        work: str,
        queue: str,
        log: Any = None,
        on_progress: Callable[[float | None, str], None] | None = None,
        context: Mapping[str, str] | None = None,
        on_artifact: Callable[[str], None] | None = None,
        parents: Mapping[str, bytes | None] | None = None,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.work = work
        self.queue = queue
        #: A structlog logger bound to this job; its events travel with the result.
        self.log: Any = log if log is not None else structlog.get_logger(work).bind(job_id=job_id)
        self.artifacts: list[Artifact] = []
        self._parents = dict(parents or {})
        self.fraction: float | None = None
        self.progress_message = ""
        #: Why the work was asked to stop; empty while it was not. Set once, by one
        #: assignment, so a sync work's thread reads it safely without a lock.
        self.stop_reason = ""
        #: Fields carried with the job from its submit (middleware adds them: a tenant).
        self.context: Mapping[str, str] = dict(context or {})
        self._on_progress = on_progress
        self._on_artifact = on_artifact
        #: Called once when a stop is requested; the lock orders registering one
        #: against a stop requested from another thread, so none is missed or run twice.
        self._stop_callbacks: list[Callable[[], None]] = []
        self._stop_lock = threading.Lock()

    @property
    def parents(self) -> dict[str, Any]:
        """The return values of the jobs this one depends on, by job id (decoded
        MessagePack; None for a parent that returned nothing or did not succeed)."""
        return {
            job_id: None if value is None else msgspec.msgpack.decode(value)
            for job_id, value in self._parents.items()
        }

    @property
    def previous(self) -> Any:
        """The return value of the one job this one runs after (in a workflow, the node
        before it); None when it runs after none, or several, or that one left none."""
        if len(self._parents) != 1:
            return None
        (value,) = self._parents.values()
        return None if value is None else msgspec.msgpack.decode(value)

    def progress(self, fraction: float | None, message: str = "") -> None:
        """Report how far the work has come (0.0 to 1.0, or None if unknown), live."""
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise UsageError(f"progress fraction must be between 0 and 1, got {fraction!r}")
        self.fraction = fraction
        self.progress_message = message
        if self._on_progress is not None:
            self._on_progress(fraction, message)

    def checkin(self) -> bool:
        """True when the work should stop (cancelled, timed out, the pool stopping).

        Long work should call it between steps and return soon after it says True.
        The stop is enforced after a grace period: async work is then cancelled (its
        ``finally`` blocks run), and sync work, which cannot be, is left to finish in
        its thread while its worker stays busy and takes no other job.
        """
        return bool(self.stop_reason)

    @property
    def stop_requested(self) -> bool:
        return bool(self.stop_reason)

    def request_stop(self, reason: str) -> None:
        """Ask the work to stop at its next check-in (called by the worker); only the
        first request counts."""
        with self._stop_lock:
            if self.stop_reason:
                return
            self.stop_reason = reason or "stopped"
            callbacks, self._stop_callbacks = self._stop_callbacks, []
        for callback in callbacks:
            callback()

    def when_stopped(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once a stop is requested, in the thread that requests it;
        at once if one already was (the worker uses it to enforce the stop)."""
        with self._stop_lock:
            if not self.stop_reason:
                self._stop_callbacks.append(callback)
                return
        callback()

    def add_artifact(
        self, name: str, data: bytes, *, media_type: str = "application/octet-stream"
    ) -> None:
        """Attach a file (a PDF, an image) to the result; ``name`` is a plain file name."""
        if not name or "/" in name or "\\" in name or name in {".", ".."}:
            raise UsageError(f"artifact name must be a plain file name, got {name!r}")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise UsageError(f"artifact {name!r} data must be bytes, got {type(data).__name__}")
        self.artifacts.append(Artifact(name, bytes(data), media_type))
        if self._on_artifact is not None:
            self._on_artifact(name)


@dataclass(frozen=True, eq=False)
class Work:
    """A registered function and its defaults; call it to run it directly."""

    name: str
    func: Callable[..., Any]
    queue: str = "default"
    retries: int = 3
    timeout: float | None = None
    priority: int = 0
    payload_type: Any = None
    takes_context: bool = False
    payload_params: tuple[str, ...] = ()
    spread: bool = False
    is_async: bool = False
    #: Retention of this work's finished jobs by status, over the Scheduler's default.
    keep: Mapping[str, Keep] = field(default_factory=dict)
    #: How many of its jobs may run at once or start per second (see :class:`Limit`).
    limit: Limit | None = None

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def encode_payload(self, payload: Any) -> bytes:
        """``payload`` checked against the payload type, as MessagePack; PayloadError if not."""
        if not self.payload_params:
            if payload is not None:
                raise PayloadError(
                    f"work {self.name!r} takes no payload, got {type(payload).__name__}"
                )
            return _encoder.encode(None)
        try:
            value = msgspec.convert(payload, self.payload_type, from_attributes=True)
            return _encoder.encode(value)
        except (msgspec.ValidationError, TypeError) as exc:
            raise PayloadError(
                f"payload for work {self.name!r} must be {_type_name(self.payload_type)}: {exc}"
            ) from exc

    def decode_payload(self, data: bytes) -> Any:
        """The payload of a job, validated again; PayloadError names what is wrong."""
        try:
            return msgspec.msgpack.decode(data, type=self.payload_type or None)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise PayloadError(
                f"payload for work {self.name!r} must be {_type_name(self.payload_type)}: {exc}"
            ) from exc

    def limit_key(self, payload: bytes) -> str | None:
        """The name of the limit a job of ``payload`` counts against; None without a limit.

        It is the work's name, with the value of the limit's payload field when it has
        a ``key``: ``"send_mail[customer='acme']"``. PayloadError if the field is missing.
        """
        limit = self.limit
        if limit is None:
            return None
        if limit.key is None:
            return self.name
        value = self.decode_payload(payload)
        found = (
            value.get(limit.key, _MISSING)
            if isinstance(value, Mapping)
            else getattr(value, limit.key, _MISSING)
        )
        if found is _MISSING:
            raise PayloadError(
                f"work {self.name!r} is limited per payload field {limit.key!r}, "
                f"which the payload lacks: {value!r}"
            )
        return f"{self.name}[{limit.key}={found!r}]"

    def arguments(self, context: WorkContext, payload: Any) -> tuple[list[Any], dict[str, Any]]:
        """The call arguments for ``func``, from the context and the decoded payload."""
        args: list[Any] = [context] if self.takes_context else []
        if self.spread:
            return args, {name: getattr(payload, name) for name in self.payload_params}
        if self.payload_params:
            args.append(payload)
        return args, {}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


def _describe(func: Callable[..., Any], name: str) -> dict[str, Any]:
    """Context and payload parameters of ``func``, from its signature and annotations."""
    try:
        hints = get_type_hints(func)
    except Exception as exc:
        raise UsageError(f"cannot resolve the annotations of work {name!r}: {exc}") from exc
    params = list(inspect.signature(func).parameters.values())
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise UsageError(f"work {name!r} cannot take *{param.name}: payloads are typed")
    takes_context = bool(params) and (
        hints.get(params[0].name) is WorkContext or params[0].name in {"ctx", "context"}
    )
    rest = params[1:] if takes_context else params
    names = tuple(p.name for p in rest)
    if len(rest) == 1:
        return {
            "takes_context": takes_context,
            "payload_params": names,
            "payload_type": hints.get(rest[0].name, Any),
        }
    fields = [
        (p.name, hints.get(p.name, Any))
        if p.default is p.empty
        else (p.name, hints.get(p.name, Any), p.default)
        for p in rest
    ]
    payload_type = msgspec.defstruct(f"{name}_payload", fields, kw_only=True) if rest else None
    return {
        "takes_context": takes_context,
        "payload_params": names,
        "payload_type": payload_type,
        "spread": bool(rest),
    }


class WorkRegistry:
    """Works by name. Importing a module with ``@work`` functions registers them."""

    def __init__(self) -> None:
        self._works: dict[str, Work] = {}

    def register(self, item: Work) -> Work:
        existing = self._works.get(item.name)
        if existing is not None and _origin(existing.func) != _origin(item.func):
            raise UsageError(
                f"work name {item.name!r} is already registered by {_origin(existing.func)}"
            )
        self._works[item.name] = item
        return item

    def get(self, name: str) -> Work:
        found = self._works.get(name)
        if found is None:
            known = ", ".join(sorted(self._works)) or "none"
            raise WorkNotFound(f"unknown work {name!r} (registered: {known})")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._works

    def names(self) -> list[str]:
        return sorted(self._works)

    def import_modules(self, modules: Iterable[str]) -> None:
        """Import the modules that define works (``"package.module"``)."""
        for module in modules:
            import_object(f"{module}:__name__")


def _origin(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


#: The registry ``@work`` uses unless given another.
default_registry = WorkRegistry()


@overload
def work(func: Callable[..., Any], /) -> Work: ...


@overload
def work(
    *,
    name: str | None = None,
    queue: str = "default",
    retries: int = 3,
    timeout: float | None = None,
    priority: int = 0,
    registry: WorkRegistry | None = None,
    keep: Mapping[str, Keep] | None = None,
    limit: Limit | None = None,
) -> Callable[[Callable[..., Any]], Work]: ...


def work(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    queue: str = "default",
    retries: int = 3,
    timeout: float | None = None,
    priority: int = 0,
    registry: WorkRegistry | None = None,
    keep: Mapping[str, Keep] | None = None,
    limit: Limit | None = None,
) -> Work | Callable[[Callable[..., Any]], Work]:
    """Register a function as work; use bare (``@work``) or with options.

    ``name`` defaults to ``module.function``; ``retries`` is how many more attempts
    follow a failed one; ``timeout`` is seconds per attempt; a higher ``priority``
    is handed out sooner within its queue. ``keep`` keeps this work's finished jobs
    longer or shorter than the Scheduler's retention, by status:
    ``keep={"succeeded": Keep(hours=1), "failed": Keep(rows=1000)}``. ``limit`` caps
    how many of its jobs run at once or start per second, across every Pool
    (see :class:`Limit`).
    """
    unknown = sorted(set(keep or {}) - set(FINISHED))
    if unknown:
        raise UsageError(f"keep status {unknown[0]!r} is not one of: {', '.join(FINISHED)}")
    if retries < 0:
        raise UsageError(f"retries must be 0 or more, got {retries!r}")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"timeout must be positive, got {timeout!r}")

    def register(fn: Callable[..., Any]) -> Work:
        work_name = name or f"{fn.__module__}.{fn.__qualname__}"
        item = Work(
            name=work_name,
            func=fn,
            queue=queue,
            retries=retries,
            timeout=timeout,
            priority=priority,
            keep=dict(keep or {}),
            limit=limit,
            is_async=inspect.iscoroutinefunction(fn),
            **_describe(fn, work_name),
        )
        return (registry or default_registry).register(item)

    return register(func) if func is not None else register
