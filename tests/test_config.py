"""Configuration: file, environment overrides, and errors that name key and value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actorwork import JobSystem, work
from actorwork.chromium.works import current_settings
from actorwork.config import ChromiumSettings, Config, load_config
from actorwork.errors import ConfigError
from actorwork.node import system_from_settings

ROOT = Path(__file__).resolve().parents[1]


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
        (
            "",
            {"ACTORWORK_SYSTEM__ASK_TIMEOUT": "soon"},
            "ACTORWORK_SYSTEM__ASK_TIMEOUT = 'soon' (system.ask_timeout)",
        ),
        ("[system]\nask_timeout = -1\n", {}, "system.ask_timeout = -1"),
        ("[system]\nliveness_timeout = -1\n", {}, "system.liveness_timeout = -1"),
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
    ("text", "env", "named"),
    [
        ("[jobs]\ntopology = 'tpc'\n", {}, "jobs.topology = 'tpc'"),
        ("", {"ACTORWORK_JOBS__TOPOLOGY": "tpc"}, "ACTORWORK_JOBS__TOPOLOGY = 'tpc'"),
    ],
)
def test_an_unknown_topology_lists_the_three(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=env)
    assert named in str(caught.value)
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


# --- errors name the key as the user wrote it: a table's entry, an environment variable ---


def config_error(tmp_path: Path, text: str, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=env)
    message = str(caught.value)
    assert "[...]" not in message
    return message


def test_a_bad_value_from_the_environment_names_the_variable_and_its_value(
    tmp_path: Path,
) -> None:
    message = config_error(tmp_path, "", {"ACTORWORK_POOLS__DEFAULT__SIZE": "abc"})
    assert "ACTORWORK_POOLS__DEFAULT__SIZE = 'abc' (pools.default.size): Expected `int`" in message


def test_a_value_the_environment_set_that_fails_a_check_names_the_variable(
    tmp_path: Path,
) -> None:
    message = config_error(tmp_path, "", {"ACTORWORK_POOLS__DEFAULT__SIZE": "0"})
    assert message.endswith(
        "pools.default.size = 0 must be 1 to 1000000 (set by ACTORWORK_POOLS__DEFAULT__SIZE)"
    )
    message = config_error(tmp_path, "", {"ACTORWORK_CHROMIUM__MODE": "tab"})
    assert "chromium: mode 'tab' is not one of" in message
    assert message.endswith("(set by ACTORWORK_CHROMIUM__MODE)")


def test_an_unknown_key_in_a_pool_is_named_with_the_keys_it_may_have(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[pools.default]\nsise = 3\n", {})
    assert "pools.default.sise = 3: unknown field `sise`; known: advertise, bridge," in message
    assert ", size, " in message


def test_an_unknown_key_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    message = config_error(tmp_path, "", {"ACTORWORK_POOLS__DEFAULT__SISE": "3"})
    assert "ACTORWORK_POOLS__DEFAULT__SISE = '3' (pools.default.sise): unknown field" in message


def test_queues_given_as_a_string_names_the_pool(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[pools.default]\nqueues = "default"\n', {})
    assert "pools.default.queues = 'default': Expected `array`, got `str`" in message
    message = config_error(tmp_path, "", {"ACTORWORK_POOLS__DEFAULT__QUEUES": "default"})
    assert "ACTORWORK_POOLS__DEFAULT__QUEUES = 'default' (pools.default.queues)" in message


def test_the_bad_entry_of_a_table_is_named_not_the_first(tmp_path: Path) -> None:
    text = "[pools.a]\n[pools.b]\nsize = 'x'\n[pools.c]\n"
    assert "pools.b.size = 'x'" in config_error(tmp_path, text, {})


def test_entries_are_named_at_every_level_and_odd_keys_quoted(tmp_path: Path) -> None:
    text = '[pools.a]\nenvironment = { A = "1", B = 2 }\n[pools."a.b"]\nqueues = ["q"]\n'
    assert "pools.a.environment.B = 2: Expected `str`" in config_error(tmp_path, text, {})
    text = '[pools."a.b"]\nqueues = ["q", 1]\n'
    assert 'pools."a.b".queues[1] = 1: Expected `str`' in config_error(tmp_path, text, {})
    text = "[actors.g]\naddress = 'inproc://g'\n"
    assert "actors.g: Object missing required field `factory`" in config_error(tmp_path, text, {})


# --- configuration from a dict ---


def test_a_dict_is_a_configuration_as_a_file_is(tmp_path: Path) -> None:
    data = {"jobs": {"modules": ["a.b"]}, "pools": {"render": {"size": 4, "queues": ["r"]}}}
    from_dict = load_config(data=data, env={})
    text = '[jobs]\nmodules = ["a.b"]\n[pools.render]\nsize = 4\nqueues = ["r"]\n'
    from_file = load_config(write(tmp_path, text), env={})
    assert from_dict.source == "load_config(data=...)"
    assert msgspec.structs.replace(from_dict, source="") == msgspec.structs.replace(
        from_file, source=""
    )


def test_a_dict_is_overridden_by_the_environment_and_left_unchanged(tmp_path: Path) -> None:
    data = {"pools": {"default": {"size": 4}}}
    config = load_config(data=data, env={"ACTORWORK_POOLS__DEFAULT__SIZE": "8"})
    assert config.pools["default"].size == 8
    assert config.source == "load_config(data=...) + environment"
    assert data == {"pools": {"default": {"size": 4}}}


def test_a_dict_is_validated_and_its_keys_named_as_a_file_s(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(data={"pools": {"default": {"size": "abc"}}}, env={})
    assert str(caught.value) == (
        "load_config(data=...): pools.default.size = 'abc': Expected `int`, got `str`"
    )
    with pytest.raises(ConfigError, match=r"load_config\(data=\.\.\.\): pools.default.size = 0"):
        load_config(data={"pools": {"default": {"size": 0}}}, env={})
    with pytest.raises(ConfigError, match="unknown field `sise`"):
        load_config(data={"pools": {"default": {"sise": 3}}}, env={})


def test_a_dict_and_a_path_together_or_a_dict_that_is_not_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a path or data, not both"):
        load_config(write(tmp_path, ""), data={}, env={})
    with pytest.raises(ConfigError, match=r"must be a dict of tables, got \['jobs'\]"):
        load_config(data=["jobs"], env={})  # type: ignore[arg-type]


# --- one config file configures everything it names: [chromium] ---

CHROMIUM_TABLE = """
[chromium]
mode = "endpoint"
endpoint = "http://127.0.0.1:9222"
instances = 3
"""


@work(name="test_config.chromium_settings")
def chromium_settings() -> dict[str, Any]:
    """The settings a chromium work started now would use."""
    return msgspec.to_builtins(current_settings())  # type: ignore[no-any-return]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without actorwork.toml and no ACTORWORK_ variables."""
    for key in list(os.environ):
        if key.startswith("ACTORWORK_"):
            monkeypatch.delenv(key)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path


