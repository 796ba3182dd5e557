"""The ``actorwork`` command. The only module that configures structlog.

::

    actorwork demo                 # background jobs on the embedded defaults
    actorwork demo --dashboard     # ... then kept running with the dashboard
    actorwork scheduler            # run the Scheduler at [scheduler] address
    actorwork pool [NAME ...]      # run the configured pools (all, or those named)
    actorwork submit WORK [JSON]   # submit a job (--wait to wait for its result)
    actorwork status [JOB_ID]      # one job with its logs, a workflow's tree, or the latest jobs
    actorwork cancel|retry|delete JOB_ID
    actorwork schedules [add|enable|disable|remove]   # the cron schedules
    actorwork ping                 # exit 0 once the Scheduler answers (readiness)
    actorwork greet                # the actor demo over the configured transport
    actorwork serve [ACTOR ...]    # host configured actors at their addresses
    actorwork api                  # serve the HTTP JSON API, /metrics, the dashboard
    actorwork dashboard            # the same, and print the dashboard's URL
    actorwork image build          # build a worker image locally (no registry)
    actorwork store migrate|check  # the job store's schema (--store URL)
    actorwork config               # print the effective configuration
    actorwork version

``--config FILE`` (or ``$ACTORWORK_CONFIG``, or ``./actorwork.toml``) picks the
configuration; ``--log-level`` (or ``$ACTORWORK_LOG_LEVEL``) how much is logged;
``--tls-cert``, ``--tls-key``, ``--tls-ca``, ``--tls-require-client-cert`` and
``--tls-server-hostname`` override the keys of ``[system.tls]``. ``--json`` on
``submit``, ``status`` and ``schedules`` prints one JSON document on stdout and nothing
else, for scripts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import signal
import sys
import tomllib
from collections.abc import Callable
from typing import Any, NoReturn, cast

import anyio
import msgspec
import structlog

from actorwork._log import get_logger
from actorwork.capture import capture_processor
from actorwork.config import Config, find_config_file, load_config, override_tls
from actorwork.errors import ActorworkError, RemoteActorError, TransportError
from actorwork.messages import MAX_ATTEMPTS, MAX_FIRE_TIMES, MAX_INT, MAX_SECONDS
from actorwork.schedules import MISSED_POLICIES, OVERLAP_POLICIES

__all__ = ["main"]

log = get_logger("actorwork.cli")


def configure_logging(level: str) -> None:
    """Readable console logs on stderr, filtered at ``level``."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ActorworkError(f"--log-level {level!r} is not a level (debug, info, warning, error)")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            capture_processor,  # events made inside a job also go to that job's logs
            structlog.processors.TimeStamper(fmt="%H:%M:%S.%f", utc=False),
            structlog.processors.StackInfoRenderer(),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _config(args: argparse.Namespace) -> Config:
    if find_config_file(args.config) is None and args.command == "demo":
        from actorwork.cli.demo import DEMO_JOBS_CONFIG

        raw = tomllib.loads(DEMO_JOBS_CONFIG)
        return msgspec.convert({**raw, "source": "embedded demo defaults"}, Config)
    if find_config_file(args.config) is None:
        from actorwork.cli.demo import DEFAULT_CONFIG

        if args.command == "greet":  # the actor demo runs on its embedded defaults
            raw = tomllib.loads(DEFAULT_CONFIG)
            merged = msgspec.convert({**raw, "source": "embedded demo defaults"}, Config)
            env_only = load_config(env=os.environ)
            if env_only.actors or env_only.system.listen:
                return env_only
            return merged
    return load_config(args.config)


async def _greet(args: argparse.Namespace, config: Config) -> int:
    from actorwork.cli.demo import Greet
    from actorwork.node import Node

    placement = config.actors.get("greeter")
    if placement is None:
        raise ActorworkError(f"{config.source} has no [actors.greeter] section for the demo")
    host = None
    if not placement.address.startswith("inproc://"):
        host = await _start_host(args)
    try:
        async with Node(config) as node:
            greeter = await _reach(node, "greeter")
            print(f"greeter is at {placement.address} (configured in {config.source})")
            for name in ("ada", "grace", "alan"):
                reply = await greeter.ask(Greet(name))
                where = "this process" if reply.pid == os.getpid() else f"process {reply.pid}"
                print(
                    f"  {reply.text}  (greeting #{reply.count}, from {where}, "
                    f"system {reply.system!r})"
                )
            try:
                await greeter.ask(Greet("   "))
            except RemoteActorError as exc:
                print(f"  a bad request fails alone: {exc}")
            reply = await greeter.ask(Greet("again"))
            print(f"  ...and the actor carries on: {reply.text} (greeting #{reply.count})")
    finally:
        if host is not None:
            host.send_signal(signal.SIGTERM)
            with anyio.CancelScope(shield=True):
                await host.wait()
                await host.aclose()
    return 0


