"""``actorwork api``: serve the HTTP API (:mod:`actorwork.web`) with uvicorn.

It binds loopback unless ``--address`` says otherwise; off loopback it refuses to start
without a token (``--token-file`` or ``$ACTORWORK_API_TOKEN``). A read-only token
comes from ``--read-token-file`` or ``$ACTORWORK_API_READ_TOKEN``. With an inline
topology the command runs the job system itself, pools included; otherwise it reaches
the Scheduler at ``[scheduler] address`` as any client does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from actorwork._log import get_logger
from actorwork.config import Config
from actorwork.errors import ConfigError

__all__ = ["add_api_command", "api_command", "parse_address"]

log = get_logger("actorwork.cli")

DEFAULT_ADDRESS = "127.0.0.1:7480"


def add_api_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``api`` to the command's subparsers."""
    api = commands.add_parser("api", help="serve the HTTP JSON API and /metrics")
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
    """Serve the API until SIGINT or SIGTERM."""
    import uvicorn

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
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on", ws="wsproto")
    )
    log.info("api_serving", address=f"http://{args.address}", token=token is not None)
    await server.serve()  # uvicorn stops on SIGINT and SIGTERM
    return 0
