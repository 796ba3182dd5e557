"""Worker images without a registry: built locally, installed offline from a wheelhouse.

:func:`build_worker_image` is ``actorwork image build``: a base image that has Python
(``python:3.11-slim`` where a registry put one in the engine, else actorwork's own
``actorwork/debian-python:<release>`` from ``scripts/build-base-image.sh``), plus a
venv at ``/opt/actorwork`` with actorwork and the user's packages installed with
``pip install --no-index`` from a wheelhouse. The wheelhouse is made on this host
with ``pip wheel`` (the only step that needs a package index), or given ready made
(``wheelhouse=``) for a machine without one. The build goes through the engine's
API with ``pull=False``: nothing is pulled.

With ``chromium=True`` it is a worker that renders (``actorwork image build
--chromium``): the base is actorwork's Chromium image (``actorwork/chromium:<release>``
from ``scripts/build-chromium-image.sh``: Debian's chromium and Latin fonts), the
build adds Debian's CJK and emoji fonts (:data:`CHROMIUM_FONTS`, from the engine's
apt sources, like the Chromium image's own packages) and installs actorwork's
``chromium`` extra; the image's entrypoint is plain ``tini`` again, so a container
runs the worker and its works start their browsers in it.

For tests, :func:`ensure_worker_image` builds the default worker image with the
checkout's scripts when it is missing, and :func:`source_mounts` mounts the running
actorwork over the image's, so a container runs the code under test.
"""

from __future__ import annotations

import fcntl
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from actorwork._log import get_logger
from actorwork._version import __version__
from actorwork.docker.engine import DEFAULT_IMAGE, LABEL_PREFIX, Engine, check_image_reference
from actorwork.errors import ActorworkError, EngineError, ImageNotFound

__all__ = [
    "BASE_CANDIDATES",
    "CHROMIUM_BASE",
    "CHROMIUM_FONTS",
    "CHROMIUM_WORKER_IMAGE",
    "build_worker_image",
    "checkout_root",
    "ensure_worker_image",
    "source_mounts",
]

log = get_logger(__name__)

#: The installed ``actorwork`` package directory.
_PACKAGE = Path(__file__).resolve().parents[1]

#: Bases tried in order when none is named: the registry's, then actorwork's own.
BASE_CANDIDATES = ("python:3.11-slim", "actorwork/debian-python:bookworm")
#: The base of a rendering worker (``chromium=True``) when none is named.
CHROMIUM_BASE = "actorwork/chromium:bookworm"
#: The rendering worker image the tests and the production example run.
CHROMIUM_WORKER_IMAGE = f"actorwork/chromium-worker:{__version__}"
#: Debian's fonts a rendering worker adds to the Chromium image's Latin ones.
CHROMIUM_FONTS = ("fonts-noto-cjk", "fonts-noto-color-emoji")
#: Where :func:`source_mounts` puts the running actorwork inside a container.
SOURCE_DIR = "/opt/actorwork-src"

_DOCKERFILE = """\
FROM {base}
USER root
{chromium}COPY wheelhouse/ /tmp/wheelhouse/
RUN {python} -m venv /opt/actorwork \\
 && /opt/actorwork/bin/pip install --no-index --find-links /tmp/wheelhouse \\
      --no-cache-dir --disable-pip-version-check {requirements} \\
 && rm -rf /tmp/wheelhouse
ENV VIRTUAL_ENV=/opt/actorwork \\
    PATH=/opt/actorwork/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER {user}
CMD ["actorwork", "version"]
"""

# What a rendering worker adds before actorwork: the Chromium image starts a browser,
# a worker starts the worker; fonts in their own layer, cached across code changes.
_CHROMIUM_STEPS = """\
ENTRYPOINT ["/usr/bin/tini", "--"]
HEALTHCHECK NONE
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends {fonts} \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt/*
"""


