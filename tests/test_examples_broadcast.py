"""The broadcast state section written for the README (README_SECTION.md) runs as shown.

Once the section moves into README.md, tests/test_readme.py runs it there too; this test then
targets the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SECTION = Path(__file__).resolve().parent.parent / "README_SECTION.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```\s*$", text, re.M | re.S)


def test_the_broadcast_example_runs_and_prints_the_alerts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = _python_blocks(SECTION.read_text())
    assert len(blocks) == 1
    exec(compile(blocks[0], str(SECTION), "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip() == "['s1: 61 > 50', 's2: 57 > 50']"
