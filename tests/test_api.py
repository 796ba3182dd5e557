"""The names ``actorwork`` exports: what a user constructs, and nothing a config starts."""

from __future__ import annotations

import actorwork
from actorwork.node import Node


def test_every_exported_name_exists() -> None:
    missing = [name for name in actorwork.__all__ if not hasattr(actorwork, name)]
    assert missing == []


def test_node_is_exported() -> None:
    assert "Node" in actorwork.__all__
    assert actorwork.Node is Node


def test_roles_a_configuration_starts_are_imported_from_their_packages() -> None:
    assert {"Pool", "Scheduler", "Worker"}.isdisjoint(actorwork.__all__)
