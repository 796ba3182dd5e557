"""Settings from a TOML file and the environment, validated when loaded.

Where the file comes from, first match wins: the ``path`` argument (the CLI's
``--config``), ``$ACTORWORK_CONFIG``, ``./actorwork.toml``; with none of them the
embedded defaults apply; ``load_config(data={...})`` takes the same tables as a dict
instead of a file. Environment variables override single keys:
``ACTORWORK_SYSTEM__LISTEN=tcp://127.0.0.1:7400`` sets ``[system] listen``, and
``ACTORWORK_ACTORS__GREETER__ADDRESS=...`` sets ``[actors.greeter] address`` (double
underscores separate levels; values are converted to the key's type).

::

    [system]                       # this process's actor system
    name = "demo"
    listen = "tcp://127.0.0.1:7400"
    secret_file = "/etc/actorwork/secret"   # mode 0600: a looser one is warned about

    [system.tls]                   # TLS on tcp://, in and out (on when cert or ca is set)
    cert = "/etc/actorwork/node.pem"
    key = "/etc/actorwork/node.key"
    ca = "/etc/actorwork/ca.pem"
    require_client_cert = true     # mutual TLS: enough off loopback without a secret

    [actors.greeter]               # where an actor lives; moving it is a one-line change
    factory = "myapp.actors:Greeter"
    address = "unix:///run/myapp/greeter.sock"

    [jobs]                         # the job system
    topology = "inline"            # inline | local | distributed
    modules = ["myapp.tasks"]      # where the @work functions live
    middleware = ["myapp.hooks:Tenant"]   # in order; every role runs the hooks it has

    [scheduler]
    address = "tcp://127.0.0.1:7401"   # or several: ["tcp://a:7400", "tcp://b:7400"]
    store = "/var/lib/myapp/jobs.db"   # or postgresql://user@db:5432/actorwork
    # listen = "tcp://0.0.0.0:7400"    # each of several: its own, answering in standby
    # advertise = "tcp://a:7400"       # where the others send Pools and clients to it

    [retention]                    # how long finished jobs stay in the store
    succeeded = { hours = 24, rows = 100000 }   # whichever says so first
    failed = { hours = 168 }
    interval = 60.0                # seconds between pruning passes (0: never)

    [pools.render]                 # one table per pool
    kind = "process"               # local | thread | process | docker
    size = 4
    queues = ["render"]

    [pools.sandboxed]              # a docker pool: one container per worker
    kind = "docker"
    image = "myapp/worker:1.0"     # built locally: actorwork image build
    memory = "512m"                # per container; cpus = 1.5 too
    mounts = ["/srv/in:/data:ro"]  # bind mounts, host:container[:ro]

    [chromium]                     # where actorwork.chromium's works find a browser
    mode = "docker"                # local | docker | endpoint

    [schedules.morning-report]     # cron: 05:00 London time, Monday to Friday
    work = "myapp.report"
    cron = "0 5 * * 1-5"
    timezone = "Europe/London"
    payload = { team = "ops" }

Every error is a :class:`~actorwork.errors.ConfigError` naming the file, the key (as
written: ``pools.default.size``, or the environment variable that set it) and the
value, and listing the choices where there are some.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlencode, urlsplit

import msgspec

from actorwork._log import get_logger
from actorwork.addressing import parse_address
from actorwork.docker.engine import DEFAULT_IMAGE, ContainerOptions, parse_memory
from actorwork.errors import ActorworkError, ConfigError
from actorwork.messages import MAX_SECONDS, MAX_SLOTS
from actorwork.middleware import load as load_middleware
from actorwork.runtime.follow import split_addresses
from actorwork.runtime.system import DEFAULT_LIVENESS_TIMEOUT
from actorwork.schedules import Schedule, schedules_from_config
from actorwork.stores.base import Retention
from actorwork.transports._framing import DEFAULT_MAX_FRAME_SIZE, HEADER
from actorwork.transports.base import (
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
)
from actorwork.transports.registry import resolve_transport
from actorwork.work import Keep

__all__ = [
    "ActorPlacement",
    "ChromiumSettings",
    "Config",
    "JobSettings",
    "PoolSettings",
    "RetentionSettings",
    "SchedulerSettings",
    "SystemSettings",
    "TLSSettings",
    "current_config",
    "find_config_file",
    "load_config",
    "override_tls",
    "running",
    "secret_file_exposed",
    "worker_environment",
]

log = get_logger(__name__)

#: Hosts a listener binds on every interface at: no address to advertise.
_WILDCARDS = ("", "0.0.0.0", "::")

ENV_PREFIX = "ACTORWORK_"
DEFAULT_FILE = "actorwork.toml"


class TLSSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[system.tls]``: TLS for ``tcp://`` connections in and out; on when ``cert`` or
    ``ca`` is set (the CLI's ``--tls-*`` options override each key).

    ``cert`` (PEM; with its private key unless ``key`` names another file) is the
    certificate a listener shows, and the client certificate presented when connecting.
    ``ca`` holds the CAs a peer's certificate must chain to (empty: the system's, for
    servers only). ``require_client_cert`` makes a listener refuse peers without a
    certificate that ``ca`` signed: mutual TLS, which a listener off loopback accepts in
    place of a shared secret. ``server_hostname`` is the name checked on the server's
    certificate (empty: the host of the address connected to).
    """

    cert: str = ""
    key: str = ""
    ca: str = ""
    require_client_cert: bool = False
    server_hostname: str = ""

    def __post_init__(self) -> None:
        if self.key and not self.cert:
            raise ValueError(f"key = {self.key!r} needs cert, the certificate it belongs to")
        if self.require_client_cert and not (self.cert and self.ca):
            raise ValueError(
                "require_client_cert = true needs cert (the certificate a listener shows) "
                f"and ca (the CA that signs the client certificates); got cert = {self.cert!r}, "
                f"ca = {self.ca!r}"
            )

    @property
    def enabled(self) -> bool:
        """Whether TLS is on: ``cert`` or ``ca`` is set."""
        return bool(self.cert or self.ca)


