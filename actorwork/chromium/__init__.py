"""Render web pages to PDF and PNG in headless Chromium, as actorwork jobs.

Put ``"actorwork.chromium"`` in ``[jobs] modules`` and submit::

    from actorwork.chromium import PdfRequest

    handle = await jobs.submit("chromium.pdf", PdfRequest(html=page, wait_for_ready=True))
    rendered = await handle.result()           # Rendered(artifact="page.pdf", size=...)
    pdf = (await handle.view()).result.artifacts[0].data

The page may say when it is ready by calling ``window.actorworkReady()``; without the
call within ``ready_timeout`` the job fails with
:class:`~actorwork.errors.PageNotReady` naming the timeout and the page. The page's
console messages, errors and failed requests are in the job's logs.

Where Chromium runs is configuration (``[chromium] mode``): ``local`` launches
Debian's ``chromium``; ``docker`` starts a container of the Chromium image
(``scripts/build-chromium-image.sh``) and reaches its DevTools on 127.0.0.1;
``endpoint`` attaches to a browser already running. In a worker container of a
``docker`` pool, ``docker`` means ``local`` (the rendering worker image,
``actorwork image build --chromium``, has Debian's Chromium), so the same
``[chromium]`` table serves both shapes. See :mod:`.launch` for how
nothing is left running, :mod:`.works` for how jobs share browsers, and
:mod:`.browser` for the pyppeteer/Chromium 156 differences we work around.

Only :mod:`.browser` imports pyppeteer (the ``chromium`` extra), and only when a
browser is first connected, so this package imports without it.
"""

from actorwork.chromium.browser import READY_FUNCTION, Chromium
from actorwork.chromium.launch import CONTAINER_LABEL, PROFILE_PREFIX
from actorwork.chromium.requests import Margins, PageRequest, PdfRequest, PngRequest, Rendered
from actorwork.chromium.works import (
    Browsers,
    browsers,
    close_browsers,
    configure,
    render_pdf,
    render_png,
)
from actorwork.config import ChromiumSettings

__all__ = [
    "CONTAINER_LABEL",
    "PROFILE_PREFIX",
    "READY_FUNCTION",
    "Browsers",
    "Chromium",
    "ChromiumSettings",
    "Margins",
    "PageRequest",
    "PdfRequest",
    "PngRequest",
    "Rendered",
    "browsers",
    "close_browsers",
    "configure",
    "render_pdf",
    "render_png",
]
