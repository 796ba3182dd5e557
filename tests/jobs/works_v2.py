"""A work that only the newer deployment has: its module is imported by the Scheduler and
by the newer Pool of a rolling deploy (tests/jobs/test_routing.py), not by the older."""

from __future__ import annotations

from actorwork import work


@work(name="greet_v2")
def greet_v2(name: str) -> str:
    return f"hello {name}"
