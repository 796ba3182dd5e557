"""One Chromium, driven over DevTools with pyppeteer: pages in, PDFs and PNGs out.

::

    async with Chromium(ChromiumSettings(mode="docker")) as chromium:
        pdf = await chromium.pdf(PdfRequest(html="<h1>Hi</h1>"), log=ctx.log)

Every render gets a fresh incognito browser context (no cookies or storage shared
between renders) that is closed when the render ends, however it ends: finished,
failed, or cancelled by a job timeout. The browser itself lives as long as the
:class:`Chromium` (see :mod:`actorwork.chromium.launch` for where it runs).

pyppeteer 2.0 predates the Chromium 156 we drive. What differs and how it is handled:

* ``pyppeteer.connect`` passes ``loop=`` to websockets 10, which warns
  (``DeprecationWarning: remove loop argument``) when the connection is made and again
  when its socket opens. We build the connection ourselves (the same three steps as
  ``pyppeteer.connect``), ignore that one warning around its synchronous constructor,
  and hand it, before its receive task first runs, the same WebSocket ``connect``
  without ``loop=`` (``Connection._ws``: private, hence pyppeteer pinned below 3).
* ``pyppeteer.launch`` registers atexit and signal handlers that fail once its loop is
  closed and leaves a ``subprocess.Popen`` that warns; we launch Chromium ourselves
  and only ever *connect*.
* A failed WebSocket handshake makes pyppeteer's ``send`` wait forever; connecting is
  always bounded by ``start_timeout``, and only to an endpoint already seen answering.
* pyppeteer breaks when a call it is waiting on is cancelled (see :class:`_Steps`):
  every call is shielded, so a job's timeout never cancels pyppeteer's own futures.

Checked on Chromium 156: new incognito contexts and pages, ``setContent``, exposed
functions, console and page-error events, ``Page.printToPDF`` and full-page
screenshots work as pyppeteer sends them.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Self

import anyio
import anyio.abc
from anyio.abc import AsyncResource

from actorwork.chromium.launch import Launcher, launcher_for, shielded
from actorwork.chromium.requests import PageRequest, PdfRequest, PngRequest
from actorwork.config import ChromiumSettings
from actorwork.errors import ChromiumError, PageNotReady

__all__ = ["READY_FUNCTION", "Chromium"]

#: The function a page calls to say it is ready to be printed.
READY_FUNCTION = "actorworkReady"

# How the page is told to report its load; resolves at once if it has loaded already.
_LOADED = """() => new Promise(resolve => document.readyState === 'complete'
    ? resolve(true) : window.addEventListener('load', () => resolve(true)))"""

_CONTEXT_TIMEOUT = 30.0  # seconds to open or close a render's browser context

_LEVELS = {"error": "error", "assert": "error", "warning": "warning", "warn": "warning"}


class Chromium(AsyncResource):
    """One browser (a local process, a container or an endpoint) and renders in it.

    An async context manager; :meth:`aclose` is idempotent and leaves nothing
    running that :meth:`start` started. Renders may run concurrently.
    """

    def __init__(
        self, settings: ChromiumSettings | None = None, *, launcher: Launcher | None = None
    ) -> None:
        self.settings = settings or ChromiumSettings()
        self.launcher = launcher or launcher_for(self.settings)
        self._browser: Any = None
        self._connection: Any = None
        self._disconnected = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    @property
    def alive(self) -> bool:
        """Started, and the DevTools connection has not dropped."""
        return self._browser is not None and not self._disconnected

    async def start(self) -> None:
        """Launch or reach the browser and connect; ChromiumError says what failed."""
        if self._browser is not None:
            return
        timeout = self.settings.start_timeout
        url = await self.launcher.start(timeout)
        try:
            with anyio.fail_after(timeout):
                self._browser, self._connection = await _connect(url)
        except BaseException as exc:
            await shielded(self.launcher.aclose())
            if isinstance(exc, TimeoutError | OSError):
                raise ChromiumError(
                    f"{self.launcher.description}: no DevTools connection to {url} ({exc!r})"
                ) from exc
            raise
        self._disconnected = False
        self._browser.on("disconnected", self._on_disconnected)

    def _on_disconnected(self) -> None:
        self._disconnected = True

    async def aclose(self) -> None:
        """Disconnect, then stop the browser if this object started it. Idempotent."""
        browser, self._browser, self._connection = self._browser, None, None
        if browser is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await _quietly(browser.disconnect())
        await shielded(self.launcher.aclose())

    async def new_page(self) -> Any:
        """A blank pyppeteer page in the browser's default context, to drive directly
        (tests and benchmarks of pages); closed with the browser."""
        if not self.alive:
            raise ChromiumError(f"{self.launcher.description or 'chromium'} is not running")
        return await self._browser.newPage()

    async def open_contexts(self) -> int:
        """How many render contexts the browser holds open (0 between renders)."""
        if self._browser is None:
            return 0
        reply = await self._connection.send("Target.getBrowserContexts")
        return len(reply.get("browserContextIds", []))

    async def pdf(self, request: PdfRequest, *, log: Any = None) -> bytes:
        """``request``'s page printed to PDF."""
        options = request.pdf_options()
        return await self._render(request, log, lambda page: page.pdf(options), "print to PDF")

    async def png(self, request: PngRequest, *, log: Any = None) -> bytes:
        """``request``'s page as a PNG screenshot."""
        options = {
            "type": "png",
            "fullPage": request.full_page,
            "omitBackground": request.omit_background,
        }
        return await self._render(
            request, log, lambda page: page.screenshot(options), "take a screenshot"
        )

    async def _render(
        self, request: PageRequest, log: Any, output: Callable[[Any], Awaitable[Any]], what: str
    ) -> bytes:
        """Load ``request``'s page in a fresh incognito context, wait until it is ready,
        and return ``output(page)``; the context is closed however this ends.

        Console messages, page errors and failed requests go to ``log`` (a structlog
        logger, e.g. the job's ``ctx.log``) as they happen.
        """
        if not self.alive:
            raise ChromiumError(f"{self.launcher.description or 'chromium'} is not running")
        # The render's pyppeteer calls are tasks of this group: the render ends only once
        # they have, and what the render raised is raised as it is, not as a group.
        failure: BaseException | None = None
        rendered = b""
        async with anyio.create_task_group() as group:
            try:
                rendered = await self._render_steps(_Steps(group), request, log, output, what)
            except BaseException as exc:  # noqa: BLE001 - raised again below, unchanged
                failure = exc
        if failure is not None:
            raise failure
        return rendered

    async def _render_steps(
        self,
        steps: _Steps,
        request: PageRequest,
        log: Any,
        output: Callable[[Any], Awaitable[Any]],
        what: str,
    ) -> bytes:
        # Opened and closed whatever the caller's cancellation: a context opened while
        # the job times out would otherwise stay open in the browser.
        with anyio.CancelScope(shield=True), anyio.fail_after(_CONTEXT_TIMEOUT):
            context = await steps(self._browser.createIncognitoBrowserContext(), "open a context")
        try:
            page = await steps(context.newPage(), "open a page")
            if log is not None:
                _forward_events(page, log)
            ready = anyio.Event()
            await steps(page.exposeFunction(READY_FUNCTION, lambda *_: ready.set()), "expose")
            viewport = {"width": request.width, "height": request.height}
            await steps(page.setViewport(viewport), "set the viewport")
            await _load(steps, page, request)
            if request.wait_for_ready:
                with anyio.move_on_after(request.ready_timeout):
                    await ready.wait()
                if not ready.is_set():
                    raise PageNotReady(
                        f"page {request.where} did not call window.{READY_FUNCTION}() "
                        f"within its ready_timeout of {request.ready_timeout} s"
                    )
            return bytes(await steps(output(page), what))
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CONTEXT_TIMEOUT):
                await steps.settle()
                await _quietly(steps(context.close(), "close the context"))


