"""Container workers for a ``docker`` pool: each worker an actor system in a container.

A :class:`ContainerFleet` belongs to one Pool. It listens on the pool's bridge
(``docker:///<bridge dir>/pool.sock``, the directory bind-mounted read-only into
every container; or ``docker://host:port`` for a remote engine), with a shared secret
made for this run. Each container runs ``python -m actorwork.cli.bridge`` with
the bridge's address inside the container and a name of its own; when it connects,
the fleet matches the handshake's name to the container it started and hands the
Pool a :class:`ContainerWorker` — the counterpart of a process pool's
:class:`~actorwork.transports.pipe.ChildProcess` — in which the Pool spawns a Worker.

Every container gets ``$ACTORWORK_CONTAINER`` (its own name): code in it can tell it
runs in a worker container (``actorwork.chromium`` then launches its browsers in the
container itself instead of asking for a Docker engine it has not got).

Labels on every container: ``org.actorwork.pool`` (the pool's name),
``org.actorwork.owner`` (``host:pid:start-time`` of the pool's process) and
``org.actorwork.bridge`` (its bridge directory). At start, a fleet removes the
containers of its pool whose owner process on this host is gone (a crashed earlier
run), with their bridge directories. A container that dies (OOM, ``docker kill``)
closes its end of the bridge: the Pool sees its worker terminate, reports the attempt
``lost`` and asks for a replacement. On close every container is removed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from actorwork._log import get_logger
from actorwork.addressing import is_loopback_host, parse_address
from actorwork.docker.engine import LABEL_PREFIX, ContainerOptions, Engine
from actorwork.errors import ConfigError, EngineError
from actorwork.runtime.ref import PeerSystem
from actorwork.transports.base import Connection, ConnectionOptions, Listener
from actorwork.transports.docker import SECRET_VARIABLE, DockerTransport

if TYPE_CHECKING:
    from actorwork.runtime.link import Link
    from actorwork.runtime.system import ActorSystem

__all__ = ["CONTAINER_VARIABLE", "ContainerFleet", "ContainerWorker", "owner_label"]

log = get_logger(__name__)

#: Set in every worker container, to the container's name.
CONTAINER_VARIABLE = "ACTORWORK_CONTAINER"
#: Where the bridge directory appears inside every container.
CONTAINER_BRIDGE_DIR = "/run/actorwork-bridge"
_SOCKET = "pool.sock"
_BRIDGE_PREFIX = "actorwork-bridge-"


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks ('' if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_label(pid: int | None = None) -> str:
    """``host:pid:start-time`` of a process: who owns a container (pid reuse included)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def _owner_gone(owner: str) -> bool:
    """True if ``owner`` names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host's pool: not ours to judge
    return _process_start(int(pid_text)) != started


class ContainerWorker(PeerSystem):
    """One worker's container, linked to the pool's actor system over the bridge.

    ``aclose()`` closes the link and removes the container. Idempotent.
    """

    def __init__(
        self, fleet: ContainerFleet, name: str, container_id: str, link: Link, closed: anyio.Event
    ) -> None:
        self.fleet = fleet
        self.system = fleet.system
        self.name = name
        self.container_id = container_id
        self.link = link
        #: Set once closed; the bridge's handler holds the connection open until then.
        self.closed = closed

    async def wait(self) -> int:
        """Wait for the container to stop; its exit code."""
        return await self.fleet.engine.wait(self.container_id)

    def kill(self) -> None:
        """SIGKILL the container (soon: the engine is asked in the background)."""
        self.fleet.kill_soon(self.container_id)

    async def exit_reason(self) -> str:
        """Why the container ended, for the lost attempt's error."""
        try:
            state = (await self.fleet.engine.inspect(self.container_id)).get("State", {})
        except EngineError as exc:
            return f"worker container {self.name!r} is gone ({exc})"
        code = state.get("ExitCode")
        why = ", out of memory" if state.get("OOMKilled") else ""
        if state.get("Running"):
            return f"worker container {self.name!r} lost its connection without a result"
        return f"worker container {self.name!r} exited (code {code}{why}) without a result"

    async def aclose(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with anyio.CancelScope(shield=True):
            await self.link.aclose(f"container {self.name!r} closed by the pool")
            try:
                await self.fleet.engine.remove(self.container_id)
            except EngineError as exc:
                log.warning("container_not_removed", container=self.name, error=str(exc))
            self.fleet.forget(self)

    def __repr__(self) -> str:
        return f"<ContainerWorker {self.name!r} {self.container_id[:12]}>"


class _Arrival:
    """A container started and not yet connected back."""

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.link: Link | None = None
        self.done = anyio.Event()  # the worker closed, or never came to be


class ContainerFleet:
    """The containers of one pool; see the module docstring.

    ``open()`` connects to the engine, checks the image, removes orphans and binds
    the bridge; ``serve()`` (a long-lived task) accepts the containers' connections;
    ``start(name)`` runs one container and returns its worker once it connected;
    ``aclose()`` removes every container and the bridge. Idempotent.
    """

    def __init__(self, system: ActorSystem, pool: str, options: ContainerOptions) -> None:
        self.system = system
        self.pool = pool
        self.options = options
        self.engine = Engine()
        self.owner = owner_label()
        self._secret = secrets.token_bytes(32)
        self._bridge_dir: Path | None = None
        self._listener: Listener | None = None
        self._inside = ""  # the bridge's address as a container sees it
        self._arrivals: dict[str, _Arrival] = {}
        self._workers: set[ContainerWorker] = set()
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        await self.engine.open()
        try:
            await self.engine.require_image(self.options.image)
            await self.remove_orphans()
            await self._bind()
        except BaseException:
            await self.aclose()
            raise

    async def _bind(self) -> None:
        options = ConnectionOptions(name=f"pool-{self.pool}", secret=self._secret)
        if self.options.uses_tcp():
            advertise = self.options.advertise
            if not advertise:
                raise ConfigError(
                    f"pools.{self.pool}.advertise is empty: containers of a remote engine "
                    "reach the pool over TCP, so name this host's address as they see it"
                )
            host = "127.0.0.1" if is_loopback_host(advertise) else "0.0.0.0"
            self._listener = await DockerTransport().listen(
                parse_address(f"docker://{host}:0"), options
            )
            port = self._listener.address.rsplit(":", 1)[1]
            self._inside = f"docker://{advertise}:{port}"
            return
        self._bridge_dir = Path(tempfile.mkdtemp(prefix=_BRIDGE_PREFIX))
        self._bridge_dir.chmod(0o755)  # the container's user is not ours
        path = self._bridge_dir / _SOCKET
        self._listener = await DockerTransport().listen(parse_address(f"docker://{path}"), options)
        self._inside = f"docker://{CONTAINER_BRIDGE_DIR}/{_SOCKET}"

    async def serve(self) -> None:
        """Accept the containers' connections until cancelled or closed."""
        assert self._listener is not None, "open() the fleet first"
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._listener.serve(self._accepted)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for worker in list(self._workers):
                await worker.aclose()
            if self._listener is not None:
                await self._listener.aclose()
            if self._bridge_dir is not None:
                shutil.rmtree(self._bridge_dir, ignore_errors=True)
            await self.engine.aclose()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # --- containers -----------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        labels = {f"{LABEL_PREFIX}.pool": self.pool, f"{LABEL_PREFIX}.owner": self.owner}
        if self._bridge_dir is not None:
            labels[f"{LABEL_PREFIX}.bridge"] = str(self._bridge_dir)
        return labels

    def _config(self, name: str) -> dict[str, Any]:
        options = self.options
        host: dict[str, Any] = {"Binds": list(options.mounts)}
        if self._bridge_dir is not None:
            host["Binds"].append(f"{self._bridge_dir}:{CONTAINER_BRIDGE_DIR}:ro")
        if options.memory is not None:
            host["Memory"] = host["MemorySwap"] = options.memory  # no swap beyond the limit
        if options.cpus is not None:
            host["NanoCpus"] = int(options.cpus * 1e9)
        if options.network:
            host["NetworkMode"] = options.network
        environment = {
            **options.environment,
            SECRET_VARIABLE: self._secret.hex(),
            CONTAINER_VARIABLE: name,
            "ACTORWORK_LOG_LEVEL": os.environ.get("ACTORWORK_LOG_LEVEL", "info"),
        }
        frame_cap = str(self.system.options.max_frame_size)
        command = [options.python, "-m", "actorwork.cli.bridge", self._inside]
        config: dict[str, Any] = {
            "Image": options.image,
            "Cmd": [*command, "--name", name, "--max-frame-size", frame_cap],
            "Env": [f"{key}={value}" for key, value in environment.items()],
            "Labels": self.labels(),
            "HostConfig": host,
        }
        if options.user:
            config["User"] = options.user
        return config

    async def start(self, worker: str) -> ContainerWorker:
        """Run a container for ``worker`` and wait until it connected back."""
        if self._closed:
            raise RuntimeError(f"the container fleet of pool {self.pool!r} is closed")
        name = f"actorwork-{_docker_name(worker)}-{secrets.token_hex(3)}"
        arrival = self._arrivals[name] = _Arrival()
        try:
            container_id = await self.engine.run(name, self._config(name))
            try:
                await self._await_arrival(name, container_id, arrival)
            except BaseException:
                arrival.done.set()
                with anyio.CancelScope(shield=True):
                    await self.engine.remove(container_id)
                raise
        finally:
            del self._arrivals[name]
        assert arrival.link is not None
        found = ContainerWorker(self, name, container_id, arrival.link, arrival.done)
        self._workers.add(found)
        log.info("container_started", pool=self.pool, container=name, id=container_id[:12])
        return found

    async def _await_arrival(self, name: str, container_id: str, arrival: _Arrival) -> None:
        """Wait for the container's connection; EngineError if it stops or takes too long."""
        with anyio.move_on_after(self.options.start_timeout):
            while not arrival.arrived.is_set():
                with anyio.move_on_after(0.5):
                    await arrival.arrived.wait()
                if arrival.arrived.is_set():
                    return
                state = (await self.engine.inspect(container_id)).get("State", {})
                if not state.get("Running"):
                    output = await self.engine.logs_tail(container_id)
                    raise EngineError(
                        f"container {name!r} of pool {self.pool!r} (image "
                        f"{self.options.image!r}) exited with code {state.get('ExitCode')} "
                        f"before connecting to the pool; its output:\n{output or '(none)'}"
                    )
            return
        raise EngineError(
            f"container {name!r} of pool {self.pool!r} did not connect to the pool within "
            f"{self.options.start_timeout} s (is actorwork installed in {self.options.image!r}?)"
        )

    async def _accepted(self, connection: Connection) -> None:
        arrival = self._arrivals.get(connection.peer_name)
        if arrival is None or arrival.arrived.is_set():
            log.warning("bridge_peer_unknown", pool=self.pool, peer=connection.peer_name)
            return
        arrival.link = self.system.adopt(connection)
        arrival.arrived.set()
        await arrival.done.wait()  # the connection lives as long as the worker

    def kill_soon(self, container_id: str) -> None:
        if self._tg is not None and not self._closed:
            self._tg.start_soon(self.engine.kill, container_id)

    def forget(self, worker: ContainerWorker) -> None:
        self._workers.discard(worker)

    async def remove_orphans(self) -> int:
        """Remove this pool's containers whose owner process is gone; how many."""
        removed = 0
        for item in await self.engine.containers({f"{LABEL_PREFIX}.pool": self.pool}):
            labels = item.get("Labels") or {}
            if not _owner_gone(labels.get(f"{LABEL_PREFIX}.owner", "")):
                continue
            await self.engine.remove(item["Id"])
            bridge = labels.get(f"{LABEL_PREFIX}.bridge", "")
            if Path(bridge).name.startswith(_BRIDGE_PREFIX):
                shutil.rmtree(bridge, ignore_errors=True)
            removed += 1
            log.warning("orphan_container_removed", pool=self.pool, id=item["Id"][:12])
        return removed


def _docker_name(text: str) -> str:
    """``text`` as a container name may spell it ([a-zA-Z0-9][a-zA-Z0-9_.-]*)."""
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.") or "worker"
