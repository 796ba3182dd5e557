"""Keep each job's logs apart: structlog events, ``logging`` records, stdout and stderr.

A :class:`JobCapture` collects the :class:`~actorwork.messages.LogLine` s one attempt
writes. It is active in a context (:mod:`contextvars`), so it follows the work
wherever the context goes: into tasks the work starts (asyncio copies the context),
into threads started with ``anyio.to_thread.run_sync`` or ``asyncio.to_thread``
(they copy it too), and nowhere else. Two jobs interleaving on one loop each get
exactly their own lines, in the order written. A plain ``threading.Thread`` does not
copy the context; what it writes is not captured.

How each kind of output reaches the capture, once :func:`install` has run:

* **The job's logger.** :attr:`JobCapture.logger` is a structlog bound logger made
  with :func:`structlog.wrap_logger` and processors of its own, so it needs no global
  configuration (the library never configures structlog). Its events become
  ``LogLine(source="log")``; the event is the text, the other key/values the fields.
* **stdout and stderr.** ``sys.stdout`` and ``sys.stderr`` become proxies. A write
  made while a capture is active goes to it, split into lines; a partial line is held
  until its newline or until the capture ends. Other writes go to the original
  stream, and every other attribute (``encoding``, ``fileno``, ``buffer``...) is the
  original's. Bytes written to ``sys.stdout.buffer`` or to the file descriptor
  bypass the proxy and are not captured.
* **logging records.** Captured when they are *made*, by a log record factory
  chained in front of the previous one (``source="logging"``, the level name in
  lower case, the message plus any formatted traceback, ``fields={"logger": name}``).
  A handler on the root logger would also work, but it would change logging outside
  jobs: ``logging.basicConfig()`` does nothing once the root logger has a handler,
  ``dictConfig`` removes it, and ``logging.lastResort`` stops printing warnings of an
  unconfigured program. A factory leaves the handler tree exactly as it was.
* **The global structlog logger.** With structlog's default configuration,
  ``structlog.get_logger().info(...)`` prints through ``print()`` to the *current*
  ``sys.stdout`` (its default logger keeps the stream it saw at import only to compare
  with it), so the stdout proxy captures the rendered line as ``source="stdout"``.
  A program that configures structlog (the CLI does) should add
  :func:`capture_processor` to its chain: events made inside a capture are then
  copied into it as structured ``log`` lines.

**Debuggers.** What a debugger writes (``breakpoint()`` in a work function, sync or
async, with the inline topology) goes to the terminal, not into the job: the location,
``p``, ``l`` and ``where`` are for the person debugging. What the job's own code
prints, even when run from the debugger's prompt, is still captured.

Console output is not doubled into a job. A line a ``logging`` handler or a
structlog logger renders to a proxy, for a record or event already captured, goes
to the original stream: the capture keeps the structured copy, the console keeps
showing what the program's logging configuration shows.

**Levels.** Records below a logger's effective level are never made, and the root
logger's default level is WARNING, so ``logging.info()`` inside a job would be lost.
:func:`install` lowers the root level to INFO when it is higher, and compensates:
a record made only because of that (below the level its logger would have had) is
captured if a job is active, then hidden from every handler by a filter that
:func:`install` puts on the logger that made it. Nothing appears outside jobs that
did not before, and ``lastResort`` still prints an unconfigured program's warnings.
Loggers given a level of their own keep it: their records are captured from that
level. ``root.setLevel()`` called after :func:`install` wins over the lowering.

**Limits.** A capture keeps at most ``max_lines`` lines: past that it keeps the first
half and the latest ones, and ends with a line saying how many were dropped. A line
longer than ``max_line_length`` characters is cut there and says by how much.
Field values are kept if msgspec can encode them as MessagePack (as a decoded copy,
so later mutation does not show), otherwise as their ``repr()``; a value whose
``repr()`` raises is named by its type. Nothing a job logs can break its capture.
"""

from __future__ import annotations

import bdb
import cmd
import collections
import contextvars
import inspect
import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, TextIO

import msgspec
import structlog
from structlog.typing import FilteringBoundLogger

from actorwork.messages import LogLine

__all__ = ["JobCapture", "active_capture", "capture_processor", "install", "uninstall"]

_active: contextvars.ContextVar[JobCapture | None] = contextvars.ContextVar(
    "actorwork_capture", default=None
)
#: The structlog logger whose last event capture_processor copied, per context: its
#: rendering of that event is console output, not a second line for the job.
_copied_by: contextvars.ContextVar[object] = contextvars.ContextVar(
    "actorwork_capture_copied_by", default=None
)

