"""streamlet's FileSink on Flink: part files that ``read_committed`` reads as it reads
streamlet's, and exactly-once output through a failover."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from streamlet import (
    Encoder,
    FileSink,
    OutputFileConfig,
    RestartStrategies,
    RollingPolicy,
    StreamExecutionEnvironment,
    read_committed,
)

pytestmark = pytest.mark.slow


def _sink(directory, rolling_policy=None):
    config = OutputFileConfig.builder().with_part_prefix("out").with_part_suffix(".txt").build()
    builder = FileSink.for_row_format(str(directory), Encoder.simple_string_encoder())
    builder = builder.with_output_file_config(config)
    if rolling_policy is not None:
        builder = builder.with_rolling_policy(rolling_policy)
    return builder.build()


def test_file_sink_output_reads_as_on_streamlet(tmp_path) -> None:
    words = ["to", "be", "or", "not", "to", "be", "ünïcode"]
    directories = {}
    for runner in ("local", "flink"):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(1)
        directory = directories[runner] = tmp_path / runner
        env.from_collection(words).map(lambda w: (w, len(w))).sink_to(_sink(directory))
        env.execute(f"file sink on {runner}", runner=runner)
    # A stray in-progress file and a file of another prefix are not committed output.
    (directories["flink"] / ".out-x-0.txt.inprogress.y").write_text("('hidden', 0)\n")
    (directories["flink"] / "other-0.txt").write_text("('other', 0)\n")
    local = read_committed(directories["local"], prefix="out", suffix=".txt")
    flink = read_committed(directories["flink"], prefix="out", suffix=".txt")
    assert flink == local == [str((w, len(w))) for w in words]
    # Flink's FileSink wrote the part files directly into the directory.
    assert [p.name for p in directories["flink"].iterdir() if p.is_dir()] == []


class _FailOnce:
    """Fails once, at the first record from ``at`` on that finds committed part files in
    ``directory`` (a checkpoint completed and committed some of this attempt's output);
    a marker file, seen by the Python workers of both attempts, says it failed already and
    how many files were committed then. Slowed, so both subtasks look for seconds while
    checkpoints (every 100 ms) complete, also on a loaded machine."""

    def __init__(self, marker: str, directory: str, at: int) -> None:
        self.marker = marker
        self.directory = directory
        self.at = at

    def __call__(self, value: int) -> str:
        time.sleep(0.002)
        if value >= self.at and not os.path.exists(self.marker):
            committed = [n for n in os.listdir(self.directory) if not n.startswith(".")]
            if committed:
                with open(self.marker, "w") as f:
                    f.write(str(len(committed)))
                raise RuntimeError("injected failure")
        return f"line {value}"


def test_file_sink_failover_commits_every_line_exactly_once(tmp_path) -> None:
    n = 4000
    marker = str(tmp_path / "failed")
    directory = tmp_path / "out"
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(100)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    sink = _sink(directory, RollingPolicy.on_checkpoint_rolling_policy())
    (
        env.from_collection(list(range(n)))
        .map(_FailOnce(marker, str(directory), at=n // 4))
        .sink_to(sink)
        .uid("files")
    )
    env.execute("file sink failover", runner="flink")
    assert os.path.exists(marker), "no part file was committed before the input ended"
    with open(marker) as f:
        assert int(f.read()) > 0  # the first attempt had committed output when it failed
    committed = read_committed(directory, prefix="out", suffix=".txt")
    expected = [f"line {v}" for v in range(n)]
    assert Counter(committed) == Counter(expected)  # no line lost, none twice