def dockerfile(base: str, installs: Sequence[str], user: str, *, chromium: bool = False) -> str:
    """The Dockerfile of a worker image FROM ``base`` installing ``installs`` offline."""
    steps = _CHROMIUM_STEPS.format(fonts=" ".join(CHROMIUM_FONTS)) if chromium else ""
    return _DOCKERFILE.format(
        base=base,
        chromium=steps,
        python="python3",
        requirements=" ".join(map(repr, installs)),
        user=user,
    )


def checkout_root() -> Path | None:
    """The source checkout actorwork runs from (with ``scripts/``), or None if installed."""
    root = _PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "scripts").is_dir():
        return root
    return None


def source_mounts() -> tuple[list[str], dict[str, str]]:
    """Bind mounts and environment that run this process's actorwork in a container."""
    package = _PACKAGE
    return [f"{package}:{SOURCE_DIR}/actorwork:ro"], {"PYTHONPATH": SOURCE_DIR}


async def ensure_worker_image(
    engine: Engine, tag: str | None = None, *, chromium: bool = False
) -> str:
    """The test worker image (``$ACTORWORK_TEST_IMAGE`` or the default), built if missing.

    With ``chromium`` it is the rendering worker (``$ACTORWORK_TEST_CHROMIUM_IMAGE`` or
    :data:`CHROMIUM_WORKER_IMAGE`, ``build-worker-image.sh --chromium``). Building needs
    the checkout's ``scripts/`` (they make the base with debootstrap); one build at a
    time per host (a lock file), since two would race for the tag.
    """
    if chromium:
        tag = tag or os.environ.get("ACTORWORK_TEST_CHROMIUM_IMAGE") or CHROMIUM_WORKER_IMAGE
    tag = tag or os.environ.get("ACTORWORK_TEST_IMAGE") or DEFAULT_IMAGE
    if await engine.image_exists(tag):
        return tag
    root = checkout_root()
    if root is None:
        await engine.require_image(tag)  # raises, naming how to build it
    assert root is not None
    script = root / "scripts" / "build-worker-image.sh"
    command = [str(script), "--tag", tag, *(["--chromium"] if chromium else [])]
    await anyio.to_thread.run_sync(_run_locked, command)
    await engine.require_image(tag)
    return tag


def _run_locked(command: Sequence[str]) -> None:
    lock = Path(tempfile.gettempdir()) / "actorwork-image-build.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        log.info("image_build_started", command=" ".join(command))
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode:
            raise EngineError(f"{' '.join(command)} failed:\n{done.stderr.strip()[-3000:]}")


async def pick_base(engine: Engine, base: str | None, *, chromium: bool = False) -> str:
    """``base`` if the engine has it, else the first of BASE_CANDIDATES it has
    (with ``chromium``: CHROMIUM_BASE, which must exist)."""
    if base is not None:
        check_image_reference(base, key="--base")
        await engine.require_image(base)
        return base
    if chromium:
        if not await engine.image_exists(CHROMIUM_BASE):
            raise ImageNotFound(
                f"no Chromium image {CHROMIUM_BASE!r} in the Docker Engine at {engine.where} "
                "to build a rendering worker on; nothing is pulled: build it with "
                "scripts/build-chromium-image.sh, or name another with --base"
            )
        return CHROMIUM_BASE
    for candidate in BASE_CANDIDATES:
        if await engine.image_exists(candidate):
            return candidate
    raise ImageNotFound(
        f"no base image with Python in the Docker Engine at {engine.where} (tried "
        f"{', '.join(BASE_CANDIDATES)}); nothing is pulled: build actorwork's with "
        "scripts/build-base-image.sh, or name one with --base"
    )


async def _image_python(engine: Engine, base: str) -> str:
    """The ``major.minor`` of the base's python3, which the wheels must be built for."""
    config = {
        "Image": base,
        "Entrypoint": ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        "Labels": {f"{LABEL_PREFIX}.image.test": "1"},
        "HostConfig": {"NetworkMode": "none"},
    }
    container = await engine.run(f"actorwork-probe-{os.getpid()}", config)
    try:
        code = await engine.wait(container)
        said = await engine.logs_tail(container, 5)
    finally:
        await engine.remove(container)
    if code != 0:
        raise EngineError(f"base image {base!r} has no working python3: {said or code}")
    return said.strip().splitlines()[-1]


