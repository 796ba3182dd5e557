"""A web page of your own that starts a job and shows its progress and logs live.

    python examples/web/serve.py          # then open http://127.0.0.1:8000/
    python examples/web/serve.py 8080     # another port

Your app (Starlette here) serves ``index.html`` and mounts the actorwork API at
``/actorwork``; the page imports ``/actorwork/static/actorwork.js`` from it. The job
system runs in this process (the inline topology), its store under ``./.actorwork/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route

import actorwork
from actorwork.web import create_app

PAGE = Path(__file__).with_name("index.html")


@actorwork.work(name="example.report")
async def report(ctx: actorwork.WorkContext, rows: int) -> str:
    for row in range(1, rows + 1):
        await anyio.sleep(0.2)  # the real work of one row
        ctx.log.info(f"row {row} of {rows} done")
        ctx.progress(row / rows, f"row {row}")
    return f"{rows} rows"


async def page(request: Request) -> FileResponse:
    return FileResponse(PAGE)


async def main(port: int) -> None:
    async with actorwork.JobSystem(actorwork.load_config()) as jobs:
        assert jobs.client is not None
        app = Starlette(routes=[Route("/", page), Mount("/actorwork", app=create_app(jobs.client))])
        # wsproto serves the WebSocket the page watches the job through.
        config = uvicorn.Config(app, host="127.0.0.1", port=port, ws="wsproto")
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
