"""The joins section written for the README (README_SECTION.md) runs as it is.

Its python block is a program (imports from ``streamlet`` only); it asserts its own output.
When the section moves into README.md, tests/test_readme.py runs it there and this test
goes with README_SECTION.md.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

SECTION = Path(__file__).resolve().parent.parent / "README_SECTION.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```\s*$", text, re.M | re.S)


def test_the_joins_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _python_blocks(SECTION.read_text())
    assert len(blocks) == 1
    script = tmp_path / "joins_example.py"
    script.write_text(blocks[0])
    runpy.run_path(str(script), run_name="__main__")
    assert "alice paid 25 for book at 1500" in capsys.readouterr().out
