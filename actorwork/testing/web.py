"""An ASGI app (the API, or a user's app that mounts it) served by uvicorn on loopback,
for tests and benchmarks that talk to it over real sockets: HTTP, WebSockets, a browser.

::

    async with served(create_app(jobs.client)) as base:     # "http://127.0.0.1:PORT"
        ...
    async with served(app, port=port):                      # again, on the same port
        ...

The listening socket is bound before the block starts, so a client may connect at
once (the kernel queues it until uvicorn accepts). Leaving the block stops the
server: open WebSockets are closed with 1012 (service restart), as a deploy does.
Needs the ``web`` extra. :func:`chromium_page` is a page of a local headless Chromium
(the ``chromium`` extra) to open what is served in.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["chromium_page", "served"]


@asynccontextmanager
async def served(app: Any, *, port: int = 0, send_buffer: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on ``127.0.0.1:port`` (0: a free port) while the block runs; yields
    its base URL. ``send_buffer`` sets the kernel's send buffer of every connection,
    in bytes, so that a client that stops reading blocks the server's writes soon."""
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:  # accepted sockets inherit it
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            ws="wsproto",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield f"http://127.0.0.1:{listener.getsockname()[1]}"
            finally:
                server.should_exit = True
    finally:
        listener.close()


@asynccontextmanager
async def chromium_page(executable: str = "chromium") -> AsyncIterator[Any]:
    """A blank page (pyppeteer's ``Page``) of a fresh local headless Chromium, which is
    stopped when the block ends."""
    from actorwork.chromium import Chromium
    from actorwork.config import ChromiumSettings

    async with Chromium(ChromiumSettings(mode="local", executable=executable)) as chromium:
        yield await chromium.new_page()
