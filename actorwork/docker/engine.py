"""The Docker Engine as actorwork uses it: containers, images, and what goes wrong.

:class:`Engine` wraps the aiodocker client (imported only when an engine is opened)
and translates its errors: no engine answering is :class:`EngineUnavailable`, a
missing image :class:`ImageNotFound` naming the command that builds it, anything
else :class:`EngineError` naming the request. :class:`ContainerOptions` is what a
container pool's ``[pools.NAME]`` table says about its containers, checked when
the configuration is loaded (:func:`parse_memory`, :func:`check_image_reference`).

The engine is the one ``DOCKER_HOST`` names, or the local socket. It pulls nothing:
images are built locally (``actorwork image build``).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from anyio.abc import AsyncResource

from actorwork._log import get_logger
from actorwork.errors import ConfigError, EngineError, EngineUnavailable, ImageNotFound

if TYPE_CHECKING:
    import aiodocker

__all__ = [
    "BRIDGES",
    "DEFAULT_IMAGE",
    "LABEL_PREFIX",
    "ContainerOptions",
    "Engine",
    "check_image_reference",
    "engine_is_remote",
    "parse_memory",
]

log = get_logger(__name__)

#: Every label actorwork puts on containers and images starts with this.
LABEL_PREFIX = "org.actorwork"
#: The worker image a container pool runs unless told otherwise.
DEFAULT_IMAGE = "actorwork/worker:0.1.0"
#: How a container reaches its pool: ``auto`` picks ``tcp`` for a remote engine.
BRIDGES = ("auto", "unix", "tcp")
#: The status aiodocker gives to "cannot connect" (no HTTP answer at all).
_NO_CONNECTION = 900
#: The smallest memory limit the engine accepts.
MIN_MEMORY = 6 * 1024 * 1024

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
# name components, an optional registry host[:port] first, then :tag and/or @digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[a-z0-9]+:[a-fA-F0-9]{32,})?$"
)


def parse_memory(value: str | int, *, key: str = "memory") -> int:
    """Bytes from ``512m``, ``1.5g``, ``256MiB`` or a plain number; ConfigError naming it."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _MEMORY.match(str(value))
        if match is None:
            raise ConfigError(
                f"{key} = {value!r} is not a size: use bytes or a number with k, m or g "
                "(e.g. '512m', '2g')"
            )
        size = int(float(match[1]) * _UNITS[match[2].lower()])
    if size < MIN_MEMORY:
        raise ConfigError(f"{key} = {value!r} is below the engine's minimum of 6m")
    return size


def check_image_reference(image: str, *, key: str = "image") -> str:
    """``image`` if it is a valid reference (``name[:tag][@digest]``); ConfigError otherwise."""
    if not image or len(image) > 255 or _REFERENCE.match(image) is None:
        raise ConfigError(
            f"{key} = {image!r} is not an image reference: expected lower-case "
            "'[host/]name[:tag]', e.g. 'actorwork/worker:0.1.0'"
        )
    return image


def engine_is_remote(env: Mapping[str, str] | None = None) -> bool:
    """True when ``DOCKER_HOST`` points at another host (its containers cannot see ours)."""
    host = (os.environ if env is None else env).get("DOCKER_HOST", "")
    return host.startswith(("tcp://", "ssh://", "http://", "https://"))


@dataclass(frozen=True)
class ContainerOptions:
    """What a container pool's containers are made of; see ``[pools.NAME]`` in config.

    ``memory`` is in bytes and ``cpus`` a fraction of cores (None: no limit).
    ``mounts`` are ``host:container[:ro]`` bind mounts, ``environment`` extra
    variables. ``bridge`` is how a container reaches its pool (``auto``, ``unix``,
    ``tcp``); ``advertise`` is the host address containers connect to over TCP.
    ``start_timeout`` bounds the wait for a new container to connect back.
    """

    image: str = DEFAULT_IMAGE
    memory: int | None = None
    cpus: float | None = None
    network: str = ""
    user: str = ""
    mounts: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    bridge: str = "auto"
    advertise: str = ""
    python: str = "python3"
    start_timeout: float = 60.0

    def __post_init__(self) -> None:
        check_image_reference(self.image)
        if self.memory is not None:
            parse_memory(self.memory)
        if self.cpus is not None and not self.cpus > 0:
            raise ConfigError(f"cpus = {self.cpus!r} must be greater than 0")
        if not self.start_timeout > 0:
            raise ConfigError(f"start_timeout = {self.start_timeout!r} must be greater than 0")
        if self.bridge not in BRIDGES:
            raise ConfigError(f"bridge = {self.bridge!r} is not one of: {', '.join(BRIDGES)}")
        for mount in self.mounts:
            parts = mount.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]) or parts[2:] not in ([], ["ro"]):
                raise ConfigError(
                    f"mounts entry {mount!r} must look like '/host/dir:/container/dir[:ro]'"
                )

    def uses_tcp(self) -> bool:
        """Whether containers reach the pool over TCP (a remote engine, or asked for)."""
        return self.bridge == "tcp" or (self.bridge == "auto" and engine_is_remote())