def secret_file_exposed(mode: int) -> bool:
    """True if a secret file of ``mode`` lets its group or others read (or write) it."""
    return bool(stat.S_IMODE(mode) & 0o077)


class SystemSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[system]``: the actor system of this process."""

    name: str = "actorwork"
    listen: str = ""
    secret: str = ""
    secret_file: str = ""
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    handshake_timeout: float = 5.0
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT  # 0: peers may stay silent for ever
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT  # 0: a frame may take for ever
    max_buffered: int = 0  # 0: four frames of max_frame_size, across all connections
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    mailbox_capacity: int = 1024
    ask_timeout: float = 30.0
    #: Seconds a peer this process connected to (a Scheduler) may stay silent while it
    #: owes answers before the connection is taken as lost (0: never; see ActorSystem).
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT
    tls: TLSSettings = TLSSettings()

    def secret_bytes(self) -> bytes | None:
        """The shared secret, from ``secret`` or the file ``secret_file``.

        A secret file that its group or others may read is used, with a warning naming
        its path and mode.
        """
        if self.secret:
            return self.secret.encode()
        if self.secret_file:
            path = Path(self.secret_file)
            try:
                secret = path.read_bytes().strip() or None
                mode = path.stat().st_mode
            except OSError as exc:
                raise ConfigError(
                    f"system.secret_file = {self.secret_file!r} cannot be read: {exc.strerror}"
                ) from exc
            if secret_file_exposed(mode):
                log.warning(
                    "secret_file_readable_by_others",
                    path=self.secret_file,
                    mode=oct(stat.S_IMODE(mode)),
                    hint=f"chmod 600 {self.secret_file}",
                )
            return secret
        return None


class ActorPlacement(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[actors.NAME]``: which class an actor is and which system hosts it."""

    factory: str
    address: str


#: Where the roles run: see :class:`JobSettings`.
Topology = Literal["inline", "local", "distributed"]
TOPOLOGIES: tuple[Topology, ...] = get_args(Topology)
POOL_KINDS = ("local", "thread", "process", "docker")
SYNCHRONOUS = ("off", "normal", "full")


class JobSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[jobs]``: which topology this process runs, and the modules that define work.

    ``inline`` runs the Scheduler, the Pools and their workers in this process over
    ``inproc://``; ``local`` does the same with process pools allowed; with
    ``distributed`` this process only connects to the Scheduler's address, and the
    Scheduler and Pools run as ``actorwork scheduler`` and ``actorwork pool``.
    """

    topology: Topology = "inline"
    modules: list[str] = []
    #: Middleware (:mod:`actorwork.middleware`) as ``"package.module:attribute"``, in
    #: order: a class (made with no arguments), a factory (called with none) or an
    #: object with hooks. Each role makes its own in its own process: the client's
    #: submit hooks, the Scheduler's dispatch and commit hooks, and every worker's run
    #: hooks, in process and container workers too.
    middleware: list[str] = []
    #: Seconds a client retries connecting to a Scheduler that is not listening yet
    #: (starting or restarting) before it gives up naming the address; 0: one try.
    connect_timeout: float = 10.0


class SchedulerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[scheduler]``: where the Scheduler listens and how it keeps jobs."""

    #: Where Pools and clients reach the Scheduler: one address, or several (a list, or
    #: one string separated by commas) of Schedulers sharing a store; they follow the
    #: one that leads.
    address: str | list[str] = "inproc://actorwork-scheduler"
    #: Where this Scheduler listens, in standby too (answering with the leader's
    #: address); empty: the one ``address``, and a standby does not listen.
    listen: str = ""
    #: The address this Scheduler is reached at, which standbys answer with; empty:
    #: ``listen`` when its host is not a wildcard (``0.0.0.0``, ``::``).
    advertise: str = ""
    store: str = ".actorwork/jobs.db"
    synchronous: str = "normal"
    lease: float = 30.0
    retry_base: float = 1.0
    retry_cap: float = 300.0
    #: Seconds a leading Scheduler holds the store without renewing; another Scheduler
    #: on the same store takes over after that (at once if the leader's process died).
    leader_lease: float = 10.0
    #: A file holding the password of a ``postgresql://`` store (never on the command
    #: line nor in the URL); else ``PGPASSWORD`` or a ``passfile`` is used.
    store_password_file: str = ""

    @property
    def addresses(self) -> list[str]:
        """Every Scheduler address of ``address``, in order."""
        return split_addresses(self.address)

    @property
    def listen_address(self) -> str:
        """Where the Scheduler listens: ``listen``, else the one address."""
        if self.listen:
            return self.listen
        found = self.addresses
        if len(found) > 1:
            raise ConfigError(
                f"scheduler.address = {self.address!r} names several Schedulers: set "
                "scheduler.listen to the one this Scheduler listens at"
            )
        return found[0]

    @property
    def advertised(self) -> str:
        """The address standbys name for this Scheduler when it leads ("" for none)."""
        if self.advertise or not self.listen:
            return self.advertise
        host = urlsplit(self.listen).hostname or ""
        return "" if host in _WILDCARDS else self.listen

    @property
    def store_url(self) -> str:
        """The URL the Scheduler opens: ``store``, naming ``store_password_file`` if set."""
        if not self.store_password_file:
            return self.store
        joiner = "&" if "?" in self.store else "?"
        return f"{self.store}{joiner}{urlencode({'password_file': self.store_password_file})}"


class RetentionSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[retention]``: how long finished jobs stay in the store, by status.

    Each status takes ``{ hours = H, rows = N }`` (either may be left out: no limit on
    that side); a work's ``@work(keep=...)`` wins for its own jobs. Every ``interval``
    seconds the Scheduler forgets expired jobs, ``batch`` per transaction.
    """

    succeeded: Keep = Keep(hours=24.0, rows=100_000)
    failed: Keep = Keep(hours=168.0)
    dead: Keep = Keep(hours=168.0)
    cancelled: Keep = Keep(hours=24.0)
    interval: float = 60.0
    batch: int = 500

    def policy(self) -> Retention:
        """The store's :class:`~actorwork.stores.base.Retention` of these settings."""
        keep = {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "dead": self.dead,
            "cancelled": self.cancelled,
        }
        return Retention(keep=keep, interval=self.interval, batch=self.batch)


class PoolSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[pools.NAME]``: one Pool; ``outbox`` defaults to ``.actorwork/outbox/NAME``.

    The keys from ``image`` on apply to ``docker`` pools: see
    :class:`~actorwork.docker.engine.ContainerOptions` (``memory`` as ``"512m"``, ``cpus``
    as a fraction of cores; 0 and "" mean no limit).
    """

    kind: str = "local"
    size: int = 2
    queues: list[str] = msgspec.field(default_factory=lambda: ["default"])
    outbox: str = ""
    heartbeat: float = 0.0  # 0: a third of the Scheduler's lease
    grace: float = 30.0  # seconds a stopping pool lets running jobs finish
    image: str = DEFAULT_IMAGE
    memory: str | int = ""
    cpus: float = 0.0
    network: str = ""
    user: str = ""
    mounts: list[str] = []
    environment: dict[str, str] = {}
    bridge: str = "auto"
    advertise: str = ""
    start_timeout: float = 60.0

    def outbox_path(self, name: str) -> str:
        return self.outbox or f".actorwork/outbox/{name}"

    def container_options(self) -> ContainerOptions:
        """What a docker pool's containers are made of; ConfigError naming a bad value."""
        return ContainerOptions(
            image=self.image,
            memory=parse_memory(self.memory) if self.memory else None,
            cpus=self.cpus or None,
            network=self.network,
            user=self.user,
            mounts=tuple(self.mounts),
            environment=dict(self.environment),
            bridge=self.bridge,
            advertise=self.advertise,
            start_timeout=self.start_timeout,
        )


CHROMIUM_MODES = ("local", "docker", "endpoint")


class ChromiumSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[chromium]``: the browser of :mod:`actorwork.chromium`'s works, checked here.

    ``local`` launches ``executable``; ``docker`` runs ``image`` and reaches its DevTools
    port on 127.0.0.1; ``endpoint`` attaches to a running browser (``http://`` or
    ``ws://``). ``instances`` browsers are shared by the jobs of a process; ``keep``
    keeps them between jobs; ``args`` are extra Chromium flags (local and docker).
    """

    mode: str = "local"
    executable: str = "chromium"
    image: str = "actorwork/chromium:bookworm"
    endpoint: str = ""
    instances: int = 1
    keep: bool = True
    args: list[str] = []
    start_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.mode not in CHROMIUM_MODES:
            raise ValueError(f"mode {self.mode!r} is not one of: {', '.join(CHROMIUM_MODES)}")
        if self.mode == "endpoint" and not self.endpoint.startswith(("http://", "ws://")):
            raise ValueError(
                f"mode 'endpoint' needs endpoint = 'http://HOST:PORT' or 'ws://...', "
                f"got {self.endpoint!r}"
            )
        if self.instances < 1:
            raise ValueError(f"instances = {self.instances!r} must be at least 1")
        if not self.start_timeout > 0:
            raise ValueError(f"start_timeout = {self.start_timeout!r} must be greater than 0")


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole configuration file. ``source`` says where it came from."""

    system: SystemSettings = SystemSettings()
    actors: dict[str, ActorPlacement] = {}
    jobs: JobSettings = JobSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    retention: RetentionSettings = RetentionSettings()
    pools: dict[str, PoolSettings] = msgspec.field(
        default_factory=lambda: {"default": PoolSettings()}
    )
    chromium: ChromiumSettings = ChromiumSettings()
    #: ``[schedules.NAME]`` tables, as written; :meth:`schedule_list` checks them.
    schedules: dict[str, dict[str, Any]] = {}
    source: str = "defaults"

    def schedule_list(self) -> list[Schedule]:
        """The cron schedules of ``[schedules.NAME]``; ConfigError names a bad one."""
        return schedules_from_config(self.schedules, source=self.source)


def find_config_file(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The file to load, per the order in the module docstring; None for the defaults."""
    env = os.environ if env is None else env
    if path is not None:
        return Path(path)
    if env.get("ACTORWORK_CONFIG"):
        return Path(env["ACTORWORK_CONFIG"])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    data: Mapping[str, Any] | None = None,
) -> Config:
    """Load, override from ``env`` (default ``os.environ``) and validate the configuration.

    ``data`` is the configuration as a dict instead of a file (``path`` and the files of
    the module docstring are then not read): the tables of the file as nested dicts,
    ``{"jobs": {"modules": ["myapp.tasks"]}, "pools": {"default": {"size": 4}}}``.
    It is validated exactly as a file is, environment variables override its keys the
    same way (pass ``env={}`` to ignore them), and errors name its keys as they would
    a file's, with ``load_config(data=...)`` as the source. Every error is a
    :class:`~actorwork.errors.ConfigError`.
    """
    env = os.environ if env is None else env
    if data is not None:
        if path is not None:
            raise ConfigError(f"load_config() takes a path or data, not both (path {path!r})")
        if not isinstance(data, Mapping):
            raise ConfigError(f"load_config(data=...) must be a dict of tables, got {data!r}")
        raw, source = _copy_tables(data), "load_config(data=...)"
    else:
        raw, source = _read_file(find_config_file(path, env))
    origins = _apply_env(raw, env)
    if origins:
        source += " + environment"
    raw["source"] = source
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, raw, source, origins)) from None
    try:
        _check(config)
        _check_jobs(config)
    except ConfigError as exc:
        raise ConfigError(_name_variables(str(exc), source, origins)) from None
    return config


def _read_file(file: Path | None) -> tuple[dict[str, Any], str]:
    """The tables of ``file`` and its name as a source; none and "defaults" without one."""
    if file is None:
        return {}, "defaults"
    source = str(file)
    try:
        return tomllib.loads(file.read_text()), source
    except FileNotFoundError:
        raise ConfigError(f"config file {source!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {source!r} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {source!r} is not valid TOML: {exc}") from exc


def _copy_tables(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` in which every table is a dict of its own (env overrides write)."""
    return {
        key: _copy_tables(value) if isinstance(value, Mapping) else value
        for key, value in data.items()
    }


def override_tls(config: Config, **keys: Any) -> Config:
    """``config`` with the ``[system.tls]`` ``keys`` given replaced (the CLI's ``--tls-*``
    options), checked as a file's are; ConfigError names a bad combination."""
    if not keys:
        return config
    try:
        tls = TLSSettings(**{**msgspec.structs.asdict(config.system.tls), **keys})
    except ValueError as exc:
        raise ConfigError(f"{config.source} + command line: system.tls: {exc}") from None
    system = msgspec.structs.replace(config.system, tls=tls)
    return msgspec.structs.replace(config, system=system, source=f"{config.source} + command line")


_running: list[Config] = []


@contextmanager
def running(config: Config) -> Iterator[Config]:
    """Make ``config`` what :func:`current_config` returns while the block runs.

    :func:`~actorwork.topology.start_pools` holds it while its pools run, so that what
    works look up for themselves (``[chromium]``) comes from the configuration the
    pools run with, however it was chosen: ``load_config(FILE)``, ``load_config(data=...)``,
    ``actorwork --config FILE`` or a :class:`Config` made in code. With several at once
    in one process, the one started last counts until it stops.
    """
    _running.append(config)
    try:
        yield config
    finally:
        _running.remove(config)


#: The ``[chromium]`` table of the configuration a Pool runs with, as JSON, in the
#: environment of its worker processes and containers: theirs however it was chosen.
CHROMIUM_VARIABLE = "ACTORWORK_CHROMIUM_JSON"


def worker_environment(config: Config) -> dict[str, str]:
    """What a Pool puts in the environment of its worker processes and containers, so
    that works there see the tables of ``config`` (``[chromium]``) as the Pool does."""
    return {CHROMIUM_VARIABLE: msgspec.json.encode(config.chromium).decode()}


def current_config() -> Config:
    """The configuration of the pools this process runs (see :func:`running`), or else
    the one :func:`load_config` finds: ``$ACTORWORK_CONFIG``, ``./actorwork.toml``, the
    environment. In a worker process or container, the ``[chromium]`` table its Pool
    handed down (:func:`worker_environment`) wins."""
    if _running:
        return _running[-1]
    config = load_config()
    handed_down = os.environ.get(CHROMIUM_VARIABLE)
    if handed_down:
        try:
            chromium = msgspec.json.decode(handed_down, type=ChromiumSettings)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ConfigError(f"${CHROMIUM_VARIABLE} = {handed_down!r}: {exc}") from None
        config = msgspec.structs.replace(config, chromium=chromium)
    return config


#: Where environment variables set keys: the key's path, lower case, to the variable.
Origins = dict[tuple[str, ...], str]


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> Origins:
    origins: Origins = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key or key == "ACTORWORK_CONFIG":
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX) :].split("__")]
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"environment variable {key} sets inside {part!r}, which is not a table"
                )
            node = child
        node[path[-1]] = value
        origins[tuple(path)] = key
    return origins