def inline_table(tmp_path: Path) -> str:
    return (
        f'[scheduler]\naddress = "inproc://settings-{tmp_path.name}"\n'
        f'store = "{tmp_path}/jobs.db"\n\n[pools.default]\noutbox = "{tmp_path}/outbox"\n'
    )


async def settings_in_a_job(config: Config) -> dict[str, Any]:
    async with JobSystem(config) as jobs:
        handle = await jobs.submit(chromium_settings)
        return await handle.result(timeout=60)  # type: ignore[no-any-return]


async def test_chromium_settings_come_from_the_file_given_to_load_config(elsewhere: Path) -> None:
    path = elsewhere / "app.toml"
    path.write_text(inline_table(elsewhere) + CHROMIUM_TABLE)
    settings = await settings_in_a_job(load_config(path))
    assert settings["mode"] == "endpoint"
    assert settings["endpoint"] == "http://127.0.0.1:9222"
    assert settings["instances"] == 3
    assert current_settings() == ChromiumSettings()  # once the job system has stopped


async def test_chromium_settings_come_from_the_config_a_job_system_runs(elsewhere: Path) -> None:
    data = tomllib.loads(inline_table(elsewhere) + CHROMIUM_TABLE)
    settings = await settings_in_a_job(load_config(data=data, env={}))
    assert settings["endpoint"] == "http://127.0.0.1:9222"
    made_in_code = msgspec.structs.replace(
        load_config(data=data, env={}), chromium=ChromiumSettings(mode="docker", instances=2)
    )
    settings = await settings_in_a_job(made_in_code)
    assert (settings["mode"], settings["instances"]) == ("docker", 2)