async def _start_host(args: argparse.Namespace) -> anyio.abc.Process:
    command = [sys.executable, "-m", "actorwork"]
    if args.config:
        command += ["--config", str(args.config)]
    command += ["--log-level", args.log_level, "serve"]
    return await anyio.open_process(command, stdin=None, stdout=None, stderr=None)


async def _reach(node: Any, name: str) -> Any:
    """Connect to ``name``, retrying while its host process starts."""
    delay = 0.05
    with anyio.fail_after(30):
        while True:
            try:
                return await node.ref(name)
            except TransportError:
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)


async def _serve(args: argparse.Namespace, config: Config) -> int:
    from actorwork.node import Node

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Node(config) as node:
            hosted = await node.host(args.actors or None)
            for name, address in hosted.items():
                log.info("serving", actor=name, address=address, pid=os.getpid())
            if not hosted:
                log.warning(
                    "nothing_to_serve",
                    config=config.source,
                    hint="no [actors.*] at a non-inproc address",
                )
            async for signum in signals:
                log.info("stopping", signal=signal.Signals(signum).name)
                break
    return 0


def _print_config(config: Config) -> int:
    shown = msgspec.to_builtins(config)
    if shown["system"].get("secret"):
        shown["system"]["secret"] = "***"
    if shown["scheduler"]["store"].startswith(("postgresql://", "postgres://")):
        from actorwork.stores.postgresql import redact

        shown["scheduler"]["store"] = redact(shown["scheduler"]["store"])
    print(msgspec.json.format(msgspec.json.encode(shown), indent=2).decode())
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors read like every other error of the command: ``actorwork: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"actorwork: error: {message}\n")


def integer(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not between {low} and {high}")
        return value

    parse.__name__ = "integer"
    return parse


def seconds(*, positive: bool = False) -> Callable[[str], float]:
    """An argparse type: finite seconds, 0 (or more than 0) to :data:`MAX_SECONDS`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or not (value > 0 if positive else value >= 0):
            least = "more than 0" if positive else "0 or more"
            raise argparse.ArgumentTypeError(f"{text!r} must be finite seconds, {least}")
        if value > MAX_SECONDS:
            raise argparse.ArgumentTypeError(
                f"{text!r} is more than {MAX_SECONDS:.0f} seconds (ten years)"
            )
        return value

    parse.__name__ = "seconds"
    return parse


def aware_datetime(text: str) -> dt.datetime:
    """An argparse type: an ISO-8601 date and time with its time zone (``Z`` or ``+01:00``)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 date and time (like 2030-01-31T05:00:00+00:00)"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone; add one, like {text}Z or {text}+01:00"
        )
    return value


#: Log levels ``--log-level`` takes.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_EXAMPLES = """\
examples:
  actorwork demo                                  jobs on the embedded defaults
  actorwork --config app.toml scheduler           run the Scheduler
  actorwork --config app.toml pool                run every configured pool
  actorwork ping --timeout 30                     wait until the Scheduler answers
  actorwork submit add '{"x": 1, "y": 2}' --wait  submit a job, wait, show its result
  actorwork submit report --at 2030-01-31T05:00:00+00:00 --queue slow
  actorwork status --status dead --limit 5        the latest dead jobs
  actorwork status JOB_ID --json                  one job, with its logs, as JSON
  actorwork retry JOB_ID                          run a dead or failed job again
  actorwork schedules add nightly report '0 3 * * *' --timezone Europe/London
  actorwork schedules --json                      the schedules and next fire times

