"""The job the exactly-once tests run, in-process and as a killable subprocess.

Parallel sequence sources -> map to (key, seq) -> key_by -> a per-key sequence check
(Flink's SemanticsCheckMapper idea) -> file sink. Every key's records come from one split in
increasing ``seq``, so the check can tell a lost record (a gap), a repeated one, or one out
of order. The check never raises: it writes ``ALERT`` lines, which the tests look for.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio

from streamlet import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
from streamlet.checkpoints.config import CheckpointingMode
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sinks.file import FileSink, read_committed
from streamlet.state import ValueStateDescriptor

SPLITS = 3
KEYS_PER_SPLIT = 4


def to_key_seq(per_split: int):
    def fn(i: int) -> tuple[str, int]:
        split, offset = divmod(i, per_split)
        return (f"s{split}k{offset % KEYS_PER_SPLIT}", offset // KEYS_PER_SPLIT)

    return fn


class SequenceCheck(KeyedProcessFunction):
    """Emits ``key,seq``; or an ALERT line when ``seq`` is not what the mode allows."""

    def __init__(self, exactly_once: bool = True) -> None:
        self.exactly_once = exactly_once

    def open(self, runtime_context: RuntimeContext) -> None:
        self.last = runtime_context.get_state(ValueStateDescriptor("last"))

    def process_element(self, value: tuple[str, int], ctx: Any):
        key, seq = value
        last = self.last.value()
        expected = 0 if last is None else last + 1
        ok = seq == expected if self.exactly_once else seq <= expected
        if not ok:
            yield f"ALERT {key}: got {seq} after {last}"
        self.last.update(max(seq, -1 if last is None else last))
        yield f"{key},{seq}"


def expected_lines(records: int) -> list[str]:
    per_split = records // SPLITS
    fn = to_key_seq(per_split)
    return sorted(f"{k},{s}" for k, s in map(fn, range(records)))


def build(
    env: StreamExecutionEnvironment,
    records: int,
    out_dir: Path,
    *,
    exactly_once: bool = True,
    delay_s: float = 0.0,
) -> None:
    assert records % SPLITS == 0
    per_split = records // SPLITS

    async def trickle(i: int) -> int:
        if delay_s:
            await anyio.sleep(delay_s)
        else:
            await anyio.lowlevel.checkpoint()
        return i

    (
        env.from_sequence(0, records - 1)
        .uid("source")
        .map(trickle)
        .uid("trickle")
        .map(to_key_seq(per_split))
        .uid("to-key-seq")
        .key_by(lambda t: t[0])
        .process(SequenceCheck(exactly_once))
        .uid("check")
        .sink_to(FileSink(out_dir))
        .uid("sink")
    )


def configure(
    env: StreamExecutionEnvironment,
    checkpoint_dir: Path,
    *,
    mode: CheckpointingMode = CheckpointingMode.EXACTLY_ONCE,
    interval_ms: int = 20,
    restarts: int = 20,
    incremental: bool = False,
    retained: int = 1,
) -> None:
    env.set_parallelism(SPLITS)
    env.enable_checkpointing(interval_ms, mode)
    config = env.get_checkpoint_config()
    config.set_checkpoint_storage_dir(checkpoint_dir)
    config.set_tolerable_checkpoint_failure_number(1000)
    config.enable_incremental_checkpointing(incremental)
    config.set_max_retained_checkpoints(retained)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(restarts, 0))


async def _main(records: int, base: Path, checkpoints: str) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    incremental = checkpoints == "incremental"
    configure(env, base / "checkpoints", incremental=incremental, retained=3 if incremental else 1)
    if checkpoints == "unaligned":
        env.get_checkpoint_config().enable_unaligned_checkpoints()
        env.set_channel_capacity(2)
    build(env, records, base / "out", delay_s=0.02)
    await env.execute("crash-job", restore="latest")


if __name__ == "__main__":
    # python semantics_job.py RECORDS BASE_DIR [aligned|unaligned|incremental]: runs (or
    # resumes) the job to its end, with that kind of checkpoints (aligned full by default).
    anyio.run(_main, int(sys.argv[1]), Path(sys.argv[2]), (sys.argv[3:] or ["aligned"])[0])
    print("lines:", len(read_committed(Path(sys.argv[2]) / "out")))