def test_chromium_settings_come_from_the_file_given_to_the_command(elsewhere: Path) -> None:
    (elsewhere / "probe.py").write_text(
        "import msgspec\n"
        "from actorwork import work\n"
        "from actorwork.chromium.works import current_settings\n\n"
        "@work(name='probe.chromium')\n"
        "def chromium() -> dict:\n"
        "    return msgspec.to_builtins(current_settings())\n"
    )
    path = elsewhere / "app.toml"
    path.write_text('[jobs]\nmodules = ["probe"]\n' + inline_table(elsewhere) + CHROMIUM_TABLE)
    command = ["-m", "actorwork", "--config", str(path), "submit", "probe.chromium", "--wait"]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=elsewhere / "cwd",
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(elsewhere)])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "'endpoint': 'http://127.0.0.1:9222'" in done.stdout
    assert "'instances': 3" in done.stdout


async def test_chromium_settings_reach_the_worker_processes_of_a_pool(elsewhere: Path) -> None:
    """A process pool's workers are other processes: the [chromium] table of the config
    the Pool runs with, chosen by load_config(FILE), reaches them too."""
    path = elsewhere / "app.toml"
    table = inline_table(elsewhere).replace("[pools.default]", '[pools.default]\nkind = "process"')
    jobs_table = '[jobs]\ntopology = "local"\nmodules = ["tests.jobs.settings_works"]\n'
    path.write_text(jobs_table + table + CHROMIUM_TABLE)
    async with JobSystem(load_config(path)) as jobs:
        handle = await jobs.submit("settings.chromium")
        settings = await handle.result(timeout=60)
    assert (settings["mode"], settings["instances"]) == ("endpoint", 3)


# --- several Schedulers: addresses, listen, advertise ------------------------------------


def test_scheduler_addresses_as_a_list_or_one_string_with_commas(tmp_path: Path) -> None:
    listed = write(tmp_path, '[scheduler]\naddress = ["tcp://a:7400", "tcp://b:7400"]\n')
    assert load_config(listed, env={}).scheduler.addresses == ["tcp://a:7400", "tcp://b:7400"]
    joined = load_config(
        listed, env={"ACTORWORK_SCHEDULER__ADDRESS": "tcp://a:7400, tcp://c:7400"}
    ).scheduler
    assert joined.addresses == ["tcp://a:7400", "tcp://c:7400"]
    one = load_config(write(tmp_path, '[scheduler]\naddress = "unix:///x.sock"\n'), env={})
    assert one.scheduler.addresses == ["unix:///x.sock"]
    assert one.scheduler.listen_address == "unix:///x.sock"


def test_a_bad_address_in_the_list_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[scheduler]\naddress = ["tcp://a:7400", "tpc://b:7400"]\n')
    with pytest.raises(ConfigError, match=r"scheduler\.address = 'tpc://b:7400'"):
        load_config(path, env={})


def test_a_scheduler_of_several_needs_its_listen_address_and_advertises_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, '[scheduler]\naddress = ["tcp://a:7400", "tcp://b:7400"]\n')
    settings = load_config(path, env={}).scheduler
    with pytest.raises(ConfigError, match=r"set scheduler\.listen"):
        assert settings.listen_address
    assert settings.advertised == ""
    listening = load_config(path, env={"ACTORWORK_SCHEDULER__LISTEN": "tcp://b:7400"}).scheduler
    assert (listening.listen_address, listening.advertised) == ("tcp://b:7400", "tcp://b:7400")
    wildcard = load_config(
        path, env={"ACTORWORK_SCHEDULER__LISTEN": "tcp://0.0.0.0:7400"}
    ).scheduler
    assert wildcard.advertised == ""
    named = load_config(
        path,
        env={
            "ACTORWORK_SCHEDULER__LISTEN": "tcp://0.0.0.0:7400",
            "ACTORWORK_SCHEDULER__ADVERTISE": "tcp://b:7400",
        },
    ).scheduler
    assert named.advertised == "tcp://b:7400"


def test_liveness_timeout_reaches_the_system_and_0_turns_it_off(tmp_path: Path) -> None:
    path = write(tmp_path, "[system]\nliveness_timeout = 4.5\n")
    assert system_from_settings(load_config(path).system).liveness_timeout == 4.5
    path = write(tmp_path, "[system]\nliveness_timeout = 0\n")
    assert system_from_settings(load_config(path).system).liveness_timeout is None
