"""Settings from a TOML file and the environment, validated when loaded.

Where the file comes from, first match wins: the ``path`` argument (the CLI's
``--config``), ``$ACTORWORK_CONFIG``, ``./actorwork.toml``; with none of them the
embedded defaults apply. Environment variables override single keys:
``ACTORWORK_SYSTEM__LISTEN=tcp://127.0.0.1:7400`` sets ``[system] listen``, and
``ACTORWORK_ACTORS__GREETER__ADDRESS=...`` sets ``[actors.greeter] address`` (double
underscores separate levels; values are converted to the key's type).

::

    [system]                       # this process's actor system
    name = "demo"
    listen = "tcp://127.0.0.1:7400"
    secret_file = "/etc/actorwork/secret"

    [actors.greeter]               # where an actor lives; moving it is a one-line change
    factory = "myapp.actors:Greeter"
    address = "unix:///run/myapp/greeter.sock"

Every error is a :class:`~actorwork.errors.ConfigError` naming the file, the key and
the value, and listing the choices where there are some.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from actorwork.addressing import parse_address
from actorwork.errors import ActorworkError, ConfigError
from actorwork.transports._framing import DEFAULT_MAX_FRAME_SIZE
from actorwork.transports.registry import resolve_transport

__all__ = ["ActorPlacement", "Config", "SystemSettings", "find_config_file", "load_config"]

ENV_PREFIX = "ACTORWORK_"
DEFAULT_FILE = "actorwork.toml"


class SystemSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[system]``: the actor system of this process."""

    name: str = "actorwork"
    listen: str = ""
    secret: str = ""
    secret_file: str = ""
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    handshake_timeout: float = 5.0
    mailbox_capacity: int = 1024
    ask_timeout: float = 30.0

    def secret_bytes(self) -> bytes | None:
        """The shared secret, from ``secret`` or the file ``secret_file``."""
        if self.secret:
            return self.secret.encode()
        if self.secret_file:
            try:
                return Path(self.secret_file).read_bytes().strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"system.secret_file = {self.secret_file!r} cannot be read: {exc.strerror}"
                ) from exc
        return None


class ActorPlacement(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[actors.NAME]``: which class an actor is and which system hosts it."""

    factory: str
    address: str


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole configuration file. ``source`` says where it came from."""

    system: SystemSettings = SystemSettings()
    actors: dict[str, ActorPlacement] = {}
    source: str = "defaults"


def find_config_file(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The file to load, per the order in the module docstring; None for the defaults."""
    env = os.environ if env is None else env
    if path is not None:
        return Path(path)
    if env.get("ACTORWORK_CONFIG"):
        return Path(env["ACTORWORK_CONFIG"])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load, override from ``env`` (default ``os.environ``) and validate the configuration."""
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    raw: dict[str, Any] = {}
    source = "defaults"
    if file is not None:
        source = str(file)
        try:
            raw = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {source!r} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"config file {source!r} cannot be read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {source!r} is not valid TOML: {exc}") from exc
    if _apply_env(raw, env):
        source += " + environment"
    raw["source"] = source
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, raw, source)) from None
    _check(config)
    return config


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> bool:
    applied = False
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key or key == "ACTORWORK_CONFIG":
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX) :].split("__")]
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"environment variable {key} sets inside {part!r}, which is not a table"
                )
            node = child
        node[path[-1]] = value
        applied = True
    return applied


def _explain(exc: msgspec.ValidationError, raw: Mapping[str, Any], source: str) -> str:
    """Turn msgspec's ``... - at `$.system.port``` into a message naming key and value."""
    text = str(exc)
    problem, _, where = text.partition(" - at `")
    key = where.rstrip("`").removeprefix("$.").removeprefix("$")
    value: Any = raw
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            value = None
            break
    shown = f" = {value!r}" if value is not None and not isinstance(value, Mapping) else ""
    return f"{source}: {key or 'top level'}{shown}: {problem}"


def _check(config: Config) -> None:
    system = config.system
    where = config.source
    positive = {
        "max_frame_size": system.max_frame_size,
        "handshake_timeout": system.handshake_timeout,
        "mailbox_capacity": system.mailbox_capacity,
        "ask_timeout": system.ask_timeout,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{where}: system.{key} = {value!r} must be greater than 0")
    if system.max_frame_size < 1024:
        raise ConfigError(
            f"{where}: system.max_frame_size = {system.max_frame_size!r} must be at least 1024"
        )
    if system.listen:
        _check_address("system.listen", system.listen, where)
    for name, placement in config.actors.items():
        _check_address(f"actors.{name}.address", placement.address, where)
        module, sep, attribute = placement.factory.partition(":")
        if not (module and sep and attribute):
            raise ConfigError(
                f"{where}: actors.{name}.factory = {placement.factory!r} must look "
                "like 'package.module:ClassName'"
            )


def _check_address(key: str, value: str, where: str) -> None:
    try:
        address, transport = resolve_transport(parse_address(value))
        transport.check_address(address)
    except ActorworkError as exc:
        raise ConfigError(f"{where}: {key} = {value!r}: {exc}") from None
