"""The library's loggers: quiet unless the application asks to hear them.

Every module logs through ``log = get_logger(__name__)``: short snake_case events with
key/value fields, as with structlog. Where an event goes is the application's choice,
decided at each event (not at import, so configuring logging late still counts):

* **The application configured structlog** (:func:`structlog.is_configured`, as the
  ``actorwork`` command does): the event goes through
  ``structlog.get_logger(name)``, so the application's processors and renderer
  apply, and events made inside a job reach its capture through
  :func:`~actorwork.capture.capture_processor` when the chain has it.
* **Otherwise** the event becomes a standard :mod:`logging` record of the logger
  named after the module (``actorwork.runtime.system``...), its message the event
  and then ``key=value`` pairs (values as their ``repr``). Nothing is configured
  here, so Python's defaults decide: debug and info are silent, warnings and errors
  reach stderr through :data:`logging.lastResort` until the application sets up
  handlers (``logging.basicConfig(level=logging.DEBUG)`` shows everything, and
  ``logging.getLogger("actorwork").setLevel(...)`` tunes the library alone). A record
  made inside a job is captured as one of the job's ``logging`` lines, as the
  job's own records are.

structlog's built-in defaults print every event, debug included, on stdout: a library
must not do that to the program that imports it, hence the standard logging path.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

import structlog

__all__ = ["LibraryLogger", "get_logger"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


class LibraryLogger:
    """A structlog-style logger (``info(event, **fields)``, ``bind``) of one module.

    It holds only its name and bound fields; each event picks its destination as the
    module docstring says. ``bind`` returns a new logger and leaves this one as it is.
    """

    __slots__ = ("_bound", "_bound_for", "_context", "_name", "_stdlib")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context: dict[str, Any] = context or {}
        #: structlog's bound logger for this name and context, and the configuration it
        #: was assembled from: assembled again when that changes. structlog's own lazy
        #: proxy would assemble one per event (about 15 us for a filtered debug event).
        self._bound: Any = None
        self._bound_for: dict[str, Any] = {}
        #: The stdlib logger of this name (``logging.getLogger`` takes a lock per call).
        self._stdlib = logging.getLogger(name)

    @property
    def name(self) -> str:
        """The logger's name, also the :mod:`logging` logger it writes to."""
        return self._name

    def bind(self, **fields: Any) -> LibraryLogger:
        """A logger adding ``fields`` to every event."""
        return LibraryLogger(self._name, {**self._context, **fields})

    def new(self, **fields: Any) -> LibraryLogger:
        """A logger with only ``fields`` bound."""
        return LibraryLogger(self._name, dict(fields))

    def unbind(self, *keys: str) -> LibraryLogger:
        """A logger without ``keys``; KeyError names one that is not bound."""
        for key in keys:
            if key not in self._context:
                raise KeyError(f"{key!r} is not bound to logger {self._name!r}")
        return self.try_unbind(*keys)

    def try_unbind(self, *keys: str) -> LibraryLogger:
        """A logger without those of ``keys`` that are bound."""
        return LibraryLogger(self._name, {k: v for k, v in self._context.items() if k not in keys})

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        """Log ``event`` at debug level."""
        self._emit("debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        """Log ``event`` at info level."""
        self._emit("info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        """Log ``event`` at warning level."""
        self._emit("warning", event, args, fields)

    warn = warning

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        """Log ``event`` at error level."""
        self._emit("error", event, args, fields)

    def exception(self, event: str, *args: Any, **fields: Any) -> None:
        """Log ``event`` at error level with the exception being handled."""
        fields.setdefault("exc_info", True)
        self._emit("exception", event, args, fields)

    def critical(self, event: str, *args: Any, **fields: Any) -> None:
        """Log ``event`` at critical level."""
        self._emit("critical", event, args, fields)

    def _emit(self, method: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        if structlog.is_configured():
            config = structlog.get_config()
            if not _assembled_from(config, self._bound_for):
                self._bound = structlog.get_logger(self._name, **self._context).bind()
                self._bound_for = config
            try:
                getattr(self._bound, method)(event, *args, **fields)
            except (OSError, ValueError):
                # The application's output is gone (a closed stream, a full disk): a log
                # call must never fail the code that made it, as logging's handlers do.
                _output_failed(self._name, event)
            return
        stdlib = self._stdlib
        level = _LEVELS[method]
        if not stdlib.isEnabledFor(level):
            return
        exc_info = fields.pop("exc_info", None)
        stack_info = bool(fields.pop("stack_info", False))
        merged = {**structlog.contextvars.get_contextvars(), **self._context, **fields}
        stdlib.log(
            level,
            _render(event % args if args else event, merged),
            exc_info=exc_info,
            stack_info=stack_info,
            stacklevel=3,  # the record names the module's line, not this one
        )


def _assembled_from(config: dict[str, Any], bound_for: dict[str, Any]) -> bool:
    """Whether a bound logger assembled under ``bound_for`` is still what ``config``
    would assemble: the same objects (an equal new processor list is still new, and a
    list changed in place is followed, since loggers hold it by reference)."""
    return (
        config["processors"] is bound_for.get("processors")
        and config["wrapper_class"] is bound_for.get("wrapper_class")
        and config["logger_factory"] is bound_for.get("logger_factory")
        and config["context_class"] is bound_for.get("context_class")
    )


def _output_failed(name: str, event: str) -> None:
    """Say once on the interpreter's own stderr that an event could not be written."""
    if name in _failed_outputs:
        return
    _failed_outputs.add(name)
    with contextlib.suppress(OSError, ValueError):
        print(f"actorwork: logger {name!r} could not write {event!r}", file=sys.__stderr__)


_failed_outputs: set[str] = set()


def _render(event: str, fields: dict[str, Any]) -> str:
    """``event key=value ...``, each value as its ``repr``: a record's message."""
    if not fields:
        return event
    pairs = " ".join(f"{key}={_repr(value)}" for key, value in fields.items())
    return f"{event} {pairs}"


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a hostile repr must not fail the event
        return f"<{type(value).__name__} object; repr() raised {type(exc).__name__}>"


def get_logger(name: str) -> LibraryLogger:
    """The logger of module ``name``: ``log = get_logger(__name__)``."""
    return LibraryLogger(name)