def _wheel(sources: Sequence[str], wheelhouse: Path) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
    command += ["--wheel-dir", str(wheelhouse), *sources]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        raise ActorworkError(
            f"pip wheel {' '.join(sources)} failed (it needs a package index; on a machine "
            f"without one pass --wheelhouse DIR with the wheels made elsewhere):\n"
            f"{done.stderr.strip()[-2000:]}"
        )


def _context(dockerfile: str, wheelhouse: Path) -> bytes:
    """A build context: the Dockerfile and the wheelhouse, as a tar archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(wheelhouse, arcname="wheelhouse")
    return buffer.getvalue()


async def build_worker_image(
    engine: Engine,
    *,
    tag: str,
    base: str | None = None,
    packages: Sequence[str] = (),
    requirements: Sequence[str] = (),
    wheelhouse: str | None = None,
    extras: str = "",
    chromium: bool = False,
) -> str:
    """Build ``tag``; see the module docstring. Returns the image id.

    ``packages`` are the user's project directories (or requirement specifiers) to
    wheel with actorwork; ``requirements`` are installed in the image as well (the
    names of what ``wheelhouse`` holds, when it is given).
    """
    check_image_reference(tag, key="--tag")
    base = await pick_base(engine, base, chromium=chromium)
    base_user = (await engine.image(base)).get("Config", {}).get("User") or "root"
    if chromium and "chromium" not in extras.split(","):
        extras = ",".join(filter(None, [extras, "chromium"]))
    actor = f"actorwork[{extras}]" if extras else "actorwork"
    wanted = [f"{actor}=={__version__}", *requirements]
    with tempfile.TemporaryDirectory(prefix="actorwork-image-") as work:
        house = Path(work) / "wheelhouse"
        if wheelhouse is not None:
            await anyio.to_thread.run_sync(_copy_wheels, Path(wheelhouse), house)
        else:
            image_python = await _image_python(engine, base)
            here = "{}.{}".format(*sys.version_info[:2])
            if image_python != here:
                raise ActorworkError(
                    f"base image {base!r} has Python {image_python} but this interpreter is "
                    f"{here}: wheels are built for this one; run with Python {image_python} "
                    "or pass --wheelhouse with wheels made for it"
                )
            root = checkout_root()
            sources = [str(root) + (f"[{extras}]" if extras else "")] if root else [wanted[0]]
            house.mkdir()
            await anyio.to_thread.run_sync(_wheel, [*sources, *packages], house)
            wanted += [_name_of(p) for p in packages]
        text = dockerfile(base, wanted, base_user, chromium=chromium)
        context = _context(text, house)
    kind = "chromium-worker" if chromium else "worker"
    labels = {f"{LABEL_PREFIX}.image": kind, f"{LABEL_PREFIX}.base": base}
    log.info("image_build_started", tag=tag, base=base, installs=wanted)
    await engine.build(context, tag=tag, labels=labels)
    image_id = await engine.image_id(tag)
    log.info("image_built", tag=tag, id=image_id[7:19])
    return image_id


def _copy_wheels(source: Path, target: Path) -> None:
    if not source.is_dir():
        raise ActorworkError(f"--wheelhouse {str(source)!r} is not a directory of wheels")
    target.mkdir()
    wheels = list(source.glob("*.whl"))
    if not wheels:
        raise ActorworkError(f"--wheelhouse {str(source)!r} holds no wheels (*.whl)")
    for wheel in wheels:
        (target / wheel.name).write_bytes(wheel.read_bytes())


def _name_of(package: str) -> str:
    """The distribution a project directory or requirement specifier installs."""
    path = Path(package)
    if path.is_dir() and (path / "pyproject.toml").is_file():
        import tomllib

        project = tomllib.loads((path / "pyproject.toml").read_text()).get("project", {})
        if "name" in project:
            return str(project["name"])
        raise ActorworkError(f"--package {package!r}: pyproject.toml has no [project] name")
    return package
