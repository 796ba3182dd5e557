"""pytest fixtures for testing your own work, there without an import once actorwork is
installed (the ``pytest11`` entry point ``actorwork.testing.pytest_plugin``).

- ``actorwork_jobs``: an :class:`~actorwork.testing.jobs.InlineJobs`, a job system
  running in the test's event loop on a temporary store, by ``actorwork_clock``;
  stopped and deleted after the test.
- ``actorwork_clock``: the :class:`~actorwork.clock.ManualClock` it reads the calendar
  from, at 2025-01-01 00:00 UTC. Override it to start elsewhere.
- ``actorwork_config``: the :class:`~actorwork.config.Config` it runs, made inline
  (None: the defaults, one pool ``default``). Override it to run your own, e.g.
  ``return load_config("actorwork.toml", env={})``.

::

    async def test_reminder_waits_five_minutes(actorwork_jobs):
        handle = await actorwork_jobs.submit(send_reminder, 42, delay=300)
        await actorwork_jobs.advance(299)
        assert await handle.status() == "scheduled"
        await actorwork_jobs.advance(1)
        assert await handle.result() == "sent"

``actorwork_jobs`` is an async fixture of pytest-asyncio, so it works in both its
modes: with ``asyncio_mode = "auto"`` as above, and in strict mode with the test
marked ``@pytest.mark.asyncio``. Without pytest-asyncio installed, a test asking for
it fails saying so; nothing else changes. The plugin defines fixtures only, no hooks,
so it changes no other test. Disable it with ``-p no:actorwork.testing.pytest_plugin``.
It has no asserts to rewrite, and says so (PYTEST_DONT_REWRITE): a conftest that
imports it before pytest registers it gets no warning for that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from actorwork.clock import ManualClock
from actorwork.config import Config
from actorwork.testing.jobs import InlineJobs, hosted, job_system

__all__ = ["actorwork_clock", "actorwork_config", "actorwork_jobs"]


def _async_fixture(function: Callable[..., AsyncIterator[Any]]) -> Any:
    """``function`` as a pytest-asyncio fixture; without pytest-asyncio, a fixture that
    fails the test asking for it with what to install."""
    try:
        import pytest_asyncio
    except ImportError:

        @pytest.fixture(name=function.__name__)
        def missing() -> None:
            pytest.fail(
                f"the fixture {function.__name__!r} runs in an asyncio test: "
                "install pytest-asyncio (pip install pytest-asyncio)"
            )

        missing.__doc__ = function.__doc__
        return missing
    return pytest_asyncio.fixture(function)


@pytest.fixture
def actorwork_clock() -> ManualClock:
    """The manual clock ``actorwork_jobs`` reads the calendar from."""
    return ManualClock()


@pytest.fixture
def actorwork_config() -> Config | None:
    """The configuration ``actorwork_jobs`` runs inline; None for the defaults."""
    return None


@_async_fixture
async def actorwork_jobs(
    actorwork_clock: ManualClock, actorwork_config: Config | None
) -> AsyncIterator[InlineJobs]:
    """An inline job system on a temporary store, by ``actorwork_clock``."""
    async with hosted(job_system(config=actorwork_config, clock=actorwork_clock)) as jobs:
        yield jobs
