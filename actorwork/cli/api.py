"""``actorwork api`` and ``actorwork dashboard``: serve the HTTP API and the dashboard
(:mod:`actorwork.web`) with uvicorn. They are the same app: ``api`` serves the
dashboard at ``/`` too, and ``dashboard`` also prints its URL.

It binds loopback unless ``--address`` says otherwise; off loopback it refuses to start
without a token (``--token-file`` or ``$ACTORWORK_API_TOKEN``). A read-only token
comes from ``--read-token-file`` or ``$ACTORWORK_API_READ_TOKEN``. With an inline
topology the command runs the job system itself, pools included; otherwise it reaches
the Scheduler at ``[scheduler] address`` as any client does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import anyio

from actorwork._log import get_logger
from actorwork.config import Config
from actorwork.errors import ConfigError

__all__ = ["add_api_command", "api_command", "parse_address", "serve"]

log = get_logger("actorwork.cli")

DEFAULT_ADDRESS = "127.0.0.1:7480"


def add_api_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``api`` and ``dashboard`` to the command's subparsers."""
    for name, text in (
        ("api", "serve the HTTP JSON API, /metrics and the dashboard"),
        ("dashboard", "serve the live dashboard (and the API) and print its URL"),
    ):
        _add_serving_options(commands.add_parser(name, help=text))


def _add_serving_options(api: argparse.ArgumentParser) -> None:
    api.add_argument("--address", default=DEFAULT_ADDRESS, help="HOST:PORT to bind (loopback)")
    api.add_argument("--token-file", help="file holding the API token ($ACTORWORK_API_TOKEN)")
    api.add_argument(
        "--read-token-file", help="file holding a read-only token ($ACTORWORK_API_READ_TOKEN)"
    )
    api.add_argument(
        "--allow-host",
        action="append",
        default=[],
        help="a Host name that state-changing requests may name (repeatable)",
    )
    api.add_argument(
        "--allow-origin", action="append", default=[], help="another allowed Origin (repeatable)"
    )


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:7480`` for IPv6) as a host and a port."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--address {text!r} is not HOST:PORT (e.g. {DEFAULT_ADDRESS!r})")
    return host, int(port)


def _secret(path: str | None, variable: str) -> str | None:
    if path is not None:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {path!r}: {exc}") from exc
    return os.environ.get(variable) or None


async def api_command(args: argparse.Namespace, config: Config) -> int:
    """Serve the API and the dashboard until SIGINT or SIGTERM."""
    from actorwork.web import Security, create_app
    from actorwork.web.security import LOOPBACK_HOSTS, is_loopback

    host, port = parse_address(args.address)
    token = _secret(args.token_file, "ACTORWORK_API_TOKEN")
    read_token = _secret(args.read_token_file, "ACTORWORK_API_READ_TOKEN")
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"--address {args.address!r} is not loopback: give a token "
            "(--token-file or $ACTORWORK_API_TOKEN) or bind 127.0.0.1"
        )
    try:
        security = Security(
            token=token,
            read_token=read_token,
            allowed_hosts=(*LOOPBACK_HOSTS, host, *args.allow_host),
            allowed_origins=tuple(args.allow_origin),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    app = create_app(config=config, security=security, run_pools=config.jobs.topology == "inline")
    log.info("api_serving", address=f"http://{args.address}", token=token is not None)
    await serve(app, host, port, lifespan="on")
    return 0


def dashboard_url(host: str, port: int) -> str:
    """The dashboard's URL on ``host`` and ``port`` (IPv6 in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


async def serve(app: Any, host: str, port: int, *, lifespan: Literal["on", "off"] = "off") -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then stop taking requests, finish those
    it has, run the lifespan's shutdown and return (a second signal cuts that short);
    prints the dashboard's URL once it listens."""
    import uvicorn

    class Server(uvicorn.Server):
        # The signals are ours (below): uvicorn would raise them again once it stopped,
        # and SIGINT would end the command as KeyboardInterrupt rather than exit 0.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan=lifespan, ws="wsproto"
    )
    server = Server(config)

    async def stop_on_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("api_stopping", signal=signal.Signals(signum).name)
                server.force_exit = server.should_exit
                server.should_exit = True

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await anyio.sleep(0.05)
        print(f"actorwork dashboard: {dashboard_url(host, port)}", flush=True)

    async with anyio.create_task_group() as group:
        group.start_soon(stop_on_signals)
        group.start_soon(announce)
        await server.serve()
        group.cancel_scope.cancel()