#: Settings typed as a Literal, whose choices an error about them lists.
_CHOICES: dict[str, tuple[str, ...]] = {"jobs.topology": TOPOLOGIES}


#: A step of a key's path: a table key, a list index, or :data:`_ENTRY`.
Step = str | int
#: msgspec's ``[...]``: an entry of a table it does not name (see :func:`_name_entries`).
_ENTRY = "[...]"
_STEP = re.compile(r"\.([^.\[\]]+)|\[(\.\.\.|\d+)\]")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _explain(
    exc: msgspec.ValidationError, raw: Mapping[str, Any], source: str, origins: Origins
) -> str:
    """Turn msgspec's ``... - at `$.pools[...].size``` into a message naming key and value.

    The key reads as the user wrote it (``pools.default.size``); a key an environment
    variable set is named by the variable, with the value as it was given.
    """
    text = str(exc)
    problem, _, where = text.partition(" - at `")
    steps = _name_entries(raw, _parse_path(where.rstrip("`")), text)
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", problem)
    if unknown:
        known = _known_fields(steps)
        steps = [*steps, unknown.group(1)]
        problem = f"unknown field `{unknown.group(1)}`"
        if known:
            problem = f"{problem}; known: {', '.join(known)}"
    key = _dotted(steps)
    if key in _CHOICES:
        problem = f"{problem}; one of: {', '.join(_CHOICES[key])}"
    value = _lookup(raw, steps)
    variable = origins.get(tuple(str(step) for step in steps))
    if variable is not None:  # every variable is a string: "got `str`" says nothing
        problem = problem.removesuffix(", got `str`")
        return f"{source}: {variable} = {value!r} ({key}): {problem}"
    message = f"{source}: {key or 'top level'}: {problem}"
    if isinstance(value, Mapping):  # a table's check failed: name what set its keys
        inside = [v for path, v in origins.items() if list(path[: len(steps)]) == steps]
        return f"{message} (set by {', '.join(inside)})" if inside else message
    if value is not None:
        message = f"{source}: {key} = {value!r}: {problem}"
    return _name_variables(message, source, origins)


def _parse_path(where: str) -> list[Step]:
    """``$.pools[...].queues[0]`` as ``["pools", "[...]", "queues", 0]``."""
    steps: list[Step] = []
    for name, index in _STEP.findall(where.removeprefix("$")):
        steps.append(name or (_ENTRY if index == "..." else int(index)))
    return steps


def _name_entries(raw: Mapping[str, Any], steps: list[Step], text: str) -> list[Step]:
    """``steps`` with each ``[...]`` replaced by the key of the entry that fails.

    msgspec validates a table's entries in order and stops at the first bad one, so
    the entry is the first that, left alone in its table, fails with the same error.
    """
    named: list[Step] = []
    for step in steps:
        found: Step = step
        if step == _ENTRY:
            table = _lookup(raw, named)
            for name in table if isinstance(table, Mapping) else ():
                trial = _only_entry(raw, named, name)
                if _validation_error(trial) == text:
                    raw, found = trial, name
                    break
        named.append(found)
    return named


