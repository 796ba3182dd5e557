"""Middleware: typed hooks around submit, dispatch, commit and run.

::

    class Tenant(actorwork.middleware.Middleware):
        def submit(self, job: SubmitJob) -> SubmitJob:
            if job.work.startswith("admin.") and "tenant" not in job.context:
                raise SubmitRefused("admin work needs a tenant")
            return msgspec.structs.replace(job, context={**job.context, "tenant": "acme"})

        async def run(self, ctx: WorkContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
            ctx.log.info("tenant", tenant=ctx.context.get("tenant"))
            return await call_next()

    actorwork.middleware.register(Tenant())       # or Client(..., middleware=[Tenant()])

or by config: ``[jobs] middleware = ["pkg.mod:Tenant"]`` (a class is instantiated with
no arguments, a function without hooks is a factory called with none, any other object
is used as it is). Each role loads the list in its own process, in order, after the
middleware registered there in code: the client, the Scheduler, and every worker,
process and container workers included (their Pool hands the list down).

Hooks, each optional (a middleware defines those it needs; :class:`Middleware` gives
no-op defaults):

* ``submit(job: SubmitJob) -> SubmitJob | None`` — in the client, before the submit is
  sent; returns the submit to send (None: unchanged), e.g. with fields added to its
  ``context``, or raises to refuse it. Any exception refuses the submit as a
  :class:`~actorwork.errors.SubmitRefused` naming the middleware.
* ``dispatch(job: JobSpec) -> None`` — in the Scheduler, once a dispatch is committed.
* ``commit(job: JobView) -> None`` — in the Scheduler, once a job's final state is committed.
* ``async run(ctx: WorkContext, call_next) -> Any`` — in the Worker, around the work;
  returns what ``call_next()`` returned (or another value).

Order: middleware registered globally first, in registration order, then those given
to the component; ``submit`` hooks run in that order, and the first ``run`` hook is the
outermost. A Scheduler's hooks must not block: an exception there is logged and the
job goes on.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import msgspec

from actorwork._importing import import_object
from actorwork._log import get_logger
from actorwork.errors import SubmitRefused
from actorwork.messages import JobSpec, JobView, SubmitJob
from actorwork.work import WorkContext

__all__ = [
    "Middleware",
    "MiddlewareChain",
    "load",
    "name_of",
    "register",
    "registered",
    "unregister",
    "with_context",
]

log = get_logger(__name__)

_registered: list[object] = []


class Middleware:
    """A base with a no-op hook of each kind; override the ones you need."""

    def submit(self, job: SubmitJob) -> SubmitJob | None:
        """The submit to send (None: ``job`` as it is); raise to refuse it."""
        return None

    def dispatch(self, job: JobSpec) -> None:
        """A dispatch of ``job`` to a Pool was committed."""

    def commit(self, job: JobView) -> None:
        """``job`` reached its final state, committed."""

    async def run(self, ctx: WorkContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
        """Run the work (``call_next()``) and return its value."""
        return await call_next()


def name_of(middleware: object) -> str:
    """How errors and logs name ``middleware``."""
    cls = type(middleware)
    return f"{cls.__module__}.{cls.__qualname__}"


def register(middleware: object) -> object:
    """Add ``middleware`` to every client, Scheduler and Worker of this process; returns it."""
    _check(middleware)
    _registered.append(middleware)
    return middleware


def unregister(middleware: object) -> None:
    """Remove a middleware :func:`register` added; nothing if it is not there."""
    if middleware in _registered:
        _registered.remove(middleware)


def registered() -> list[object]:
    """The middleware registered globally, in order."""
    return list(_registered)


def load(paths: Iterable[str]) -> list[object]:
    """Middleware from ``"pkg.mod:Thing"`` paths: a class is instantiated, a function
    without hooks (a factory) called, anything else used as it is.

    ValueError names a path that cannot be imported or made, or an object with no hook.
    """
    loaded = []
    for path in paths:
        thing = import_object(path)
        if inspect.isclass(thing) or (callable(thing) and not _has_hooks(thing)):
            try:
                thing = thing()
            except Exception as exc:
                raise ValueError(
                    f"middleware {path!r} cannot be made with no arguments: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        _check(thing, path)
        loaded.append(thing)
    return loaded


_HOOKS = ("submit", "dispatch", "commit", "run")


def _has_hooks(middleware: object) -> bool:
    return any(callable(getattr(middleware, hook, None)) for hook in _HOOKS)


def _check(middleware: object, path: str | None = None) -> None:
    if not _has_hooks(middleware):
        raise ValueError(
            f"middleware {path or middleware!r} has none of the hooks {', '.join(_HOOKS)}"
        )


class MiddlewareChain:
    """The hooks of an ordered list of middleware, ready to call.

    ``middleware`` are added after the globally registered ones (read now: a
    middleware registered later is not in a chain made before).
    """

    def __init__(
        self, middleware: Sequence[object] = (), *, include_registered: bool = True
    ) -> None:
        items = [*(_registered if include_registered else ()), *middleware]
        for item in items:
            _check(item)
        self.middleware = items
        self._submit = [(m, m.submit) for m in items if callable(getattr(m, "submit", None))]
        self._dispatch = [(m, m.dispatch) for m in items if callable(getattr(m, "dispatch", None))]
        self._commit = [(m, m.commit) for m in items if callable(getattr(m, "commit", None))]
        self._run = [m.run for m in items if callable(getattr(m, "run", None))]

    def __bool__(self) -> bool:
        return bool(self.middleware)

    @property
    def observes(self) -> bool:
        """Whether a dispatch or commit hook is there (the Scheduler looks only then)."""
        return bool(self._dispatch or self._commit)

    def submit(self, job: SubmitJob) -> SubmitJob:
        """``job`` through every submit hook; SubmitRefused names the one that refused."""
        for middleware, hook in self._submit:
            try:
                changed = hook(job)
            except SubmitRefused as exc:
                raise SubmitRefused(
                    f"middleware {name_of(middleware)} refused a submit of work {job.work!r}: {exc}"
                ) from exc
            except Exception as exc:
                raise SubmitRefused(
                    f"middleware {name_of(middleware)} refused a submit of work {job.work!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if changed is not None:
                if not isinstance(changed, SubmitJob):
                    raise SubmitRefused(
                        f"middleware {name_of(middleware)} returned {changed!r} from submit; "
                        "it must return a SubmitJob or None"
                    )
                job = changed
        return job

    def dispatched(self, job: JobSpec) -> None:
        for middleware, hook in self._dispatch:
            _observe(middleware, "dispatch", hook, job)

    def committed(self, job: JobView) -> None:
        for middleware, hook in self._commit:
            _observe(middleware, "commit", hook, job)

    async def run(self, ctx: WorkContext, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()`` wrapped by every run hook, the first outermost."""
        if not self._run:
            return await call()

        def wrap(
            hook: Callable[..., Awaitable[Any]], inner: Callable[[], Awaitable[Any]]
        ) -> Callable[[], Awaitable[Any]]:
            return lambda: hook(ctx, inner)

        for hook in reversed(self._run):
            call = wrap(hook, call)
        return await call()


def _observe(middleware: object, kind: str, hook: Callable[[Any], object], arg: Any) -> None:
    try:
        hook(arg)
    except Exception:
        log.exception("middleware_failed", middleware=name_of(middleware), hook=kind)


def with_context(job: SubmitJob, **fields: str) -> SubmitJob:
    """``job`` with ``fields`` added to its context (a helper for submit hooks)."""
    return msgspec.structs.replace(job, context={**job.context, **fields})
