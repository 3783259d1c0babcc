"""The installed layout of streamlet as a tree of symlinks, for tools that cannot follow
the editable install's import hook (mypy) or must import a copy of the source instead of
the checkout (``make mutants``).

``pyproject.toml`` maps folders into the one package with setuptools ``package-dir``
(``engine/`` is ``streamlet``, ``operators/`` is ``streamlet.operators``, ...). For every
package named there :func:`build_tree` makes a real directory holding one symlink per entry
of its folder (files and subfolders alike, so new modules and subpackages need no edit
here), the other mounted packages nested in it as real directories of their own. Put the
tree's root first on ``sys.path`` (``PYTHONPATH``, ``mypy_path``) and ``import streamlet``
finds the linked source.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

#: Folder entries that are not part of a package's source.
SKIP = {"__pycache__"}


def package_dirs(root: Path) -> dict[str, Path]:
    """``package name -> folder`` from ``root``'s ``[tool.setuptools.package-dir]``."""
    with (root / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    try:
        mapping = config["tool"]["setuptools"]["package-dir"]
    except KeyError:
        sys.exit("pyproject.toml has no [tool.setuptools.package-dir]: nothing to map")
    if "" in mapping:
        sys.exit("pyproject.toml maps the root package (''); a link tree cannot")
    return {name: root / folder for name, folder in mapping.items()}


def build_tree(root: Path, tree: Path) -> dict[str, Path]:
    """Lay out ``tree`` as the installed package of the source at ``root``, every entry a
    symlink to the source; return the mapping it followed."""
    mapping = package_dirs(root)
    for name in {name.split(".")[0] for name in mapping}:
        shutil.rmtree(tree / name, ignore_errors=True)
    # Parents before children, so a mounted package lands in its parent's real directory.
    for name in sorted(mapping, key=lambda n: n.count(".")):
        folder = mapping[name]
        if not (folder / "__init__.py").is_file():
            sys.exit(f"package-dir maps {name} to {folder}, which has no __init__.py")
        here = tree.joinpath(*name.split("."))
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
                    f"{entry.relative_to(root)} has the name of the mounted package "
                    f"{name}.{entry.stem}: one of them would shadow the other once installed"
                )
            (here / entry.name).symlink_to(entry)
    return mapping