def _only_entry(node: Any, path: list[Step], name: str) -> Any:
    """A copy of ``node`` whose table at ``path`` holds only its entry ``name``."""
    if not path:
        return {name: node[name]}
    head, *rest = path
    copy = dict(node) if isinstance(node, Mapping) else list(node)
    copy[head] = _only_entry(node[head], rest, name)  # type: ignore[index]
    return copy


def _validation_error(raw: Any) -> str | None:
    try:
        msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        return str(exc)
    return None


def _lookup(raw: Any, steps: list[Step]) -> Any:
    """The value at ``steps`` in ``raw``, or None if there is none."""
    value = raw
    for step in steps:
        inside = isinstance(value, list) and isinstance(step, int) and step < len(value)
        if not (inside or (isinstance(value, Mapping) and step in value)):
            return None
        value = value[step]
    return value


def _dotted(steps: list[Step]) -> str:
    """``pools.default.queues[0]``; a key that is not bare is quoted as in TOML."""
    text = ""
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        elif step == _ENTRY:
            text += step
        else:
            name = step if _BARE_KEY.fullmatch(step) else f'"{step}"'
            text += f".{name}" if text else name
    return text


def _known_fields(steps: list[Step]) -> list[str]:
    """The keys the table at ``steps`` may hold, if it is one of the settings' tables."""
    kind: Any = Config
    for step in steps:
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            kind = {f.name: f.type for f in msgspec.structs.fields(kind)}.get(str(step))
        elif get_origin(kind) in (dict, list):
            kind = get_args(kind)[-1]
        else:
            return []
    if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
        return []
    return sorted(field.name for field in msgspec.structs.fields(kind) if field.name != "source")


def _name_variables(message: str, source: str, origins: Origins) -> str:
    """``message`` saying which environment variables set the keys it names."""
    said = message.removeprefix(f"{source}: ")
    named = [
        variable
        for path, variable in origins.items()
        if re.search(rf"(?<![\w.]){re.escape('.'.join(path))}(?![\w.])", said)
    ]
    return f"{message} (set by {', '.join(named)})" if named else message


def _seconds(key: str, value: float, where: str, *, positive: bool = True) -> None:
    """A duration must be finite (NaN and inf are refused), and fit what messages carry."""
    if positive and not value > 0:
        raise ConfigError(f"{where}: {key} = {value!r} must be greater than 0")
    if not value >= 0:
        raise ConfigError(f"{where}: {key} = {value!r} is negative")
    if not math.isfinite(value) or value > MAX_SECONDS:
        raise ConfigError(
            f"{where}: {key} = {value!r} must be finite seconds, "
            f"at most {MAX_SECONDS:.0f} (ten years)"
        )


