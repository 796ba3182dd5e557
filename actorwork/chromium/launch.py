"""Where a Chromium comes from: a local process, a container, or a running endpoint.

A :class:`Launcher` makes a DevTools WebSocket URL available (:meth:`Launcher.start`)
and takes away what it started (:meth:`Launcher.aclose`, idempotent). Three kinds:

* :class:`LocalLauncher` runs ``chromium --headless --remote-debugging-port=0`` on a
  fresh profile directory and reads the port from the ``DevToolsActivePort`` file
  Chromium writes there. The process leads a session of its own, so closing kills
  the whole tree (zygote, renderers, GPU process) with one ``killpg``; it also gets
  ``PR_SET_PDEATHSIG``, so it dies with the thread that launched it even if this
  process is SIGKILLed.
* :class:`DockerLauncher` runs the Chromium image with the docker CLI
  (``docker run --rm -i``), publishes DevTools on 127.0.0.1 only, and keeps the
  container's stdin open: the container's command waits for EOF on it, so the
  container stops and is removed when we close the pipe, and also when this process
  dies (the kernel closes the pipe). The CLI rather than aiodocker because an
  attached ``docker run`` gives exactly that lifetime link for free.
* :class:`EndpointLauncher` starts nothing; it asks ``http://HOST:PORT/json/version``
  for the WebSocket URL (or takes a ``ws://`` URL as it is).

**Inside a worker container** of a ``docker`` pool (``$ACTORWORK_CONTAINER`` set)
``docker`` means ``local``: the work already runs in a container, which has no Docker
engine but, in the rendering worker image (``build-worker-image.sh --chromium``),
Debian's Chromium. So one ``[chromium]`` table serves the development shape (works
in this process, Chromium in a container) and the production one (works and
Chromium in the pool's containers) unchanged; :func:`effective_mode` decides.

Every launcher still running at interpreter exit is killed synchronously
(:func:`kill_all_now`, registered with :mod:`atexit`).
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import weakref
from collections.abc import Awaitable, Mapping
from pathlib import Path

import anyio
import anyio.to_thread

from actorwork.config import ChromiumSettings
from actorwork.errors import ChromiumError
from actorwork.pool.containers import CONTAINER_VARIABLE

__all__ = [
    "CONTAINER_LABEL",
    "PROFILE_PREFIX",
    "DockerLauncher",
    "EndpointLauncher",
    "Launcher",
    "LocalLauncher",
    "effective_mode",
    "kill_all_now",
    "launcher_for",
    "shielded",
]

#: Every container a DockerLauncher starts carries this label (value: ``1``).
CONTAINER_LABEL = "org.actorwork.chromium"
#: Every profile directory (and container log) a launcher makes in the temp dir starts with
#: this, then the pid of the process that made it; what a SIGKILLed process left behind
#: is removed by the next launcher of any process.
PROFILE_PREFIX = "actorwork-chromium-"

_POLL = 0.05
_live: weakref.WeakSet[Launcher] = weakref.WeakSet()

# The container's command: Chromium (the image's entrypoint) in the background, and
# `cat` on the stdin we hold open (fd 3: bash gives background jobs /dev/null as stdin).
# EOF stops Chromium; Chromium ending ends the container either way.
_WATCH = (
    'exec 3<&0; /usr/local/bin/chromium-entrypoint "$@" & child=$!; '
    '{ cat <&3 >/dev/null; kill -TERM "$child" 2>/dev/null; } & wait "$child"'
)


class Launcher(abc.ABC):
    """Makes one Chromium's DevTools endpoint available, and takes it away again."""

    #: What was started, for messages (``local chromium pid 123``).
    description = ""

    @abc.abstractmethod
    async def start(self, timeout: float) -> str:
        """Start (or find) the browser; return its ``ws://`` DevTools URL.

        Raises :class:`ChromiumError` saying what failed and what to do, and leaves
        nothing running when it raises (also when cancelled).
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop what :meth:`start` started and wait until it is gone. Idempotent."""

    def kill_now(self) -> None:  # noqa: B027 - an endpoint has nothing to kill
        """Kill what was started, synchronously (interpreter exit). Idempotent."""


def effective_mode(settings: ChromiumSettings, env: Mapping[str, str] | None = None) -> str:
    """``settings.mode`` as it applies here: ``docker`` is ``local`` in a worker container.

    ``env`` (default ``os.environ``) tells where "here" is: a ``docker`` pool sets
    ``$ACTORWORK_CONTAINER`` in each of its containers.
    """
    env = os.environ if env is None else env
    if settings.mode == "docker" and env.get(CONTAINER_VARIABLE):
        return "local"
    return settings.mode


