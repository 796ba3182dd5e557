"""Works only the Docker tests run (importable in the containers as ``tests.docker.works``)."""

from __future__ import annotations

from actorwork import work


@work(name="hog", retries=1)
def hog(megabytes: int) -> int:
    """Hold ``megabytes`` of touched memory: past the container's limit, the kernel kills it."""
    held = [bytearray(1024 * 1024) for _ in range(megabytes)]
    return len(held)
