"""Container workers: cold start, and warm throughput through docker:// beside unix://.

Run from the repository root (a Docker Engine and the worker image are needed; the
image is built by ``scripts/build-worker-image.sh`` if missing)::

    .venv/bin/python bench/docker.py             # full run, about a minute
    .venv/bin/python bench/docker.py --quick     # smoke run
    .venv/bin/python bench/docker.py --markdown  # the table as markdown

Rows, each measured in the same run for both columns, taking turns:

``cold start s``
    From entering a ``JobSystem`` (topology ``local``, Scheduler in this process) with
    one worker until its first ``bench.noop`` job is done: for ``docker``, creating and
    starting the container, its Python starting and connecting back over the bridge,
    the Worker spawned in it; for ``process``, the same with a child process over
    ``pipe://``. The median of ``--repeat`` starts.
``jobs/s``
    A warm pool of 2 workers, N no-op jobs from 64 concurrent submitters, every result
    awaited: N over the time from the first submit to the last result.
``asks/s``
    Sequential asks (``Ping`` to the peer's ``_system`` actor, answered ``Pong``) over
    one link to a peer that connected to this process's listener: a container over
    ``docker:///dir/s.sock`` (the directory bind-mounted), beside a child process on
    this host over ``unix:///dir/s.sock``. The peer runs the same program
    (``python -m actorwork.cli.bridge``); only the container is in between.

Then, unless ``--no-pdf``, the PDF table of ``bench/pdf.py``: PDFs per minute through
an inline job system with local Chromium beside 1 and 2 Chromium containers (its own
docstring says how; ``--quick`` and ``--markdown`` are passed on).

Containers run the worker image with this checkout mounted over its actorwork (as
the tests do), with no network. Numbers move by 2x between runs on a shared machine:
compare the columns of one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import structlog
from _table import format_table

from actorwork import JobSystem
from actorwork.config import Config, load_config
from actorwork.docker.engine import Engine
from actorwork.docker.images import SOURCE_DIR, ensure_worker_image
from actorwork.messages import Ping
from actorwork.runtime import ActorSystem
from actorwork.runtime.ref import RemoteRef
from actorwork.transports.docker import SECRET_VARIABLE

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SUBMITTERS = 64


def _config(tmp: Path, kind: str, size: int, image: str) -> Config:
    mounts = [
        f"{REPO / 'actorwork'}:{SOURCE_DIR}/actorwork:ro",
        f"{BENCH_DIR / 'bench_works.py'}:{SOURCE_DIR}/bench_works.py:ro",
    ]
    path = tmp / f"{kind}-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(
        f"""
[jobs]
topology = "local"
modules = ["bench_works"]

[scheduler]
address = "inproc://bench-{path.stem}"
store = "{tmp}/{path.stem}.db"

