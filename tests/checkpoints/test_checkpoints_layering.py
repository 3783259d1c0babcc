"""``checkpoints`` may import ``state`` and itself only; its leaves import no sibling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "checkpoints"
LEAVES = {"errors.py", "events.py", "config.py", "layout.py"}
LOWER = {"checkpoints", "state"}  # streamlet.<these>: what checkpoints may import


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(relative level, module) for every import in ``path``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


MODULES = sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_never_imports_operators_or_engine(path):
    for level, module in imports_of(path):
        parts = module.split(".")
        ours_above = parts[0] == "streamlet" and (len(parts) == 1 or parts[1] not in LOWER)
        assert level > 1 or not ours_above, f"{path.name} imports {module}"
        assert level < 2, f"{path.name} imports {'.' * level}{module} (outside checkpoints)"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name in LEAVES], ids=lambda p: p.name)
def test_leaves_import_no_sibling(path):
    assert [m for level, m in imports_of(path) if level > 0] == []
