"""The package's imports point down the layers of DESIGN.md, and close no circle.

Every module's imports are read with ``ast`` (imports inside functions included; those
under ``if TYPE_CHECKING:`` left out, since they never run). A module may import its
own layer and the layers below it; an import from a lower layer to a higher one, an
import circle, or a module that belongs to no layer fails with the files named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "actorwork"

#: Bottom first. A module belongs to the longest prefix listed; a new room goes here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "actorwork._importing",
            "actorwork._log",
            "actorwork._version",
            "actorwork.errors",
            "actorwork.addressing",
            "actorwork.clock",
        ),
    ),
    ("transports", ("actorwork.transports",)),
    (
        "messages",
        ("actorwork.messages", "actorwork.codec", "actorwork.schedules", "actorwork.events"),
    ),
    ("runtime", ("actorwork.runtime",)),
    (
        "work",
        (
            "actorwork.work",
            "actorwork.worker",
            "actorwork.output",
            "actorwork.capture",
            "actorwork.middleware",
            "actorwork.workflow",
        ),
    ),
    ("stores and docker", ("actorwork.stores", "actorwork.docker")),
    ("roles", ("actorwork.scheduler", "actorwork.pool")),
    (
        "client",
        (
            "actorwork.config",
            "actorwork.node",
            "actorwork.client",
            "actorwork.event_stream",
            "actorwork.topology",
            "actorwork.sync",
            "actorwork.tracing",
        ),
    ),
    ("edges", ("actorwork.chromium", "actorwork.cli", "actorwork.testing", "actorwork.web")),
    ("face", ("actorwork", "actorwork.__main__")),
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # The package itself (its face) holds only itself, not everything below it.
            nested = "." in prefix and module.startswith(prefix + ".")
            longer = best is None or len(prefix) > best[0]
            if (module == prefix or nested) and longer:
                best = (len(prefix), index)
    return None if best is None else best[1]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def imports_of(path: Path, module: str, modules: set[str]) -> dict[str, int]:
    """The package modules ``path`` imports, each with the line of its first import."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_nodes(tree)
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != module:
            found.setdefault(target, line)

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "actorwork":
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "actorwork":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in modules else base, node.lineno)
    return found


def graph(root: Path) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    names = set(paths)
    return paths, {m: imports_of(p, m, names) for m, p in paths.items()}


def layer_violations(root: Path) -> list[str]:
    paths, edges = graph(root)
    problems: list[str] = []
    for module, targets in edges.items():
        here = layer_of(module)
        if here is None:
            problems.append(f"{paths[module]}: {module} belongs to no layer (add it to LAYERS)")
            continue
        for target, line in targets.items():
            there = layer_of(target)
            if there is not None and there > here:
                problems.append(
                    f"{paths[module]}:{line}: {module} ({LAYERS[here][0]}) imports "
                    f"{target} ({LAYERS[there][0]}), a higher layer, in {paths[target]}"
                )
    return problems


def cycles(root: Path) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), as a list each."""
    _, edges = graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_imports_only_point_down() -> None:
    problems = layer_violations(PACKAGE)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_no_import_closes_a_circle() -> None:
    found = cycles(PACKAGE)
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


# --- the checks themselves catch what they are for ---------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "actorwork"
    for name in ("__init__.py", "errors.py", "transports/__init__.py", "transports/tcp.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    (root / "runtime").mkdir()
    (root / "runtime" / "__init__.py").write_text("")
    (root / "runtime" / "system.py").write_text("from actorwork.transports import tcp\n")
    return root


def test_an_upward_import_inside_a_function_is_named(tree: Path) -> None:
    (tree / "transports" / "tcp.py").write_text(
        "def child():\n    from actorwork.runtime.system import start\n"
    )
    problems = layer_violations(tree)
    assert len(problems) == 1
    assert "transports/tcp.py:2" in problems[0]
    assert "runtime/system.py" in problems[0]


def test_an_import_for_type_checking_only_is_allowed(tree: Path) -> None:
    (tree / "transports" / "tcp.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from actorwork.runtime.system import ActorSystem\n"
    )
    assert layer_violations(tree) == []
    assert cycles(tree) == []


def test_a_circle_within_one_layer_is_found(tree: Path) -> None:
    (tree / "transports" / "_a.py").write_text("from actorwork.transports import _b\n")
    (tree / "transports" / "_b.py").write_text("def f():\n    from . import _a\n")
    assert cycles(tree) == [["actorwork.transports._a", "actorwork.transports._b"]]


def test_a_module_outside_every_layer_is_named(tree: Path) -> None:
    (tree / "gadgets.py").write_text("")
    assert layer_violations(tree) == [
        f"{tree / 'gadgets.py'}: actorwork.gadgets belongs to no layer (add it to LAYERS)"
    ]
