"""DESIGN §1: arrows point down only (engine -> operators -> checkpoints -> state).

Parses every module with ``ast`` and fails on an import against that direction, like trio's
test that keeps ``trio._core`` self-contained.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "state": {"state"},
    "checkpoints": {"checkpoints", "state"},
    "operators": {"operators", "checkpoints", "state"},
    "engine": {"engine", "operators", "checkpoints", "state"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(pkg, path) for pkg in ALLOWED for path in sorted((ROOT / pkg).rglob("*.py"))]


@pytest.mark.parametrize(("package", "path"), _modules(), ids=lambda v: str(v))
def test_module_imports_only_downward(package: str, path: Path) -> None:
    ours = set(ALLOWED)
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for line, name in _imports(path)
        if name in ours and name not in ALLOWED[package]
    ]
    assert not bad, "imports against DESIGN §1's direction:\n" + "\n".join(bad)


def test_layering_check_detects_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from engine import StreamExecutionEnvironment\n")
    assert ("engine" in {name for _, name in _imports(bad)}) and "engine" not in ALLOWED["state"]
