"""The work the job benchmark runs, in a module its child processes can import.

``bench/jobs.py`` puts this directory on ``sys.path`` (the process pool's children
inherit it) and on ``PYTHONPATH`` of the Scheduler and Pool processes it starts.
"""

from __future__ import annotations

from actorwork import work


@work(name="bench.noop")
async def noop() -> None:
    """Does nothing: what is left is the cost of the job system around it."""
    return None
