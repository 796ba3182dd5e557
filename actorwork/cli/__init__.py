"""The ``actorwork`` command and the programs actorwork runs in other processes.

:mod:`~actorwork.cli.main` parses the command line and configures logging;
:mod:`~actorwork.cli.jobs` holds the job commands (submit, status, retry, ...),
:mod:`~actorwork.cli.image` the image commands, :mod:`~actorwork.cli.demo` the demo.
:mod:`~actorwork.cli.child` is the program of a ``pipe://`` child process and
:mod:`~actorwork.cli.bridge` the program inside a worker container.
"""

from actorwork.cli.main import main

__all__ = ["main"]