[pools.bench{uuid.uuid4().hex[:6]}]
kind = "{kind}"
size = {size}
outbox = "{tmp}/{path.stem}-outbox"
image = "{image}"
network = "none"
mounts = [{", ".join(f'"{m}"' for m in mounts)}]
environment = {{ PYTHONPATH = "{SOURCE_DIR}" }}
"""
    )
    return load_config(path)


async def cold_start(tmp: Path, kind: str, image: str) -> float:
    start = time.perf_counter()
    async with JobSystem(_config(tmp, kind, 1, image)) as jobs:
        await (await jobs.submit("bench.noop")).result(timeout=120)
        return time.perf_counter() - start


async def throughput(tmp: Path, kind: str, image: str, n: int) -> float:
    async with JobSystem(_config(tmp, kind, 2, image)) as jobs:
        await (await jobs.submit("bench.noop")).result(timeout=120)  # warm
        handles = []

        async def submitter(count: int) -> None:
            for _ in range(count):
                handles.append(await jobs.submit("bench.noop"))

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(SUBMITTERS):
                tg.start_soon(submitter, n // SUBMITTERS + (i < n % SUBMITTERS))
        for handle in handles:
            await handle.result(timeout=120)
        return n / (time.perf_counter() - start)


@asynccontextmanager
async def peer(tmp: Path, where: str, image: str) -> AsyncIterator[RemoteRef]:
    """A listener here and a peer connected to it (in a container, or a child process)."""
    name = f"peer-{uuid.uuid4().hex[:6]}"
    scheme = "docker" if where == "docker" else "unix"  # docker:// makes the socket 0o666
    secret = os.urandom(16)  # which a docker:// listener needs; the same for both sides
    listen = f"{scheme}://{tmp}/{name}.sock"
    async with ActorSystem("bench", listen=listen, secret=secret) as system:
        command = ["-m", "actorwork.cli.bridge", "--name", name]
        if where == "docker":
            async with Engine() as engine:
                config = {
                    "Image": image,
                    "Cmd": ["python3", *command, f"docker:///bridge/{name}.sock"],
                    "Env": [
                        "ACTORWORK_LOG_LEVEL=warning",
                        f"PYTHONPATH={SOURCE_DIR}",
                        f"{SECRET_VARIABLE}={secret.hex()}",
                    ],
                    "HostConfig": {
                        "Binds": [
                            f"{tmp}:/bridge",
                            f"{REPO / 'actorwork'}:{SOURCE_DIR}/actorwork:ro",
                        ],
                        "NetworkMode": "none",
                    },
                }
                container = await engine.run(name, config)
                try:
                    yield await _incoming(system, name)
                finally:
                    await engine.remove(container)
        else:
            address = f"docker://{tmp}/{name}.sock"
            async with await anyio.open_process(
                [sys.executable, *command, address],
                env={
                    **os.environ,
                    "ACTORWORK_LOG_LEVEL": "warning",
                    SECRET_VARIABLE: secret.hex(),
                },
            ) as process:
                try:
                    yield await _incoming(system, name)
                finally:
                    process.kill()


async def _incoming(system: ActorSystem, name: str) -> RemoteRef:
    with anyio.fail_after(60):
        while True:
            for link in system.links:
                if link.peer_name == name:
                    return RemoteRef(system, "_system", link=link)
            await anyio.sleep(0.01)


async def asks(tmp: Path, where: str, image: str, n: int) -> float:
    async with peer(tmp, where, image) as ref:
        for _ in range(100):
            await ref.ask(Ping())
        start = time.perf_counter()
        for _ in range(n):
            await ref.ask(Ping())
        return n / (time.perf_counter() - start)


async def run(quick: bool, repeat: int) -> list[list[str]]:
    async with Engine() as engine:
        image = await ensure_worker_image(engine)
    jobs_n, asks_n = (200, 500) if quick else (1000, 3000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aw-bench-docker-") as name:
        tmp = Path(name)
        await anyio.Path(tmp).chmod(0o755)  # the containers' user reaches the sockets there
        starts: dict[str, list[float]] = {"docker": [], "process": []}
        rates: dict[str, list[float]] = {"docker": [], "process": []}
        calls: dict[str, list[float]] = {"docker": [], "unix": []}
        for _ in range(repeat):
            for kind in ("docker", "process"):
                starts[kind].append(await cold_start(tmp, kind, image))
                rates[kind].append(await throughput(tmp, kind, image, jobs_n))
            for where in ("docker", "unix"):
                calls[where].append(await asks(tmp, where, image, asks_n))
    cold = [statistics.median(starts[k]) for k in ("docker", "process")]
    rows.append(["cold start s (median)", f"{cold[0]:.2f}", "process", f"{cold[1]:.2f}"])
    warm = [max(rates[k]) for k in ("docker", "process")]
    rows.append(["jobs/s, 2 workers (best)", f"{warm[0]:,.0f}", "process", f"{warm[1]:,.0f}"])
    rtt = [max(calls[k]) for k in ("docker", "unix")]
    rows.append(["asks/s, one link (best)", f"{rtt[0]:,.0f}", "unix", f"{rtt[1]:,.0f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--no-pdf", action="store_true", help="skip the PDF table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sys.path.insert(0, str(BENCH_DIR))
    repeat = args.repeat or (1 if args.quick else 3)
    rows = anyio.run(run, args.quick, repeat)
    columns = ["measure", "docker://", "beside", "value"]
    notes = [f"{repeat} run(s); workers in containers of the worker image, no network"]
    print(format_table(columns, rows, notes, numeric={1, 3}, markdown=args.markdown))
    if not args.no_pdf:
        import pdf

        print()
        flags = [
            flag for flag, on in (("--quick", args.quick), ("--markdown", args.markdown)) if on
        ]
        sys.exit(pdf.main(flags))


if __name__ == "__main__":
    main()
