"""Which store serves which URL: ``sqlite:///var/lib/actorwork/jobs.db``, or a bare path.

Shaped like :mod:`actorwork.transports.registry`: built-in backends are imported only
when their scheme is first used, third parties register under the ``actorwork.stores``
entry-point group (``scheme = "package.module:StoreClass"``) or call
:func:`register_store`. A factory is called as ``factory(url, synchronous=...,
read_only=...)`` and returns a :class:`~actorwork.stores.base.JobStore`, not yet open.

URLs: ``sqlite://`` followed by the file's path as written (``sqlite:///abs/jobs.db``
for an absolute path, ``sqlite://jobs.db`` for one relative to the working directory,
``sqlite://:memory:`` for a database that lives as long as the store). A value with no
``scheme://`` is a path to a SQLite file, as before stores had URLs.
``postgresql://user@host:port/database`` (or ``postgres://``) is a PostgreSQL server
(:mod:`actorwork.stores.postgresql`; ``pip install 'actorwork[postgresql]'``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import entry_points

from actorwork._importing import import_object
from actorwork.errors import ConfigError
from actorwork.stores.base import JobStore

__all__ = ["ENTRY_POINT_GROUP", "StoreFactory", "known_stores", "open_store", "register_store"]

ENTRY_POINT_GROUP = "actorwork.stores"

StoreFactory = Callable[..., JobStore]

_BUILTIN: dict[str, str] = {
    "sqlite": "actorwork.stores.sqlite:SQLiteStore",
    "postgresql": "actorwork.stores.postgresql:PostgreSQLStore",
    "postgres": "actorwork.stores.postgresql:PostgreSQLStore",
}
_registered: dict[str, StoreFactory] = {}
_entry_points_loaded = False
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register_store(scheme: str, factory: StoreFactory | str) -> None:
    """Serve ``scheme://`` store URLs with stores made by ``factory`` (or ``"module:attr"``)."""
    _registered[scheme.lower()] = _lazy(factory) if isinstance(factory, str) else factory


def _lazy(target: str) -> StoreFactory:
    def factory(*args: object, **kwargs: object) -> JobStore:
        made: JobStore = import_object(target)(*args, **kwargs)
        return made

    return factory


def _load_entry_points() -> None:
    global _entry_points_loaded  # noqa: PLW0603 - loaded once per process
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _registered.setdefault(entry.name.lower(), _lazy(entry.value))


def known_stores() -> list[str]:
    """Every scheme that has a store: built in, registered or from entry points."""
    _load_entry_points()
    return sorted(set(_BUILTIN) | set(_registered))


def split_url(url: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a store URL; a bare path is ``("sqlite", path)``."""
    matched = _SCHEME.match(url)
    if matched is None:
        return "sqlite", url
    return matched.group(1).lower(), url[matched.end() :]


def open_store(url: str, *, synchronous: str = "normal", read_only: bool = False) -> JobStore:
    """The store ``url`` names, made but not opened; ConfigError lists the known schemes."""
    scheme, _ = split_url(url)
    factory = _registered.get(scheme)
    if factory is None and scheme in _BUILTIN:
        factory = _lazy(_BUILTIN[scheme])
    if factory is None:
        _load_entry_points()
        factory = _registered.get(scheme)
    if factory is None:
        raise ConfigError(
            f"unknown store scheme {scheme!r} in store {url!r} (known: {', '.join(known_stores())})"
        )
    return factory(url, synchronous=synchronous, read_only=read_only)