--config FILE, $ACTORWORK_CONFIG or ./actorwork.toml picks the configuration.
"""


#: The ``--tls-*`` options: (option, ``[system.tls]`` key, help).
_TLS_OPTIONS = (
    ("--tls-cert", "cert", "PEM certificate (and key) to show; TLS on tcp:// in and out"),
    ("--tls-key", "key", "its private key, if not in the certificate file"),
    ("--tls-ca", "ca", "PEM file of the CAs that peers' certificates must chain to"),
    ("--tls-server-hostname", "server_hostname", "name to check on the server's certificate"),
)


def _add_tls_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS (override [system.tls])")
    for option, key, text in _TLS_OPTIONS:
        group.add_argument(option, dest=f"tls_{key}", default=None, help=text)
    group.add_argument(
        "--tls-require-client-cert",
        dest="tls_require_client_cert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="listen with mutual TLS: refuse peers without a certificate the CA signed",
    )


def _with_tls_options(config: Config, args: argparse.Namespace) -> Config:
    keys = [key for _, key, _ in _TLS_OPTIONS] + ["require_client_cert"]
    given = {key: getattr(args, f"tls_{key}") for key in keys}
    return override_tls(config, **{key: value for key, value in given.items() if value is not None})


def _add_events_command(commands: Any) -> None:
    events = commands.add_parser("events", help="tail the Scheduler's events")
    events.add_argument("--job", help="follow one job until it ends, with a progress bar")
    events.add_argument("--work", help="only events of jobs of this work")
    events.add_argument("--queue", help="only events of jobs on this queue")


def build_parser() -> argparse.ArgumentParser:
    from actorwork._version import __version__

    parser = _Parser(
        prog="actorwork",
        description="background work as asyncio actors",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"actorwork {__version__}")
    parser.add_argument(
        "--config",
        default=None,
        help="TOML config file (default: $ACTORWORK_CONFIG or ./actorwork.toml)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=os.environ.get("ACTORWORK_LOG_LEVEL", "info").lower(),
        help="how much is logged on stderr: %(choices)s (default: $ACTORWORK_LOG_LEVEL or info)",
    )
    _add_tls_options(parser)
    # Subcommands are _Parsers too (argparse makes them of the parent's class).
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",  # noqa: SLF001 - its type
        parser.add_subparsers(dest="command", required=True),
    )
    _add_demo_command(commands)
    commands.add_parser("scheduler", help="run the Scheduler at the configured address")
    pool = commands.add_parser("pool", help="run configured pools")
    pool.add_argument("pools", nargs="*", help="pool names (default: every configured pool)")
    pool.add_argument(
        "--grace",
        type=seconds(),
        default=None,
        help="seconds running jobs get to finish on SIGTERM (default: each pool's grace)",
    )
    submit = commands.add_parser("submit", help="submit a job")
    submit.add_argument("work", help="the work's registered name")
    submit.add_argument("payload", nargs="?", default=None, help="the payload as JSON")
    submit.add_argument("--queue", help="the queue to put it on (default: the work's)")
    submit.add_argument(
        "--priority",
        type=integer(-MAX_INT - 1, MAX_INT),
        help="higher runs first within its queue (default: the work's, usually 0)",
    )
    submit.add_argument(
        "--retries",
        type=integer(0, MAX_ATTEMPTS - 1),
        help="attempts after the first one fails (default: the work's)",
    )
    submit.add_argument(
        "--timeout",
        type=seconds(positive=True),
        help="seconds one attempt may run before it is stopped (default: the work's)",
    )
    submit.add_argument(
        "--unique-key",
        help="while a job with this key is not finished, return it instead of a new one",
    )
    submit.add_argument("--job-id", help="the job's id; a known id is not submitted again")
    when = submit.add_mutually_exclusive_group()
    when.add_argument("--delay", type=seconds(), help="seconds to hold the job")
    when.add_argument(
        "--at",
        type=aware_datetime,
        help="run it at this ISO-8601 time, with its zone (2030-01-31T05:00:00+00:00)",
    )
    submit.add_argument("--wait", action="store_true", help="wait for the result and show it")
    submit.add_argument("--json", action="store_true", help="print one JSON document")
    status = commands.add_parser("status", help="show a job, or the latest jobs")
    status.add_argument(
        "job_id", nargs="?", help="the job to show with its logs, or a workflow to show as a tree"
    )
    status.add_argument("--status", dest="only", help="only jobs in this status")
    status.add_argument("--queue", help="only jobs of this queue")
    status.add_argument(
        "--limit",
        type=integer(0, MAX_INT),
        default=20,
        help="show at most this many, newest first (default: %(default)s)",
    )
    status.add_argument("--json", action="store_true", help="print one JSON document")
    _add_events_command(commands)
    for verb, text in (
        ("cancel", "cancel a job that has not finished"),
        ("retry", "queue a dead, failed or cancelled job again with fresh attempts"),
        ("delete", "forget a finished job"),
    ):
        command = commands.add_parser(verb, help=text)
        command.add_argument("job_id", help="the job's id")
    _add_schedules_command(commands)
    ping = commands.add_parser("ping", help="exit 0 once the Scheduler answers, 1 if not")
    ping.add_argument(
        "--timeout",
        type=seconds(),
        default=10.0,
        help="seconds to keep trying (default: %(default)s)",
    )
    commands.add_parser("greet", help="run the actor demo over the configured transport")
    serve = commands.add_parser("serve", help="host configured actors at their addresses")
    serve.add_argument("actors", nargs="*", help="actor names (default: all not at inproc://)")
    from actorwork.cli.api import add_api_command
    from actorwork.cli.image import add_image_commands

    add_api_command(commands)
    add_image_commands(commands)
    from actorwork.cli.store import add_store_commands

    add_store_commands(commands)
    commands.add_parser("config", help="print the effective configuration")
    commands.add_parser("version", help="print the version")
    return parser


def _add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="run background jobs on the embedded defaults")
    demo.add_argument(
        "--dashboard",
        action="store_true",
        help="then keep the job system running with the dashboard, and print its URL",
    )
    demo.add_argument(
        "--address", default="127.0.0.1:7480", help="the dashboard's HOST:PORT (loopback)"
    )


def _add_schedules_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    schedules = commands.add_parser(
        "schedules",
        help="list, add or change the cron schedules",
        description="list the schedules, or: add NAME WORK CRON; enable, disable or remove NAME",
    )
    schedules.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=("list", "add", "enable", "disable", "remove"),
        help="what to do (default: list)",
    )
    schedules.add_argument("name", nargs="?", help="the schedule to add or change")
    schedules.add_argument("work", nargs="?", help="add: the work it submits")
    schedules.add_argument("cron", nargs="?", help="add: when, as cron ('0 5 * * mon-fri')")
    schedules.add_argument("--timezone", default="UTC", help="add: the cron's time zone")
    schedules.add_argument("--payload", default=None, help="add: the payload as JSON")
    schedules.add_argument(
        "--missed",
        choices=MISSED_POLICIES,
        default="run_once",
        help="add: fire times missed while no Scheduler ran: %(choices)s (default: %(default)s)",
    )
    schedules.add_argument(
        "--overlap",
        choices=OVERLAP_POLICIES,
        default="allow",
        help="add: a fire time while its last job runs: %(choices)s (default: %(default)s)",
    )
    schedules.add_argument(
        "--count", type=integer(0, MAX_FIRE_TIMES), default=3, help="next fire times to show"
    )
    schedules.add_argument(
        "--offline", action="store_true", help="list the config's schedules, no Scheduler"
    )
    schedules.add_argument("--json", action="store_true", help="print one JSON document")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(args.log_level)
        if args.command == "version":
            from actorwork._version import __version__

            print(__version__)
            return 0
        config = _with_tls_options(_config(args), args)
        if args.command == "config":
            return _print_config(config)
        # Factories and work modules are imported from next to the config file.
        if args.config:
            sys.path.insert(0, os.path.dirname(os.path.abspath(args.config)))
        sys.path.insert(0, os.getcwd())
        from actorwork.cli import jobs as cli_jobs
        from actorwork.cli.api import api_command
        from actorwork.cli.image import image_command
        from actorwork.cli.store import store_command

        runners = {
            "greet": _greet,
            "serve": _serve,
            "image": image_command,
            "store": store_command,
            "api": api_command,
            "dashboard": api_command,
            **cli_jobs.COMMANDS,
        }
        return anyio.run(runners[args.command], args, config)
    except ActorworkError as exc:
        print(f"actorwork: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
