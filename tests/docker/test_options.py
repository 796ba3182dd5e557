"""A docker pool's settings are checked when the configuration loads (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorwork.config import load_config
from actorwork.docker.engine import Engine, check_image_reference, parse_memory
from actorwork.errors import AddressError, ConfigError, EngineUnavailable
from actorwork.transports.registry import resolve_transport


def _load(tmp_path: Path, pool: str, topology: str = "local") -> None:
    path = tmp_path / "aw.toml"
    path.write_text(f'[jobs]\ntopology = "{topology}"\n\n[pools.box]\nkind = "docker"\n{pool}\n')
    load_config(path)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('memory = "12 parsecs"', "pools.box.memory = '12 parsecs' is not a size"),
        ('memory = "1k"', "pools.box.memory = '1k' is below the engine's minimum"),
        ('image = "Not An/Image!"', "pools.box.image = 'Not An/Image!' is not an image reference"),
        ("cpus = -1.5", "pools.box.cpus = -1.5 must be greater than 0"),
        ('bridge = "carrier-pigeon"', "pools.box.bridge = 'carrier-pigeon' is not one of"),
        ('mounts = ["/only-one-side"]', "'/only-one-side' must look like"),
    ],
)
def test_bad_settings_name_the_key_and_value(tmp_path: Path, setting: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, setting)
    assert message in str(caught.value)


def test_docker_pools_need_workers_outside_this_process(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kind = 'docker' runs workers in other processes"):
        _load(tmp_path, "", topology="inline")


def test_good_settings_load(tmp_path: Path) -> None:
    _load(tmp_path, 'memory = "1.5g"\ncpus = 0.5\nimage = "registry.local:5000/team/app:v1.2"')


@pytest.mark.parametrize(
    ("text", "size"), [("512m", 512 * 1024**2), ("1.5G", 1536 * 1024**2), ("256MiB", 256 * 1024**2)]
)
def test_memory_sizes(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("image", ["python:3.11-slim", "actorwork/worker:0.1.0", "a/b/c"])
def test_image_references(image: str) -> None:
    assert check_image_reference(image) == image


def test_docker_addresses_are_a_path_or_host_and_port() -> None:
    address, transport = resolve_transport("docker:///run/aw/pool.sock")
    transport.check_address(address)
    address, transport = resolve_transport("docker://10.0.0.5:7500")
    transport.check_address(address)
    address, transport = resolve_transport("docker://")
    with pytest.raises(AddressError, match="names neither a socket path"):
        transport.check_address(address)


async def test_no_engine_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(EngineUnavailable) as caught:
        async with Engine():
            pass
    message = str(caught.value)
    assert f"no Docker Engine answers at unix://{tmp_path}/no-engine.sock" in message
    assert "start it" in message
    assert "DOCKER_HOST" in message
