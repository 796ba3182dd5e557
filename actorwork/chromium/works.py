"""The Chromium works, and the browsers a process shares between their jobs.

``chromium.pdf`` and ``chromium.png`` render a page and attach the bytes to the job's
result as an artifact; they return a :class:`~actorwork.chromium.requests.Rendered`.

**Which browser.** The jobs of one event loop share ``instances`` browsers, started at
the first job that needs one, each job taking the least busy. Settings
(:func:`current_settings`) come from :func:`configure` if it was called, otherwise
from the ``[chromium]`` table of the configuration the process's pools run with,
however it was chosen (``load_config(FILE)``, ``actorwork --config FILE``, a dict);
without running pools, from the configuration it finds (``$ACTORWORK_CONFIG``,
``./actorwork.toml``, and ``ACTORWORK_CHROMIUM__*`` variables). A browser found
disconnected (a crash, a killed container) is started again for the next job.

**When browsers stop.** With ``keep = false`` a browser stops as soon as no job uses
it. With ``keep = true`` (the default) it waits for the next job, and stops at
:func:`close_browsers`, or when its event loop ends at the latest: an async generator
left suspended on the loop is closed by the loop's shutdown (``asyncio.run`` and
``anyio.run`` do that), and stops them while the loop still runs. A ``thread`` pool
runs each async job on a loop of its own, so there a browser lives for one job. If
the process dies instead, local Chromium dies with the thread that launched it and a
container with the pipe to this process; :func:`~actorwork.chromium.launch.kill_all_now`
runs at interpreter exit for anything left.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import anyio

from actorwork.chromium.browser import Chromium
from actorwork.chromium.requests import PdfRequest, PngRequest, Rendered
from actorwork.config import ChromiumSettings, current_config
from actorwork.work import WorkContext, work

__all__ = [
    "Browsers",
    "browsers",
    "close_browsers",
    "configure",
    "current_settings",
    "render_pdf",
    "render_png",
]

_settings: ChromiumSettings | None = None
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Browsers] = (
    weakref.WeakKeyDictionary()
)


class Browsers:
    """``settings.instances`` browsers shared by the renders of one event loop."""

    def __init__(self, settings: ChromiumSettings) -> None:
        self.settings = settings
        self._slots: list[Chromium | None] = [None] * settings.instances
        self._users = [0] * settings.instances
        self._locks = [anyio.Lock() for _ in range(settings.instances)]
        self._sentinel: AsyncGenerator[None, None] | None = None

    @property
    def running(self) -> int:
        """How many of the browsers are running."""
        return sum(1 for chromium in self._slots if chromium is not None)

    async def open_contexts(self) -> int:
        """Render contexts open in the running browsers (0 when no render runs)."""
        return sum([await c.open_contexts() for c in self._slots if c is not None])

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Chromium]:
        """The least busy browser, started if it is not running."""
        if self._sentinel is None:  # first use: close with the event loop at the latest
            self._sentinel = _closing_at_loop_end(self)
            await self._sentinel.asend(None)
        index = min(range(len(self._slots)), key=self._users.__getitem__)
        self._users[index] += 1
        try:
            yield await self._get(index)
        finally:
            self._users[index] -= 1
            if not self.settings.keep and self._users[index] == 0:
                await self._stop(index)

    async def _get(self, index: int) -> Chromium:
        async with self._locks[index]:
            chromium = self._slots[index]
            if chromium is not None and not chromium.alive:
                self._slots[index] = None
                await chromium.aclose()
                chromium = None
            if chromium is None:
                chromium = Chromium(self.settings)
                await chromium.start()
                self._slots[index] = chromium
            return chromium

    async def _stop(self, index: int) -> None:
        with anyio.CancelScope(shield=True):
            async with self._locks[index]:
                chromium, self._slots[index] = self._slots[index], None
                if chromium is not None:
                    await chromium.aclose()

    async def aclose(self) -> None:
        """Stop every browser (renders still running fail). Idempotent."""
        for index in range(len(self._slots)):
            await self._stop(index)


async def _closing_at_loop_end(found: Browsers) -> AsyncGenerator[None, None]:
    """Stays suspended until the event loop shuts its async generators down (the end of
    ``asyncio.run`` and ``anyio.run``), then stops ``found``'s browsers, loop running."""
    try:
        yield
    finally:
        await found.aclose()


def configure(settings: ChromiumSettings | None) -> None:
    """Use ``settings`` for the browsers started from now on (None: the config file's).

    Browsers already running keep their settings until :func:`close_browsers`.
    """
    global _settings  # noqa: PLW0603 - process-wide, like the work registry
    _settings = settings


def current_settings() -> ChromiumSettings:
    """The settings of the browsers started now (see the module docstring)."""
    return _settings or current_config().chromium


def browsers() -> Browsers:
    """The browsers of the running event loop (made at the first call)."""
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = Browsers(current_settings())
    return found


async def close_browsers() -> None:
    """Stop the browsers of the running event loop; the next job starts new ones."""
    found = _by_loop.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.aclose()


@work(name="chromium.pdf", retries=2, timeout=180)
async def render_pdf(ctx: WorkContext, request: PdfRequest) -> Rendered:
    """Print a page (a URL or an HTML document) to PDF; the PDF is the job's artifact."""
    return await _render(ctx, request, "application/pdf")


@work(name="chromium.png", retries=2, timeout=180)
async def render_png(ctx: WorkContext, request: PngRequest) -> Rendered:
    """Screenshot a page (a URL or an HTML document) as PNG; the PNG is the artifact."""
    return await _render(ctx, request, "image/png")


async def _render(ctx: WorkContext, request: PdfRequest | PngRequest, media_type: str) -> Rendered:
    ctx.log.info("render", page=request.where, media_type=media_type)
    async with browsers().use() as chromium:
        ctx.progress(None, "loading")
        if isinstance(request, PdfRequest):
            data = await chromium.pdf(request, log=ctx.log)
        else:
            data = await chromium.png(request, log=ctx.log)
    ctx.add_artifact(request.name, data, media_type=media_type)
    ctx.progress(1.0, "rendered")
    return Rendered(
        artifact=request.name, media_type=media_type, size=len(data), page=request.where
    )
