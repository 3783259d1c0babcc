"""Type-check streamlet in its installed layout: ``python .ci/typecheck.py [mypy args]``.

``pyproject.toml`` maps folders into the one package with setuptools ``package-dir``
(``engine/`` is ``streamlet``, ``operators/`` is ``streamlet.operators``, ...), and the
editable install resolves that with an import-hook finder, which a type checker cannot
follow. So this builds a throwaway link tree, ``build/typecheck/streamlet/``, with the final
layout (:mod:`linktree`). mypy then
checks ``-p streamlet`` through ``mypy_path = build/typecheck`` (``[tool.mypy]``) plus the
code that uses the package (tests, bench, examples). Error paths that point into the tree are
rewritten to the real files, so an editor's jump-to-error lands in ``engine/...``.

The tree is rebuilt on every run (it is only links); mypy's cache stays beside it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from linktree import build_tree
from mypy import api

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
#: Code outside the package that imports it; checked with the package's own types.
USERS = ("tests", "bench", "examples", ".ci/linktree.py", ".ci/typecheck.py", ".ci/mutants.py")
#: ``path:line: ...`` at the start of a mypy output line.
LOCATION = re.compile(r"^(?P<path>[^:\s][^:]*\.pyi?)(?P<rest>:.*)$")


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
    mapping = build_tree(ROOT, TREE)
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
