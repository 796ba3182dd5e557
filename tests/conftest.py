"""Fixtures shared by every test: leak checks on tasks and file descriptors."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """Fail the test if it leaves tasks running or file descriptors open."""
    tasks_before = asyncio.all_tasks()
    fds_before = _open_fds()
    yield
    gc.collect()
    for _ in range(3):  # let closing transports finish their callbacks
        await asyncio.sleep(0)
    leaked_tasks = [
        t for t in asyncio.all_tasks() - tasks_before if t is not asyncio.current_task()
    ]
    assert not leaked_tasks, f"tasks left running: {leaked_tasks}"
    descriptions = {}
    for fd in _open_fds() - fds_before:
        try:
            descriptions[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, already closed
            continue
    leaked_fds = set(descriptions)
    assert not leaked_fds, f"file descriptors left open: {descriptions}"


@pytest.fixture(autouse=True)
def structlog_as_it_was() -> Iterator[None]:
    """Put structlog's configuration back after each test: a command run in-process
    configures it with the test's captured streams, which close with the test."""
    configured = structlog.is_configured()
    saved = structlog.get_config()
    yield
    if configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()