def _check(config: Config) -> None:
    system = config.system
    where = config.source
    positive = {
        "max_frame_size": system.max_frame_size,
        "mailbox_capacity": system.mailbox_capacity,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{where}: system.{key} = {value!r} must be greater than 0")
    _seconds("system.handshake_timeout", system.handshake_timeout, where)
    _seconds("system.ask_timeout", system.ask_timeout, where)
    _seconds("chromium.start_timeout", config.chromium.start_timeout, where)
    if system.max_frame_size < 1024:
        raise ConfigError(
            f"{where}: system.max_frame_size = {system.max_frame_size!r} must be at least 1024"
        )
    _check_connection_limits(system, where)
    if system.listen:
        _check_address("system.listen", system.listen, where)
    for name, placement in config.actors.items():
        _check_address(f"actors.{name}.address", placement.address, where)
        module, sep, attribute = placement.factory.partition(":")
        if not (module and sep and attribute):
            raise ConfigError(
                f"{where}: actors.{name}.factory = {placement.factory!r} must look "
                "like 'package.module:ClassName'"
            )


def _check_connection_limits(system: SystemSettings, where: str) -> None:
    for key in ("idle_timeout", "frame_timeout", "liveness_timeout"):
        value = getattr(system, key)
        if not 0 <= value < math.inf:
            raise ConfigError(
                f"{where}: system.{key} = {value!r} must be a number of seconds (0: never)"
            )
    least = system.max_frame_size + HEADER.size
    if system.max_buffered and system.max_buffered < least:
        raise ConfigError(
            f"{where}: system.max_buffered = {system.max_buffered!r} must hold one whole "
            f"frame: at least max_frame_size + {HEADER.size} = {least} (or 0 for four frames)"
        )
    if system.max_buffered < 0 or system.max_connections < 1:
        key = "max_buffered" if system.max_buffered < 0 else "max_connections"
        value = getattr(system, key)
        raise ConfigError(f"{where}: system.{key} = {value!r} is too small")


def _check_jobs(config: Config) -> None:
    where = config.source
    jobs, scheduler = config.jobs, config.scheduler
    _choice("scheduler.synchronous", scheduler.synchronous, SYNCHRONOUS, where)
    try:
        addresses = scheduler.addresses
    except ValueError as exc:
        raise ConfigError(f"{where}: scheduler.address: {exc}") from None
    for address in addresses:
        _check_address("scheduler.address", address, where)
        if jobs.topology == "distributed" and address.startswith("inproc:"):
            raise ConfigError(
                f"{where}: scheduler.address = {address!r}: a distributed topology needs "
                "an address other processes can reach (unix:// or tcp://)"
            )
    for key in ("listen", "advertise"):
        if getattr(scheduler, key):
            _check_address(f"scheduler.{key}", getattr(scheduler, key), where)
    config.schedule_list()
    _check_middleware(jobs.middleware, where)
    _seconds("jobs.connect_timeout", jobs.connect_timeout, where, positive=False)
    for key in ("lease", "retry_base", "retry_cap", "leader_lease"):
        _seconds(f"scheduler.{key}", getattr(scheduler, key), where)
    if scheduler.store_password_file and not scheduler.store.startswith(
        ("postgresql://", "postgres://")
    ):
        raise ConfigError(
            f"{where}: scheduler.store_password_file = {scheduler.store_password_file!r} is "
            f"for a postgresql:// store, and scheduler.store is {scheduler.store!r}"
        )
    try:
        config.retention.policy()
    except ValueError as exc:
        raise ConfigError(f"{where}: retention: {exc}") from None
    for name, pool in config.pools.items():
        _choice(f"pools.{name}.kind", pool.kind, POOL_KINDS, where)
        if jobs.topology == "inline" and pool.kind in ("process", "docker"):
            raise ConfigError(
                f"{where}: pools.{name}.kind = {pool.kind!r} runs workers in other processes; "
                "use topology 'local' for that, or kind 'local' or 'thread' to stay inline"
            )
        if pool.kind == "docker":
            try:
                pool.container_options()
            except ConfigError as exc:
                raise ConfigError(f"{where}: pools.{name}.{exc}") from None
        if not 1 <= pool.size <= MAX_SLOTS:
            raise ConfigError(
                f"{where}: pools.{name}.size = {pool.size!r} must be 1 to {MAX_SLOTS}"
            )
        if not pool.queues:
            raise ConfigError(f"{where}: pools.{name}.queues is empty; name at least one queue")
        _seconds(f"pools.{name}.heartbeat", pool.heartbeat, where, positive=False)
        _seconds(f"pools.{name}.grace", pool.grace, where, positive=False)
        _seconds(f"pools.{name}.start_timeout", pool.start_timeout, where)
        if not math.isfinite(pool.cpus) or pool.cpus < 0:
            raise ConfigError(
                f"{where}: pools.{name}.cpus = {pool.cpus!r} must be a finite number of cores"
            )


def _check_middleware(paths: list[str], where: str) -> None:
    """Each entry imports and makes a middleware now, not when a role first needs it."""
    for index, path in enumerate(paths):
        try:
            load_middleware([path])
        except Exception as exc:  # noqa: BLE001 - whatever a user's module raises on import
            raise ConfigError(f"{where}: jobs.middleware[{index}] = {path!r}: {exc}") from None


def _choice(key: str, value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {key} = {value!r} is not one of: {', '.join(choices)}")


def _check_address(key: str, value: str, where: str) -> None:
    try:
        address, transport = resolve_transport(parse_address(value))
        transport.check_address(address)
    except ActorworkError as exc:
        raise ConfigError(f"{where}: {key} = {value!r}: {exc}") from None