_encoder = msgspec.msgpack.Encoder()
_BoundLogger = structlog.make_filtering_bound_logger(logging.NOTSET)
_LEVEL_ALIASES = {"warn": "warning", "exception": "error", "fatal": "critical", "msg": "info"}


def active_capture() -> JobCapture | None:
    """The capture active in the current context, or None outside any job."""
    capture = _active.get()
    if capture is None or capture.closed:
        return None
    return capture


class JobCapture:
    """Collects the lines one job writes while it is active in the current context.

    Use one per attempt: ``with capture: ...`` around the work (also around
    ``await``), then read :attr:`lines`. Entering activates it in the current context
    and exiting restores the capture that was active before, so captures nest; enter
    and exit it in one task (others inherit it through their copied context). When
    the outermost ``with`` ends, held partial lines are flushed and the capture is
    closed: what a lingering thread writes afterwards goes to the original streams.

    ``on_line`` is called with every line as it is recorded (also lines later dropped
    by ``max_lines``), outside any capture, so what it prints is not captured.
    ``echo`` also writes every line to the original stdout or stderr, for
    development.
    """

    def __init__(
        self,
        *,
        job_id: str,
        work: str,
        on_line: Callable[[LogLine], None] | None = None,
        max_lines: int = 10_000,
        max_line_length: int = 16_384,
        echo: bool = False,
    ) -> None:
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, got {max_lines!r}")
        if max_line_length < 1:
            raise ValueError(f"max_line_length must be at least 1, got {max_line_length!r}")
        self.job_id = job_id
        self.work = work
        self.max_lines = max_lines
        self.max_line_length = max_line_length
        self.echo = echo
        #: True once the outermost ``with`` has ended; a closed capture records nothing.
        self.closed = False
        #: How many lines were recorded in all, kept or not.
        self.count = 0
        self._on_line = on_line
        self._lock = threading.Lock()
        # Invariant: _head holds the first lines (at most _head_size); _tail the latest
        # after them, with one slot more than shown so the "dropped" line fits.
        self._head_size = (max_lines - 1) // 2
        self._head: list[LogLine] = []
        self._tail: collections.deque[LogLine] = collections.deque(
            maxlen=max_lines - self._head_size
        )
        self._pending: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._pending_lock = threading.Lock()
        self._tokens: list[contextvars.Token[JobCapture | None]] = []
        #: A structlog bound logger (bound with ``job_id`` and ``work``) whose events
        #: become ``log`` lines of this capture, whatever structlog's configuration.
        self.logger: FilteringBoundLogger = structlog.wrap_logger(
            _CaptureLogger(self),
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
            ],
            wrapper_class=_BoundLogger,
            context_class=dict,
            job_id=job_id,
            work=work,
        )

    @property
    def lines(self) -> list[LogLine]:
        """The lines in order; past ``max_lines``, the first and the last ones and a
        final line saying how many were dropped in between."""
        with self._lock:
            if self.count <= self.max_lines:
                return [*self._head, *self._tail]
            latest = list(self._tail)
            dropped = self.count - len(self._head) - len(latest) + 1
        tail = latest[1:]
        note = LogLine(
            time=latest[-1].time,
            source="log",
            level="warning",
            text=f"{dropped} lines dropped (kept the first {len(self._head)} "
            f"and the last {len(tail)})",
            fields={"dropped_lines": dropped},
        )
        return [*self._head, *tail, note]

    @property
    def dropped(self) -> int:
        """How many lines :attr:`lines` leaves out."""
        return self.count - self.max_lines + 1 if self.count > self.max_lines else 0

    def add(
        self,
        source: str,
        level: str,
        text: str,
        fields: MutableMapping[str, Any] | None = None,
        *,
        when: float | None = None,
    ) -> None:
        """Record one line; ``fields`` are made safe to encode, ``text`` is cut to size."""
        if self.closed:
            return
        safe = {str(key): _safe_value(value) for key, value in (fields or {}).items()}
        if len(text) > self.max_line_length:
            safe["truncated_chars"] = len(text) - self.max_line_length
            text = text[: self.max_line_length]
        line = LogLine(
            time=time.time() if when is None else when,
            source=source,
            level=level,
            text=text,
            fields=safe,
        )
        with self._lock:
            self.count += 1
            if len(self._head) < self._head_size:
                self._head.append(line)
            else:
                self._tail.append(line)
        if self.echo:
            _echo(self, line)
        if self._on_line is not None:
            token = _active.set(None)
            try:
                self._on_line(line)
            finally:
                _active.reset(token)

    def write(self, stream: str, text: str) -> None:
        """Record ``text`` written to ``stream`` (``stdout`` or ``stderr``), line by line."""
        *complete, rest = text.split("\n")
        with self._pending_lock:
            pending = self._pending[stream]
            for piece in complete:
                pending.append(piece)
                self._emit_pending(stream)
            if rest:
                pending.append(rest)
                if sum(map(len, pending)) > self.max_line_length:
                    # A line without end (a progress bar redrawn with "\r") must not
                    # grow without bound: it is recorded now, cut to size.
                    self._emit_pending(stream)

    def flush(self) -> None:
        """Record the partial lines held for stdout and stderr."""
        with self._pending_lock:
            for stream, pending in self._pending.items():
                if pending:
                    self._emit_pending(stream)

    def _emit_pending(self, stream: str) -> None:
        pending = self._pending[stream]
        text = "".join(pending).removesuffix("\r")
        pending.clear()
        self.add(stream, "error" if stream == "stderr" else "info", text)

    def __enter__(self) -> JobCapture:
        self.closed = False
        self._tokens.append(_active.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _active.reset(self._tokens.pop())
        if not self._tokens:
            self.flush()
            self.closed = True

    def __repr__(self) -> str:
        return f"<JobCapture job_id={self.job_id!r} work={self.work!r} lines={self.count}>"


class _CaptureLogger:
    """The logger structlog wraps for :attr:`JobCapture.logger`: it records events.

    It holds its capture weakly: the capture holds the logger, and a cycle per job
    would leave every capture to the garbage collector instead of freeing it at once.
    """

    def __init__(self, capture: JobCapture) -> None:
        self._capture = weakref.ref(capture)

    def msg(self, **event: Any) -> None:
        capture = self._capture()
        if capture is not None:
            _add_event(capture, event, "info")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def capture_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor copying events made inside an active capture into it.

    For programs that configure structlog (only the CLI does, in this project). Put it
    after ``add_log_level`` (and ``merge_contextvars``) and before the timestamper and
    the renderer. The event goes on unchanged to the rest of the chain.
    """
    capture = active_capture()
    if capture is not None:
        _add_event(capture, dict(event_dict), method_name)
        _copied_by.set(logger)
    return event_dict


def _add_event(capture: JobCapture, event: dict[str, Any], method_name: str) -> None:
    level = str(event.pop("level", None) or method_name).lower()
    text = _safe_str(event.pop("event", ""))
    exc_info = event.pop("exc_info", None)
    formatted = _format_exc_info(exc_info)
    if formatted:
        text = f"{text}\n{formatted}"
    exception = event.pop("exception", None)
    if isinstance(exception, str) and exception:  # format_exc_info ran upstream
        text = f"{text}\n{exception}"
    capture.add("log", _LEVEL_ALIASES.get(level, level), text, event)


def _format_exc_info(exc_info: Any) -> str:
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[1] is None:
        return ""
    try:
        return "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    except Exception as exc:  # noqa: BLE001 - a broken exception must not break the capture
        return f"(traceback could not be formatted: {type(exc).__name__})"


def _safe_value(value: Any) -> Any:
    try:
        return msgspec.msgpack.decode(_encoder.encode(value))
    except Exception:  # noqa: BLE001 - anything unencodable is kept as its repr
        return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a hostile repr must not break the capture
        return f"<{type(value).__name__} object; repr() raised {type(exc).__name__}>"


def _safe_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not break the capture
        return _safe_repr(value)


def _echo(capture: JobCapture, line: LogLine) -> None:
    stream = _original("stdout" if line.source == "stdout" else "stderr")
    if stream is None:
        return
    if line.source in ("stdout", "stderr"):
        text = line.text
    else:
        fields = " ".join(f"{key}={value!r}" for key, value in line.fields.items())
        text = f"[{capture.work} {capture.job_id}] {line.level}: {line.text} {fields}".rstrip()
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):  # a closed console must not fail the job
        pass


# --- process-wide installation -----------------------------------------------------------


class _StreamProxy:
    """Stands in for ``sys.stdout`` or ``sys.stderr``: sends a job's writes to its capture."""

    def __init__(self, name: str, original: TextIO) -> None:
        self.name = name
        self.original = original
        #: False once uninstalled: a proxy someone kept a reference to only forwards.
        self.capturing = True

    def write(self, text: str) -> int:
        """Write to the active capture, or to the original stream outside any job."""
        capture = active_capture() if self.capturing else None
        if capture is None or _already_captured():
            return self.original.write(text)
        capture.write(self.name, text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines`` as :meth:`write` does."""
        for text in lines:
            self.write(text)

    def flush(self) -> None:
        """Flush the original stream (a capture holds partial lines until it ends)."""
        self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)

    def __repr__(self) -> str:
        return f"<capture proxy for {self.original!r}>"


def _already_captured() -> bool:
    """Whether the code writing to a proxy should reach the console, not the job.

    That is a ``logging`` handler or structlog logger rendering a record or event the
    job already has, and a debugger (``breakpoint()``, ``pdb.set_trace()``) talking to
    the person at the terminal: its location lines, ``p`` and ``where`` belong there.
    """
    frame = inspect.currentframe()
    try:
        # Two frames up from here is the caller of _StreamProxy.write (print() adds none).
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        writer = None if caller is None else caller.f_locals.get("self")
    finally:
        del frame  # this frame in its own local is a reference cycle on every write
    if writer is None:
        return False
    if isinstance(writer, logging.Handler):
        return _state.factory is not None
    if isinstance(writer, bdb.Bdb | cmd.Cmd):
        return True
    return writer is _copied_by.get()


class _LevelGuard(logging.Filter):
    """Hides, from one logger's handlers, records made only because the root was lowered."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= _visible_level(self.logger)


class _State:
    """What :func:`install` changed, so that :func:`uninstall` can put it back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proxies: list[_StreamProxy] = []
        self.factory: Callable[..., logging.LogRecord] | None = None
        self.previous_factory: Callable[..., logging.LogRecord] = logging.LogRecord
        #: The root level before install() lowered it to INFO, or None if not lowered.
        self.root_level: int | None = None
        self.guards: dict[logging.Logger, _LevelGuard] = {}


_state = _State()


def _original(name: str) -> TextIO | None:
    for proxy in _state.proxies:
        if proxy.name == name:
            return proxy.original
    stream: TextIO | None = getattr(sys, name)
    return stream.original if isinstance(stream, _StreamProxy) else stream


def _visible_level(logger: logging.Logger) -> int:
    """The effective level ``logger`` would have if install() had not lowered the root."""
    node: logging.Logger | None = logger
    while node is not None:
        if node.level:
            if node.parent is None and _state.root_level is not None and node.level == logging.INFO:
                return _state.root_level
            return node.level
        node = node.parent
    return logging.NOTSET


def install() -> None:
    """Route output made inside active captures to them; idempotent, process-wide.

    Replaces ``sys.stdout`` and ``sys.stderr`` with proxies, chains a log record
    factory, and lowers the root logger's level to INFO if it is higher (see the
    module docstring). Call it once per process, before running work.
    """
    with _state.lock:
        # Streams are checked on every call: a test runner or an application may have
        # replaced sys.stdout since the last one, and the new stream needs a proxy too.
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is None or isinstance(stream, _StreamProxy):
                continue
            proxy = _StreamProxy(name, stream)
            setattr(sys, name, proxy)
            _state.proxies.append(proxy)
        if _state.factory is not None:
            return
        _state.previous_factory = logging.getLogRecordFactory()
        _state.factory = _make_record
        logging.setLogRecordFactory(_make_record)
        root = logging.getLogger()
        if root.level > logging.INFO:
            _state.root_level = root.level
            root.setLevel(logging.INFO)


def uninstall() -> None:
    """Undo :func:`install`; idempotent.

    What someone else replaced since (``sys.stdout``, the record factory, the root
    level) is left as they set it; the pieces of ours still referenced then only
    forward.
    """
    with _state.lock:
        if _state.factory is None:
            return
        for proxy in _state.proxies:
            proxy.capturing = False
            if getattr(sys, proxy.name) is proxy:
                setattr(sys, proxy.name, proxy.original)
        _state.proxies.clear()
        if logging.getLogRecordFactory() is _make_record:
            logging.setLogRecordFactory(_state.previous_factory)
        _state.factory = None
        root = logging.getLogger()
        if _state.root_level is not None and root.level == logging.INFO:
            root.setLevel(_state.root_level)
        _state.root_level = None
        for logger, guard in _state.guards.items():
            logger.removeFilter(guard)
        _state.guards.clear()


def _make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _state.previous_factory(*args, **kwargs)
    if _state.factory is None or record.name is None:  # uninstalled, or makeLogRecord()
        return record
    capture = active_capture()
    if capture is not None:
        _add_record(capture, record)
    if _state.root_level is not None and record.levelno < _state.root_level:
        logger = logging.getLogger(record.name)
        if logger not in _state.guards:
            with _state.lock:
                guard = _state.guards.setdefault(logger, _LevelGuard(logger))
            logger.addFilter(guard)
    return record


def _add_record(capture: JobCapture, record: logging.LogRecord) -> None:
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is the job's line, not our error
        text = f"{_safe_str(record.msg)} % {_safe_repr(record.args)}"
    formatted = _format_exc_info(record.exc_info)
    if formatted:
        text = f"{text}\n{formatted}"
    if record.stack_info:
        text = f"{text}\n{record.stack_info}"
    level = str(record.levelname).lower()
    capture.add("logging", level, text, {"logger": record.name}, when=record.created)
