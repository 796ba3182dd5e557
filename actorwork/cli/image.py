"""``actorwork image build``: a worker image made locally, with nothing pulled.

::

    actorwork image build --tag myapp/worker:1.0 --package .          # this project
    actorwork image build --tag myapp/worker:1.0 --wheelhouse wheels/ \\
        --requirement myapp                                           # no package index
    actorwork image build --chromium --package .                      # a worker that renders

See :mod:`actorwork.docker.images` for what goes into the image. The ``docker`` pool's
``image`` key then names the tag.
"""

from __future__ import annotations

import argparse

from actorwork.config import Config
from actorwork.docker.engine import DEFAULT_IMAGE, Engine, check_image_reference
from actorwork.docker.images import (
    BASE_CANDIDATES,
    CHROMIUM_BASE,
    CHROMIUM_FONTS,
    CHROMIUM_WORKER_IMAGE,
    build_worker_image,
)

__all__ = ["add_image_commands", "image_command"]


def add_image_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``image build`` to the ``actorwork`` parser's subcommands."""
    image = commands.add_parser("image", help="build worker images (no registry needed)")
    verbs = image.add_subparsers(dest="image_command", required=True)
    build = verbs.add_parser("build", help="build a worker image from a base with Python")
    build.add_argument(
        "--tag",
        default=None,
        help=f"image name (default {DEFAULT_IMAGE}; with --chromium {CHROMIUM_WORKER_IMAGE})",
    )
    build.add_argument(
        "--chromium",
        action="store_true",
        help=f"a worker that renders: FROM {CHROMIUM_BASE} (unless --base), with "
        f"{' and '.join(CHROMIUM_FONTS)} and the chromium extra",
    )
    build.add_argument(
        "--base",
        default=None,
        help=f"base image with python3 (default: the first of {', '.join(BASE_CANDIDATES)})",
    )
    build.add_argument(
        "--package",
        action="append",
        default=[],
        dest="packages",
        help="a project directory (or requirement) of your work, wheeled and installed; repeatable",
    )
    build.add_argument(
        "--wheelhouse",
        default=None,
        help="install from the wheels in DIR as they are (no pip wheel: no index needed)",
    )
    build.add_argument(
        "--requirement",
        action="append",
        default=[],
        dest="requirements",
        help="a further distribution to install from the wheelhouse; repeatable",
    )
    build.add_argument(
        "--extras", default="", help="actorwork's optional dependencies, e.g. chromium"
    )


async def image_command(args: argparse.Namespace, config: Config) -> int:
    """Run ``actorwork image build``; print the tag and image id."""
    if args.tag is None:
        args.tag = CHROMIUM_WORKER_IMAGE if args.chromium else DEFAULT_IMAGE
    check_image_reference(args.tag, key="--tag")  # before asking any engine
    async with Engine() as engine:
        image_id = await build_worker_image(
            engine,
            tag=args.tag,
            base=args.base,
            packages=args.packages,
            requirements=args.requirements,
            wheelhouse=args.wheelhouse,
            extras=args.extras,
            chromium=args.chromium,
        )
    print(f"built {args.tag} ({image_id[7:19]})")
    return 0