class Engine(AsyncResource):
    """A connection to the Docker Engine; an async context manager, ``aclose()`` idempotent.

    Opening checks that an engine answers (EngineUnavailable otherwise).
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self.where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self._client: aiodocker.Docker | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def open(self) -> None:
        """Connect and ask the engine for its version; nothing if already open."""
        if self._client is not None:
            return
        import aiodocker

        try:
            self._client = aiodocker.Docker(url=self.url)
        except (ValueError, OSError) as exc:
            raise self._unavailable(exc) from exc
        try:
            with self._translate("asking the engine its version"):
                version = await self._client.version()
        except BaseException:
            await self.aclose()
            raise
        log.debug("engine_opened", where=self.where, version=version.get("Version"))

    async def aclose(self) -> None:
        """Close the connection to the engine. Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    @property
    def client(self) -> aiodocker.Docker:
        if self._client is None:
            raise RuntimeError("the engine is not open; use 'async with Engine()'")
        return self._client

    def _unavailable(self, reason: object) -> EngineUnavailable:
        return EngineUnavailable(
            f"no Docker Engine answers at {self.where} ({reason}): start it "
            "(systemctl start docker, or dockerd &) or point DOCKER_HOST at one"
        )

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        import aiodocker
        import aiohttp

        try:
            yield
        except aiodocker.DockerError as exc:
            if exc.status == _NO_CONNECTION:
                raise self._unavailable(exc.message) from exc
            raise EngineError(f"Docker Engine at {self.where}: {what}: {exc.message}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unavailable(exc) from exc

    # --- images --------------------------------------------------------------------

    async def image_exists(self, image: str) -> bool:
        import aiodocker

        try:
            with self._translate(f"inspecting image {image!r}"):
                await self.client.images.inspect(image)
        except EngineError as exc:
            if isinstance(exc.__cause__, aiodocker.DockerError) and exc.__cause__.status == 404:
                return False
            raise
        return True

    async def image(self, image: str) -> dict[str, Any]:
        """What the engine says of ``image`` (its ``Config``, ``Id``, ...)."""
        with self._translate(f"inspecting image {image!r}"):
            return await self.client.images.inspect(image)

    async def image_id(self, image: str) -> str:
        return str((await self.image(image))["Id"])

    async def build(self, context: bytes, *, tag: str, labels: Mapping[str, str]) -> None:
        """Build ``tag`` from a tar ``context`` (a Dockerfile at its top); pull nothing."""
        with self._translate(f"building {tag!r}"):
            output = await self.client.images.build(
                fileobj=io.BytesIO(context),
                encoding="identity",
                tag=tag,
                labels=labels,
                pull=False,
                rm=True,
                forcerm=True,
                timeout=None,
            )
        failed = [str(item["error"]).strip() for item in output if "error" in item]
        if failed:
            raise EngineError(f"Docker Engine at {self.where}: building {tag!r}: {failed[-1]}")

    async def require_image(self, image: str) -> None:
        """ImageNotFound naming how to build ``image`` if the engine does not have it."""
        if not await self.image_exists(image):
            raise ImageNotFound(
                f"image {image!r} is not in the Docker Engine at {self.where}, and nothing "
                f"is pulled: build it with 'actorwork image build --tag {image}' (or "
                "scripts/build-worker-image.sh for actorwork's own worker image)"
            )

    # --- containers ----------------------------------------------------------------

    async def run(self, name: str, config: dict[str, Any]) -> str:
        """Create and start a container; its id. Removed again if it cannot start."""
        with self._translate(f"creating container {name!r}"):
            container = await self.client.containers.create(config, name=name)
        try:
            with self._translate(f"starting container {name!r}"):
                await container.start()
        except BaseException:
            await self.remove(container.id)
            raise
        return container.id

    async def inspect(self, container_id: str) -> dict[str, Any]:
        with self._translate(f"inspecting container {container_id[:12]}"):
            return await self.client.containers.container(container_id).show()

    async def wait(self, container_id: str) -> int:
        """Wait for the container to stop; its exit code."""
        with self._translate(f"waiting for container {container_id[:12]}"):
            answer = await self.client.containers.container(container_id).wait()
        return int(answer.get("StatusCode", -1))

    async def kill(self, container_id: str) -> None:
        """SIGKILL the container; nothing if it already stopped or is gone."""
        import aiodocker

        try:
            await self.client.containers.container(container_id).kill(signal="KILL")
        except aiodocker.DockerError as exc:
            if exc.status not in (404, 409):  # gone, or not running
                raise EngineError(f"killing container {container_id[:12]}: {exc.message}") from exc

    async def remove(self, container_id: str) -> None:
        """Remove the container, killing it if it runs; nothing if it is gone."""
        import aiodocker

        try:
            await self.client.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status != 404 and "already in progress" not in exc.message:
                raise EngineError(f"removing container {container_id[:12]}: {exc.message}") from exc

    async def containers(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every container (running or not) carrying all of ``labels`` (a value of ''
        matches any), as listed."""
        import json

        wanted = [f"{key}={value}" if value else key for key, value in labels.items()]
        with self._translate("listing containers"):
            found = await self.client.containers.list(
                all=True, filters=json.dumps({"label": wanted})
            )
        keys = ("Id", "Names", "Labels", "State", "Status")
        return [{key: item[key] for key in keys if key in item} for item in found]

    async def logs_tail(self, container_id: str, lines: int = 20) -> str:
        """The last ``lines`` of the container's output, for error messages ('' if none)."""
        try:
            with self._translate("reading container logs"):
                chunks = await self.client.containers.container(container_id).log(
                    stdout=True, stderr=True, tail=lines
                )
        except EngineError:
            return ""
        return "".join(chunks).strip()
