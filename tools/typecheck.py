"""Type-check streamlet in its installed layout: ``python tools/typecheck.py [mypy args]``.

``pyproject.toml`` maps folders into the one package with setuptools ``package-dir``
(``engine/`` is ``streamlet``, ``operators/`` is ``streamlet.operators``, ...), and the
editable install resolves that with an import-hook finder, which a type checker cannot
follow. So this builds a throwaway link tree, ``build/typecheck/streamlet/``, with the final
layout: for every package named in ``package-dir``, a real directory holding one symlink per
entry of its folder (files and subfolders alike, so new modules and subpackages need no edit
here), the other mounted packages nested in it as real directories of their own. mypy then
checks ``-p streamlet`` through ``mypy_path = build/typecheck`` (``[tool.mypy]``) plus the
code that uses the package (tests, bench, examples). Error paths that point into the tree are
rewritten to the real files, so an editor's jump-to-error lands in ``engine/...``.

The tree is rebuilt on every run (it is only links); mypy's cache stays beside it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
#: Code outside the package that imports it; checked with the package's own types.
USERS = ("tests", "bench", "examples", "tools")
#: Folder entries that are not part of a package's source.
SKIP = {"__pycache__"}
#: ``path:line: ...`` at the start of a mypy output line.
LOCATION = re.compile(r"^(?P<path>[^:\s][^:]*\.pyi?)(?P<rest>:.*)$")


def package_dirs() -> dict[str, Path]:
    """``package name -> folder`` from ``[tool.setuptools.package-dir]``."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    try:
        mapping = config["tool"]["setuptools"]["package-dir"]
    except KeyError:
        sys.exit("pyproject.toml has no [tool.setuptools.package-dir]: nothing to map")
    if "" in mapping:
        sys.exit("pyproject.toml maps the root package (''); tools/typecheck.py cannot")
    return {name: ROOT / folder for name, folder in mapping.items()}


def build_tree(mapping: dict[str, Path]) -> None:
    """Lay out ``TREE`` as the installed package, every entry a symlink to the source."""
    for name in {name.split(".")[0] for name in mapping}:
        shutil.rmtree(TREE / name, ignore_errors=True)
    # Parents before children, so a mounted package lands in its parent's real directory.
    for name in sorted(mapping, key=lambda n: n.count(".")):
        folder = mapping[name]
        if not (folder / "__init__.py").is_file():
            sys.exit(f"package-dir maps {name} to {folder}, which has no __init__.py")
        here = TREE.joinpath(*name.split("."))
        if here.is_symlink():
            sys.exit(
                f"package-dir mounts {name} inside a folder that is linked whole; "
                f"map its parent package too"
            )
        here.mkdir(parents=True, exist_ok=True)
        mounted = {n.rpartition(".")[2] for n in mapping if n.rpartition(".")[0] == name}
        for entry in sorted(folder.iterdir()):
            if entry.name in SKIP or mapping.get(f"{name}.{entry.name}") == entry:
                continue  # a mounted package's own folder, laid out on its own
            if entry.stem in mounted:
                sys.exit(
                    f"{entry.relative_to(ROOT)} has the name of the mounted package "
                    f"{name}.{entry.stem}: one of them would shadow the other once installed"
                )
            (here / entry.name).symlink_to(entry)


def real_path(line: str) -> str:
    """``line`` with a location inside ``TREE`` replaced by the source file's path."""
    match = LOCATION.match(line)
    if match is None:
        return line
    path = Path(match["path"])
    absolute = path if path.is_absolute() else ROOT / path
    if TREE not in absolute.parents:
        return line
    source = Path(os.path.realpath(absolute))
    try:
        shown = source.relative_to(ROOT)
    except ValueError:
        shown = source
    return f"{shown}{match['rest']}"


def main(argv: list[str]) -> int:
    mapping = package_dirs()
    build_tree(mapping)
    packages = sorted({f"build/typecheck/{name.split('.')[0]}" for name in mapping})
    targets = [*packages, *(d for d in USERS if (ROOT / d).is_dir())]
    os.chdir(ROOT)
    stdout, stderr, status = api.run([*argv, *targets])
    for line in stdout.splitlines():
        print(real_path(line))
    if stderr:
        print(stderr, end="", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
