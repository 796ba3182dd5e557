"""Which transport serves which address scheme.

Built-in transports are imported only when their scheme is first used, so that,
say, the docker transport's dependencies are not needed by someone using tcp. Third
parties register under the ``actorwork.transports`` entry-point group
(``scheme = "package.module:TransportClass"``) or call :func:`register_transport`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from actorwork._importing import import_object
from actorwork.addressing import Address, parse_address
from actorwork.errors import UnknownSchemeError
from actorwork.transports.base import Transport

__all__ = ["ENTRY_POINT_GROUP", "known_schemes", "register_transport", "resolve_transport"]

ENTRY_POINT_GROUP = "actorwork.transports"

TransportFactory = Callable[[], Transport]

_BUILTIN: dict[str, str] = {
    "inproc": "actorwork.transports.inproc:InProcTransport",
    "pipe": "actorwork.transports.pipe:PipeTransport",
    "unix": "actorwork.transports.unix:UnixTransport",
    "tcp": "actorwork.transports.tcp:TCPTransport",
    "docker": "actorwork.transports.docker:DockerTransport",
}
_registered: dict[str, TransportFactory] = {}
_instances: dict[str, Transport] = {}
_entry_points_loaded = False


def register_transport(scheme: str, factory: TransportFactory | str) -> None:
    """Serve ``scheme://`` addresses with transports made by ``factory``.

    ``factory`` is a zero-argument callable (a Transport subclass will do) or a
    ``"module:attribute"`` string imported on first use. Registering a scheme again
    replaces the earlier factory.
    """
    scheme = scheme.lower()
    _registered[scheme] = _lazy(factory) if isinstance(factory, str) else factory
    _instances.pop(scheme, None)


def _lazy(target: str) -> TransportFactory:
    def factory() -> Transport:
        made = import_object(target)()
        if not isinstance(made, Transport):
            raise TypeError(f"transport factory {target!r} made {made!r}, not a Transport")
        return made

    return factory


def _load_entry_points() -> None:
    global _entry_points_loaded  # noqa: PLW0603 - loaded once per process
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _registered.setdefault(entry.name.lower(), _lazy(entry.value))


def known_schemes() -> list[str]:
    """Every scheme that has a transport: built in, registered or from entry points."""
    _load_entry_points()
    return sorted(set(_BUILTIN) | set(_registered))


def resolve_transport(
    address: str | Address, transport: Transport | None = None
) -> tuple[Address, Transport]:
    """Parse ``address`` and find its transport; a given ``transport`` wins over the registry.

    Raises UnknownSchemeError listing the known schemes.
    """
    parsed = parse_address(address)
    if transport is not None:
        return parsed, transport
    cached = _instances.get(parsed.scheme)
    if cached is not None:
        return parsed, cached
    factory = _registered.get(parsed.scheme)
    if factory is None and parsed.scheme in _BUILTIN:
        factory = _lazy(_BUILTIN[parsed.scheme])
    if factory is None:
        _load_entry_points()
        factory = _registered.get(parsed.scheme)
    if factory is None:
        raise UnknownSchemeError(
            f"unknown transport scheme {parsed.scheme!r} in address {str(parsed)!r} "
            f"(known: {', '.join(known_schemes())})"
        )
    made = factory()
    _instances[parsed.scheme] = made
    return parsed, made