class _Steps:
    """Awaits pyppeteer calls one after another, shielded from the caller's cancellation.

    pyppeteer sets results on its reply futures without checking whether they were
    cancelled: a cancelled one (a job's timeout while it waits) makes its receive task
    die with InvalidStateError, and every later call on that browser waits forever.
    So each call runs as a task of the render's task group, shielded, which our
    cancellation does not reach: the caller stops waiting, the call goes on to its end;
    :meth:`settle` waits for an abandoned one before the context is closed under it,
    and the group waits for every call before the render returns.
    """

    def __init__(self, group: anyio.abc.TaskGroup) -> None:
        self._group = group
        self._running: anyio.Event | None = None

    async def __call__(self, call: Awaitable[Any], what: str) -> Any:
        from pyppeteer.errors import PyppeteerError  # type: ignore[import-untyped]

        done = anyio.Event()
        outcome: list[tuple[bool, Any]] = []

        async def run() -> None:
            with anyio.CancelScope(shield=True):
                try:
                    outcome.append((True, await call))
                except Exception as exc:  # noqa: BLE001 - handed to the caller below
                    outcome.append((False, exc))
                finally:
                    done.set()

        self._running = done
        self._group.start_soon(run)
        await done.wait()
        succeeded, value = outcome[0]
        if succeeded:
            return value
        if isinstance(value, PyppeteerError):
            raise ChromiumError(f"chromium could not {what}: {value}") from value
        raise value

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` seconds) for an abandoned call to end."""
        running = self._running
        if running is not None and not running.is_set():
            with anyio.move_on_after(timeout):
                await running.wait()


async def _connect(url: str) -> tuple[Any, Any]:
    """A pyppeteer Browser on the DevTools WebSocket ``url`` and its connection."""
    from pyppeteer.browser import Browser  # type: ignore[import-untyped]
    from pyppeteer.connection import Connection  # type: ignore[import-untyped]
    from websockets.legacy.client import connect

    with warnings.catch_warnings():
        # websockets 10 deprecates the loop argument that pyppeteer 2.0 always passes.
        warnings.filterwarnings("ignore", "remove loop argument", DeprecationWarning)
        connection = Connection(url, asyncio.get_running_loop(), 0)
    # The protocol object made when the socket opens would warn again, in pyppeteer's
    # receive task: give that task (it has not run yet) the same WebSocket without loop=.
    connection._ws = connect(  # noqa: SLF001 - the workaround of the module doc
        url, max_size=None, ping_interval=None, ping_timeout=None
    )
    try:
        contexts = await connection.send("Target.getBrowserContexts")
        browser = await Browser.create(
            connection,
            contexts.get("browserContextIds", []),
            False,  # ignoreHTTPSErrors
            None,  # no default viewport: each render sets its own
            None,  # no process: ours is the launcher's
            lambda: connection.send("Browser.close"),
        )
    except BaseException:
        await shielded(connection.dispose())
        raise
    return browser, connection


async def _load(steps: _Steps, page: Any, request: PageRequest) -> None:
    what = f"load page {request.where}"
    if request.url:
        options = {"waitUntil": request.wait_until, "timeout": request.load_timeout * 1000}
        await steps(page.goto(request.url, options), what)
        return
    try:
        with anyio.fail_after(request.load_timeout):
            await steps(page.setContent(request.html), what)
            await steps(page.evaluate(_LOADED), what)
    except TimeoutError:
        raise ChromiumError(
            f"chromium could not {what} within its load_timeout of {request.load_timeout} s"
        ) from None


async def _quietly(step: Any) -> None:
    """Await a clean-up step whose failure (a browser already gone) changes nothing."""
    try:
        await step
    except Exception:  # noqa: BLE001 - clean-up of a page whose browser may be gone
        return


def _forward_events(page: Any, log: Any) -> None:
    def console(message: Any) -> None:
        level = _LEVELS.get(message.type, "info")
        getattr(log, level)("console", type=message.type, text=message.text)

    def page_error(error: Any) -> None:
        log.error("page_error", error=str(error))

    def request_failed(request: Any) -> None:
        failure = request.failure() or {}
        log.warning("request_failed", url=request.url, reason=failure.get("errorText", ""))

    page.on("console", console)
    page.on("pageerror", page_error)
    page.on("requestfailed", request_failed)
