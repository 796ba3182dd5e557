"""Which browser a work starts where it runs: ``[chromium] mode`` and worker containers.

A docker pool sets ``$ACTORWORK_CONTAINER`` in each of its containers; there a work
configured for ``docker`` (Chromium in a container of its own, the development shape)
launches Chromium in the container it runs in, since no Docker engine is in there.
"""

from __future__ import annotations

import pytest

from actorwork.chromium.launch import (
    DockerLauncher,
    EndpointLauncher,
    LocalLauncher,
    effective_mode,
    launcher_for,
)
from actorwork.config import ChromiumSettings
from actorwork.docker.engine import ContainerOptions
from actorwork.pool.containers import CONTAINER_VARIABLE, ContainerFleet
from actorwork.runtime.system import ActorSystem

IN_CONTAINER = {CONTAINER_VARIABLE: "actorwork-render-0-abc123"}
ENDPOINT = ChromiumSettings(mode="endpoint", endpoint="http://10.0.0.5:9222")


@pytest.mark.parametrize(
    ("settings", "env", "mode"),
    [
        (ChromiumSettings(mode="docker"), {}, "docker"),
        (ChromiumSettings(mode="docker"), IN_CONTAINER, "local"),
        (ChromiumSettings(mode="docker"), {CONTAINER_VARIABLE: ""}, "docker"),
        (ChromiumSettings(mode="local"), IN_CONTAINER, "local"),
        (ENDPOINT, IN_CONTAINER, "endpoint"),
    ],
)
def test_docker_means_local_in_a_worker_container_only(
    settings: ChromiumSettings, env: dict[str, str], mode: str
) -> None:
    assert effective_mode(settings, env) == mode


def test_the_launcher_follows_the_effective_mode() -> None:
    docker = ChromiumSettings(mode="docker", executable="chromium", args=["--lang=de"])
    assert isinstance(launcher_for(docker, {}), DockerLauncher)
    inside = launcher_for(docker, IN_CONTAINER)
    assert isinstance(inside, LocalLauncher)
    assert (inside.executable, inside.args) == ("chromium", ["--lang=de"])
    assert isinstance(launcher_for(ENDPOINT, IN_CONTAINER), EndpointLauncher)


def test_every_container_of_a_docker_pool_is_told_its_name() -> None:
    fleet = ContainerFleet(ActorSystem("pool"), "render", ContainerOptions())
    config = fleet._config("actorwork-render-0-abc123")
    assert f"{CONTAINER_VARIABLE}=actorwork-render-0-abc123" in config["Env"]