def launcher_for(settings: ChromiumSettings, env: Mapping[str, str] | None = None) -> Launcher:
    """The launcher for ``settings.mode`` where this process runs (:func:`effective_mode`)."""
    mode = effective_mode(settings, env)
    if mode == "local":
        return LocalLauncher(settings.executable, settings.args)
    if mode == "docker":
        return DockerLauncher(settings.image, settings.args)
    return EndpointLauncher(settings.endpoint)


class LocalLauncher(Launcher):
    """Debian's ``chromium`` (or ``executable``) as a child process; see the module doc."""

    def __init__(self, executable: str = "chromium", args: list[str] | None = None) -> None:
        self.executable = executable
        self.args = list(args or [])
        self._process: asyncio.subprocess.Process | None = None
        self._profile: Path | None = None

    async def start(self, timeout: float) -> str:
        path = shutil.which(self.executable)
        if path is None:
            raise ChromiumError(
                f"chromium executable {self.executable!r} not found on PATH; install it "
                "(apt-get install -y chromium, or scripts/install-chromium.sh) or set "
                "[chromium] executable"
            )
        _sweep_stale()
        self._profile = Path(tempfile.mkdtemp(prefix=_own_prefix()))
        argv = [path, *_local_flags(self._profile), *self.args, "about:blank"]
        _live.add(self)
        try:
            with (self._profile / "chromium.log").open("wb") as log:
                self._process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            self.description = f"local chromium (pid {self._process.pid})"
            with anyio.fail_after(timeout):
                return await self._endpoint()
        except TimeoutError:
            await shielded(self.aclose())
            raise ChromiumError(
                f"{self.executable} did not open DevTools within {timeout} s"
            ) from None
        except BaseException:
            await shielded(self.aclose())
            raise

    async def _endpoint(self) -> str:
        assert self._profile is not None
        assert self._process is not None
        port_file = self._profile / "DevToolsActivePort"
        while True:
            if self._process.returncode is not None:
                tail = _tail(self._profile / "chromium.log")
                raise ChromiumError(
                    f"{self.executable} exited with status {self._process.returncode} "
                    f"before opening DevTools: {tail}"
                )
            with contextlib.suppress(FileNotFoundError):
                lines = port_file.read_text().split()
                if len(lines) == 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            await anyio.sleep(_POLL)

    async def aclose(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            # SIGTERM lets Chromium shut down its children; whatever is left of its
            # session after that (or after 5 s) is killed.
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with anyio.move_on_after(5):
                await process.wait()
            _killpg(process.pid)
            await process.wait()
        self._remove_profile()
        _live.discard(self)

    def kill_now(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _killpg(process.pid)
            _gone(process.pid)  # or it may still write to the profile we remove
        self._remove_profile()

    def _remove_profile(self) -> None:
        profile, self._profile = self._profile, None
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)


def _local_flags(profile: Path) -> list[str]:
    flags = [
        "--headless",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--mute-audio",
    ]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return flags


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launching thread dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _gone(pid: int, limit: float = 2.0) -> None:
    """Wait (blocking, up to ``limit`` seconds) until the killed child ``pid`` has ended."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:  # reaped already (asyncio's child watcher)
            return
        time.sleep(0.02)


def _own_prefix() -> str:
    """Temporary files and profiles are named by our pid, so a later run can sweep them."""
    return f"{PROFILE_PREFIX}{os.getpid()}-"


def _sweep_stale() -> None:
    """Remove the profiles and logs of processes that died without cleaning up (SIGKILL)."""
    for path in Path(tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}*-*"):
        pid = path.name.removeprefix(PROFILE_PREFIX).partition("-")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to sweep
        return True
    return True


def _tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no output)"
    return text[-limit:] or "(no output)"


# Flags the image's entrypoint does not set; the same as LocalLauncher's where they matter
# to output (scrollbars would narrow full-page screenshots).
_DOCKER_FLAGS = ("--hide-scrollbars", "--mute-audio", "--no-default-browser-check")


class DockerLauncher(Launcher):
    """The Chromium image in a container reached on 127.0.0.1; see the module doc."""

    def __init__(self, image: str = "actorwork/chromium:bookworm", args: list[str] | None = None):
        self.image = image
        self.args = list(args or [])
        self.name = ""
        self._process: asyncio.subprocess.Process | None = None
        self._log: Path | None = None

    async def start(self, timeout: float) -> str:
        await self._check_image()
        self.name = f"actorwork-chromium-{os.getpid()}-{secrets.token_hex(4)}"
        self.description = f"chromium container {self.name}"
        _sweep_stale()
        fd, log = tempfile.mkstemp(prefix=_own_prefix(), suffix=".log")
        self._log = Path(log)
        argv = [
            *("docker", "run", "--rm", "--interactive", "--attach", "stdin"),
            *("--name", self.name, "--label", f"{CONTAINER_LABEL}=1"),
            *("--label", f"{CONTAINER_LABEL}.pid={os.getpid()}"),
            *("--publish", "127.0.0.1::9222"),
            *(self.image, "bash", "-c", _WATCH, "chromium-watch", *_DOCKER_FLAGS, *self.args),
        ]
        _live.add(self)
        try:
            with os.fdopen(fd, "wb") as out:
                self._process = await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.PIPE, stdout=out, stderr=out
                )
            with anyio.fail_after(timeout):
                port = await self._published_port()
                return await _ws_url(f"http://127.0.0.1:{port}", until_up=True)
        except TimeoutError:
            await shielded(self.aclose())
            raise ChromiumError(
                f"{self.description} did not answer on DevTools within {timeout} s"
            ) from None
        except BaseException:
            await shielded(self.aclose())
            raise

    async def _check_image(self) -> None:
        if shutil.which("docker") is None:
            raise ChromiumError("the docker CLI is not on PATH; install Docker or use mode local")
        found = await _run("docker", "image", "inspect", "--format", "{{.Id}}", self.image)
        if found.returncode == 0:
            return
        if "No such image" in found.stderr:
            raise ChromiumError(
                f"chromium image {self.image!r} is not in the local Docker engine; build it "
                "with scripts/build-chromium-image.sh (or set [chromium] image)"
            )
        raise ChromiumError(f"cannot reach the Docker engine: {found.stderr.strip()}")

    async def _published_port(self) -> str:
        assert self._process is not None
        while True:
            if self._process.returncode is not None:
                raise ChromiumError(
                    f"docker run {self.image} exited with status {self._process.returncode}: "
                    f"{_tail(self._log) if self._log else ''}"
                )
            found = await _run("docker", "port", self.name, "9222/tcp")
            if found.returncode == 0 and found.stdout.strip():
                return found.stdout.split()[0].rpartition(":")[2]
            await anyio.sleep(0.1)

    async def aclose(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()  # EOF: the container stops, --rm removes it
            with anyio.move_on_after(15):
                await process.wait()  # an attached `docker run --rm` returns once removed
            if process.returncode is None:
                await _run("docker", "rm", "--force", self.name)
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None
        _live.discard(self)

    def kill_now(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["docker", "rm", "--force", self.name],
                    capture_output=True,
                    timeout=20,
                    check=False,
                )
        if self._log is not None:
            self._log.unlink(missing_ok=True)


class EndpointLauncher(Launcher):
    """A browser someone else runs: ``http://HOST:PORT`` or a ``ws://`` URL."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.description = f"chromium at {endpoint}"

    async def start(self, timeout: float) -> str:
        if self.endpoint.startswith("ws://"):
            return self.endpoint
        with anyio.fail_after(timeout):
            return await _ws_url(self.endpoint, until_up=False)

    async def aclose(self) -> None:
        return None


async def _ws_url(base: str, *, until_up: bool) -> str:
    """``webSocketDebuggerUrl`` from ``base/json/version``; poll while ``until_up``."""
    url = base.rstrip("/") + "/json/version"
    while True:
        try:
            body = await anyio.to_thread.run_sync(_get, url)
            return str(json.loads(body)["webSocketDebuggerUrl"])
        except (OSError, ValueError, KeyError) as exc:
            if not until_up:
                raise ChromiumError(f"no Chromium DevTools at {url}: {exc}") from exc
        await anyio.sleep(0.1)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bytes(response.read())


async def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return subprocess.CompletedProcess(
        argv, process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )


async def shielded(closing: Awaitable[None]) -> None:
    """Await a clean-up even while the caller is being cancelled."""
    with anyio.CancelScope(shield=True):
        await closing


def kill_all_now() -> None:
    """Kill every browser a launcher of this process still runs (at interpreter exit)."""
    for launcher in list(_live):
        launcher.kill_now()


atexit.register(kill_all_now)
