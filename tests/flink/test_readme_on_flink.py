"""The README's programs on Flink: each python block runs with ``execute`` and
``execute_and_collect`` on ``runner="flink"`` and its own assertions must hold, or it is one
of the few that use what does not translate, and is refused before the JVM, naming that.

(``execute_async`` stays on streamlet: its blocks embed a job in an asyncio application,
with streamlet's JobClient, dashboard or push sources.)"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamlet.api.datastream import DataStream
from streamlet.api.environment import StreamExecutionEnvironment
from streamlet.flink import FlinkTranslationError
from tests.test_readme import PROGRAMS, Block

pytestmark = pytest.mark.slow

#: Blocks that show what runs only on streamlet: a line of the block -> the refused feature.
REFUSED = {
    "inject_faults(env": "fault injection",
    "ctx.apply_to_keyed_state(": "apply_to_keyed_state",
    ".interval_join(": "interval_join",
}


def _refused_for(block: Block) -> str | None:
    return next((feature for line, feature in REFUSED.items() if line in block.body), None)


def test_the_refused_blocks_are_still_in_the_readme() -> None:
    for line in REFUSED:
        assert any(line in block.body for block in PROGRAMS), line


@pytest.mark.parametrize("block", PROGRAMS, ids=str)
def test_readme_program_on_flink(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.marker and block.marker.startswith("not-run"):
        pytest.skip(block.marker.partition(":")[2].strip() or "marked not-run")
    collect, execute = DataStream.execute_and_collect, StreamExecutionEnvironment.execute

    def on_flink_collect(self: Any, *args: Any, runner: str = "flink", **kw: Any) -> Any:
        return collect(self, *args, runner=runner, **kw)

    def on_flink_execute(self: Any, *args: Any, runner: str = "flink", **kw: Any) -> Any:
        return execute(self, *args, runner=runner, **kw)

    monkeypatch.setattr(DataStream, "execute_and_collect", on_flink_collect)
    monkeypatch.setattr(StreamExecutionEnvironment, "execute", on_flink_execute)
    monkeypatch.chdir(tmp_path)
    refused = _refused_for(block)
    code = compile(block.body, str(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)

    def run() -> None:
        result = eval(code, {"__name__": "__readme__"})
        if result is not None:

            async def main() -> None:
                await result

            anyio.run(main)

    if refused is None:
        run()
    else:
        with pytest.raises(FlinkTranslationError, match=refused):
            run()
