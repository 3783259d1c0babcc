"""DESIGN §1: arrows point down only (engine -> operators -> checkpoints -> state).

The four top-level folders are the layers of the one package ``streamlet``: ``engine/`` is
``streamlet`` itself, the others are mounted as ``streamlet.operators``, ``streamlet.state``
and ``streamlet.checkpoints`` (``pyproject.toml``). Parses every module with ``ast`` and
fails on an import against that direction, like trio's test that keeps ``trio._core``
self-contained; and on any import under the folders' own names, which are not importable
once installed (they are the user's names: a ``state.py`` beside a job script).
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
LOWER = ("operators", "state", "checkpoints")
#: Everything that imports the package: its own layers, and what uses it.
USERS = ("tests", "bench", "examples")


def layer_of(module: str) -> str | None:
    """The layer an absolute module name belongs to, ``None`` if not ours."""
    parts = module.split(".")
    if parts[0] != "streamlet":
        return None
    if len(parts) > 1 and parts[1] in LOWER:
        return parts[1]
    return "engine"


#: engine's sub-layers, top to bottom; each may import itself and those after it. The
#: modules at the package's root: ``errors`` (importable from every sub-layer), the facade
#: ``__init__`` and ``__main__`` (above them all).
SUBLAYERS = ("cli", "testing", "api", "web", "flink", "job", "runtime", "graph")


def sublayer_of(module: str) -> str:
    """The sub-layer of an engine module name (``streamlet.job.runner`` -> ``job``)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in SUBLAYERS:
        return parts[1]
    return "errors" if parts[1:] == ["errors"] else "facade"


def _sublayer_allows(importer: str, imported: str) -> bool:
    if imported == "errors" or importer == "facade":
        return True
    if importer == "errors" or imported == "facade":
        return False
    return SUBLAYERS.index(imported) >= SUBLAYERS.index(importer)


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """``(line, module, relative level)`` of every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", node.level))
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(pkg, path) for pkg in ALLOWED for path in sorted((ROOT / pkg).rglob("*.py"))]


def _violations(package: str, path: Path, root: Path = ROOT) -> list[str]:
    depth = len(path.relative_to(root / package).parts) - 1  # packages below the layer's top
    bad = []
    for line, module, level in _imports(path):
        where = f"{path.relative_to(root)}:{line}"
        if level > depth + 1:
            bad.append(f"{where} imports {'.' * level}{module}, above its layer")
            continue
        if level:
            continue
        if module.split(".")[0] in ALLOWED:
            bad.append(f"{where} imports {module}: use streamlet's name for it")
        layer = layer_of(module)
        if layer is not None and layer not in ALLOWED[package]:
            bad.append(f"{where} imports {module} ({layer}, a layer above)")
        elif package == "engine" and layer == "engine":
            importer = sublayer_of(_module_name(path, root))
            imported = sublayer_of(module)
            if not _sublayer_allows(importer, imported):
                bad.append(f"{where} imports {module} ({imported}, above {importer})")
    return bad


def _module_name(path: Path, root: Path = ROOT) -> str:
    """``engine/job/runner.py`` -> ``streamlet.job.runner`` (the layer folders likewise)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    parts[0] = "streamlet" if parts[0] == "engine" else f"streamlet.{parts[0]}"
    return ".".join(parts)


@pytest.mark.parametrize(("package", "path"), _modules(), ids=lambda v: str(v))
def test_module_imports_only_downward(package: str, path: Path) -> None:
    bad = _violations(package, path)
    assert not bad, "imports against DESIGN §1's direction:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "path",
    [
        p
        for folder in USERS
        for p in sorted((ROOT / folder).rglob("*.py"))
        if "fixtures" not in str(p)
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_users_import_the_package_by_its_one_name(path: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for line, module, level in _imports(path)
        if level == 0 and module.split(".")[0] in ALLOWED and not module.startswith("tests")
    ]
    assert not bad, "use streamlet's names:\n" + "\n".join(bad)


def test_sublayer_check_detects_a_violation(tmp_path: Path) -> None:
    runtime = tmp_path / "engine" / "runtime"
    runtime.mkdir(parents=True)
    bad = runtime / "bad.py"
    bad.write_text(
        "from streamlet.graph.plan import JobPlan\n"
        "from streamlet.errors import JobExecutionError\n"
        "from streamlet.job.runner import JobRunner\n"
        "from streamlet import StreamExecutionEnvironment\n"
    )
    found = _violations("engine", bad, tmp_path)
    assert [v.split(" ", 1)[0] for v in found] == [
        "engine/runtime/bad.py:3",
        "engine/runtime/bad.py:4",
    ]


def test_layering_check_detects_a_violation(tmp_path: Path) -> None:
    layer = tmp_path / "state"
    layer.mkdir()
    bad = layer / "bad.py"
    bad.write_text(
        "from streamlet import StreamExecutionEnvironment\n"
        "from streamlet.checkpoints.config import CheckpointConfig\n"
        "from state.serde import Serializer\n"
        "from ..operators import core\n"
    )
    found = _violations("state", bad, tmp_path)
    assert [v.split(" ", 1)[0] for v in found] == [
        "state/bad.py:1",
        "state/bad.py:2",
        "state/bad.py:3",
        "state/bad.py:4",
    ]


def _module_graph() -> dict[str, set[str]]:
    """Every module of the four folders -> the modules of ours it imports (type-only imports
    too: a cycle of them still ties two files into one)."""
    paths = {_module_name(path): path for _, path in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for _, module, level in _imports(path):
            if level:
                base = package.split(".")[: len(package.split(".")) - (level - 1)]
                module = ".".join([*base, module] if module else base)
            found.add(module)
        for node in ast.walk(ast.parse(path.read_text())):  # `from pkg import module`
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        # A module's own parent packages are imported with it: not an edge of a cycle.
        graph[name] = {
            m for m in found if m in paths and m != name and not name.startswith(m + ".")
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_files() -> None:
    cycles = _cycles(_module_graph())
    assert not cycles, "modules that import each other (directly or around a loop):\n" + (
        "\n".join(" <-> ".join(c) for c in cycles)
    )


def test_cycle_check_detects_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert "streamlet.job.runner" in _module_graph()["streamlet.job.client"]
