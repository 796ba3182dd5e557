"""Configuration: file, environment overrides, and errors that name key and value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actorwork.config import load_config
from actorwork.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "actorwork.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.source == "defaults"
    assert config.system.listen == ""
    assert config.actors == {}


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = write(tmp_path, '[system]\nname = "a"\nlisten = "inproc://x"\nmailbox_capacity = 8\n')
    config = load_config(
        path,
        env={
            "ACTORWORK_SYSTEM__LISTEN": "tcp://127.0.0.1:7400",
            "ACTORWORK_SYSTEM__MAILBOX_CAPACITY": "16",
        },
    )
    assert config.system.name == "a"
    assert config.system.listen == "tcp://127.0.0.1:7400"
    assert config.system.mailbox_capacity == 16
    assert config.source == f"{path} + environment"


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[system]\nname = "from-env"\n')
    assert load_config(env={"ACTORWORK_CONFIG": str(path)}).system.name == "from-env"


def test_actor_placement_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[actors.greeter]\nfactory = "m:G"\naddress = "inproc://g"\n')
    config = load_config(path, env={"ACTORWORK_ACTORS__GREETER__ADDRESS": "unix:///tmp/g.sock"})
    assert config.actors["greeter"].address == "unix:///tmp/g.sock"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[system]\nmailbox_capacity = 'many'\n", {}, "system.mailbox_capacity = 'many'"),
        ("", {"ACTORWORK_SYSTEM__ASK_TIMEOUT": "soon"}, "system.ask_timeout = 'soon'"),
        ("[system]\nask_timeout = -1\n", {}, "system.ask_timeout = -1"),
        (
            "[system]\nlisten = 'tpc://127.0.0.1:1'\n",
            {},
            "unknown transport scheme 'tpc' in address 'tpc://127.0.0.1:1' "
            "(known: docker, inproc, pipe, tcp, unix)",
        ),
        ("[system]\nlisten = 'tcp://127.0.0.1:99999'\n", {}, "port 99999 outside"),
        ("[system]\nlistne = 'tcp://127.0.0.1:1'\n", {}, "unknown field `listne`"),
        (
            "[actors.g]\nfactory = 'nocolon'\naddress = 'inproc://g'\n",
            {},
            "actors.g.factory = 'nocolon'",
        ),
        ("[actors.g]\naddress = 'inproc://g'\n", {}, "factory"),
        ("[system\n", {}, "not valid TOML"),
        ("[system]\nmax_frame_size = 10\n", {}, "system.max_frame_size = 10"),
    ],
)
def test_bad_values_are_named(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "env"),
    [("[jobs]\ntopology = 'tpc'\n", {}), ("", {"ACTORWORK_JOBS__TOPOLOGY": "tpc"})],
)
def test_an_unknown_topology_lists_the_three(
    tmp_path: Path, text: str, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=env)
    assert "jobs.topology = 'tpc'" in str(caught.value)
    assert str(caught.value).endswith("one of: inline, local, distributed")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does-not-exist\.toml"):
        load_config(tmp_path / "does-not-exist.toml", env={})


def test_secret_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    path = write(tmp_path, f"[system]\nsecret_file = '{tmp_path / 'secret'}'\n")
    assert load_config(path, env={}).system.secret_bytes() == b"s3cret"
    missing = write(tmp_path, "[system]\nsecret_file = '/nonexistent/secret'\n")
    with pytest.raises(ConfigError, match="/nonexistent/secret"):
        load_config(missing, env={}).system.secret_bytes()


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("[scheduler]\nlease = inf", "scheduler.lease = inf must be finite seconds"),
        ("[scheduler]\nleader_lease = 1e308", "scheduler.leader_lease = 1e+308 must be finite"),
        ("[scheduler]\nretry_cap = inf", "scheduler.retry_cap = inf must be finite seconds"),
        ("[pools.a]\ngrace = nan", "pools.a.grace = nan is negative"),
        ("[pools.a]\ngrace = inf", "pools.a.grace = inf must be finite seconds"),
        ("[pools.a]\nheartbeat = nan", "pools.a.heartbeat = nan is negative"),
        ("[pools.a]\nheartbeat = inf", "pools.a.heartbeat = inf must be finite seconds"),
        ("[pools.a]\nstart_timeout = inf", "pools.a.start_timeout = inf must be finite"),
        ("[pools.a]\ncpus = inf", "pools.a.cpus = inf must be a finite number of cores"),
        ("[pools.a]\nsize = 9223372036854775807", "pools.a.size = 9223372036854775807 must be"),
        ("[system]\nhandshake_timeout = inf", "system.handshake_timeout = inf must be finite"),
        ("[chromium]\nstart_timeout = inf", "chromium.start_timeout = inf must be finite"),
    ],
)
def test_a_duration_or_size_out_of_bounds_is_refused_naming_key_and_value(
    tmp_path: Path, text: str, refusal: str
) -> None:
    """F22: an infinite lease or a NaN grace was accepted, and broke timing far away."""
    with pytest.raises(ConfigError, match=re.escape(refusal)):
        load_config(write(tmp_path, text), env={})


def test_an_infinity_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("scheduler.lease = inf must be finite")):
        load_config(write(tmp_path, ""), env={"ACTORWORK_SCHEDULER__LEASE": "inf"})


def test_durations_in_bounds_are_kept(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "[scheduler]\nlease = 0.5\n[pools.a]\ngrace = 0.0\nheartbeat = 0.0\n"),
        env={},
    )
    assert config.scheduler.lease == 0.5
    assert (config.pools["a"].grace, config.pools["a"].heartbeat) == (0.0, 0.0)
