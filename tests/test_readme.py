"""The README is true, line by line: every code block runs as written, or says which test
covers it.

A block is marked by an HTML comment on the line right above its fence:

- no mark: a ``python`` block runs as a script (in a temporary directory, with this
  checkout importable) and must exit 0; a ``toml`` block must load as a config file;
- ``<!-- fragment: tests/PATH.py::NAME -->``: a piece of a larger program, covered by
  that test, which must exist;
- ``<!-- main-command -->`` and ``<!-- test-command -->``: the two set-up commands; CI
  runs the second, and a test below runs the first in a fresh virtual environment.

A ``sh`` or ``console`` block must carry a mark: commands that start servers or build
images are covered by the tests named.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from actorwork.config import load_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    mark: str
    text: str

    @property
    def name(self) -> str:
        return f"README.md:{self.line}:{self.language or 'text'}"


def blocks(path: Path = README) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        mark = ""
        if index > 0 and (marked := MARK.match(lines[index - 1])):
            mark = marked.group(1)
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        text = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(Block(index + 1, opened.group(1), mark, text))
        index = end + 1
    return found


def _ids(chosen: list[Block]) -> list[str]:
    return [block.name for block in chosen]


PYTHON = [b for b in blocks() if b.language == "python" and not b.mark]
TOML = [b for b in blocks() if b.language == "toml" and not b.mark]
MARKED = [b for b in blocks() if b.mark.startswith("fragment")]
SHELL = [b for b in blocks() if b.language in ("sh", "console", "bash")]


def test_the_readme_has_blocks_of_each_kind() -> None:
    assert PYTHON
    assert TOML
    assert MARKED


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_a_python_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "readme_block.py"
    script.write_text(block.text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    env.pop("ACTORWORK_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("block", TOML, ids=_ids(TOML))
def test_a_toml_block_is_a_valid_config(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "actorwork.toml"
    path.write_text(block.text)
    load_config(path, env={})


@pytest.mark.parametrize("block", MARKED, ids=_ids(MARKED))
def test_a_fragment_names_a_test_that_exists(block: Block) -> None:
    target = block.mark.partition(":")[2].strip()
    assert target, f"{block.name}: a fragment names the test that covers it"
    file, _, name = target.partition("::")
    path = ROOT / file
    assert path.is_file(), f"{block.name}: {file} does not exist"
    if name:
        assert re.search(rf"^(async )?def {re.escape(name)}\(", path.read_text(), re.M), (
            f"{block.name}: no test {name} in {file}"
        )


@pytest.mark.parametrize("block", SHELL, ids=_ids(SHELL))
def test_a_shell_block_is_marked(block: Block) -> None:
    assert block.mark, f"{block.name}: a shell block says which test or command covers it"


def test_the_parser_sees_marks_and_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- fragment: tests/test_readme.py::test_x -->\n```python\nx = 1\n```\n"
        "```toml\n[jobs]\n```\n"
    )
    found = blocks(page)
    assert [(b.language, b.mark, b.text) for b in found] == [
        ("python", "fragment: tests/test_readme.py::test_x", "x = 1\n"),
        ("toml", "", "[jobs]\n"),
    ]


@pytest.mark.slow
def test_the_main_command_runs_in_a_fresh_environment(tmp_path: Path) -> None:
    """The first set-up command, as written, in a fresh venv made from this checkout."""
    (command,) = [b.text.strip() for b in blocks() if b.mark == "main-command"]
    assert command.startswith("python3 -m venv .venv")
    venv = tmp_path / "venv"
    work = tmp_path / "work"
    work.mkdir()
    # The same steps, with the venv outside the checkout and the checkout by path.
    steps = command.replace(".venv/bin/", f"{venv}/bin/").replace(
        "python3 -m venv .venv", f"{sys.executable} -m venv {venv}"
    )
    steps = steps.replace("install -q -e .", f"install -q -e {ROOT}")
    done = subprocess.run(
        ["bash", "-c", steps],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ACTORWORK_CONFIG")},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout
