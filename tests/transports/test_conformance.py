"""The transport conformance suite, run for every built-in scheme."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from actorwork.testing import CONFORMANCE_CHECKS, HARNESSES, NotApplicable, TransportHarness

Check = Callable[[TransportHarness], Awaitable[None]]


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("check", CONFORMANCE_CHECKS, ids=lambda check: check.__name__[6:])
@pytest.mark.parametrize("scheme", sorted(HARNESSES))
async def test_conformance(scheme: str, check: Check, tmp_path: Path) -> None:
    try:
        await check(HARNESSES[scheme](tmp_path))
    except NotApplicable as exc:
        pytest.skip(str(exc))
