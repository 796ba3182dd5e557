"""Fixtures of the multi-host tests: a test network, PostgreSQL on a host of its own,
and a factory of clusters on them; everything is removed even when a test fails.

The tests are skipped, with the reason, where network namespaces cannot be made (not
root, no iproute2) or PostgreSQL's binaries are missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorwork.testing._postgres import postgres_binaries
from tests.docker.netns import unavailable
from tests.hosts.cluster import HostCluster, HostPostgres
from tests.hosts.network import Network, network


@pytest.fixture
def net() -> Iterator[Network]:
    """A switch with this host on it; hosts are added by the cluster."""
    why = unavailable()
    if why:
        pytest.skip(why)
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL's binaries (initdb) are not installed")
    with network() as made:
        yield made


@pytest.fixture
def pg(net: Network) -> Iterator[HostPostgres]:
    """A throwaway PostgreSQL server on a host of its own."""
    server = HostPostgres(net.host())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def hosts(tmp_path: Path, net: Network, pg: HostPostgres) -> Iterator[Callable[..., HostCluster]]:
    """Makes a :class:`HostCluster` (options as its fields); kills its processes after."""
    made: list[HostCluster] = []

    def make(**options: Any) -> HostCluster:
        cluster = HostCluster(tmp_path, net, pg, **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.cleanup()
