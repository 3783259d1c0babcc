"""Tests of PyFlink's file connector API: ``FileSink.for_row_format`` with its settings
(encoder, output file config, rolling policies, bucket assigner) and
``FileSource.for_record_stream_format`` over files and directories, exactly once."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

import streamlet
from streamlet import (
    BucketAssigner,
    Duration,
    Encoder,
    FileSink,
    FileSource,
    OutputFileConfig,
    RestartStrategies,
    RollingPolicy,
    StreamExecutionEnvironment,
    StreamFormat,
    WatermarkStrategy,
    read_committed,
)
from streamlet.operators.base import OperatorContext
from streamlet.operators.processing_time import ManualClock, ProcessingTimeService
from streamlet.operators.sinks.two_phase import RestoredTransactionError
from streamlet.operators.sources.base import SourceReader
from streamlet.state.operator_state import OperatorStateBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_ctx(
    blobs: list[bytes] | None = None, clock: ManualClock | None = None, attempt: int = 0
) -> OperatorContext:
    backend = OperatorStateBackend("files")
    if blobs is not None:
        backend.restore(blobs, 0, 1)
    return OperatorContext(
        operator_name="File Sink",
        operator_uid="files",
        subtask_index=0,
        parallelism=1,
        max_parallelism=128,
        job_name="test",
        attempt=attempt,
        operator_state=backend,
        restored=blobs is not None,
        processing_time=None if clock is None else ProcessingTimeService(clock),
    )


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def row_sink(out: Path, policy: RollingPolicy | None = None, suffix: str = ".ext") -> FileSink:
    builder = FileSink.for_row_format(str(out), Encoder.simple_string_encoder())
    builder = builder.with_output_file_config(
        OutputFileConfig.builder().with_part_prefix("pre").with_part_suffix(suffix).build()
    )
    if policy is not None:
        builder = builder.with_rolling_policy(policy)
    return builder.build()


# --- the sink's builder and settings ---


def _any(value: Any) -> Any:
    """A wrongly typed argument, past the type checker."""
    return value


def test_builder_round_trip(tmp_path: Path) -> None:
    policy = RollingPolicy.default_rolling_policy(
        part_size=10, rollover_interval=Duration.of_seconds(2), inactivity_interval=500
    )
    sink = (
        FileSink.for_row_format(f"file://{tmp_path}/out", Encoder.simple_string_encoder("latin-1"))
        .with_output_file_config(OutputFileConfig("pre", ".csv"))
        .with_rolling_policy(policy)
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_bucket_check_interval(1000)
        .disable_compact()
        .build()
    )
    assert isinstance(sink, FileSink)
    assert sink.directory == tmp_path / "out" and (tmp_path / "out").is_dir()
    assert (sink.prefix, sink.suffix, sink.encoding) == ("pre", ".csv", "latin-1")
    assert sink.rolling_policy is policy
    assert (policy.part_size, policy.rollover_interval_ms, policy.inactivity_interval_ms) == (
        10,
        2000,
        500,
    )


def test_builder_defaults_are_flinks(tmp_path: Path) -> None:
    sink = FileSink.for_row_format(str(tmp_path), Encoder.simple_string_encoder()).build()
    assert (sink.prefix, sink.suffix, sink.encoding) == ("part", "", "UTF-8")
    assert isinstance(sink.rolling_policy, streamlet.DefaultRollingPolicy)
    assert sink.rolling_policy.part_size == 128 * 1024 * 1024
    assert sink.rolling_policy.rollover_interval_ms == 60_000
    assert isinstance(RollingPolicy.on_checkpoint_rolling_policy(), RollingPolicy)


def test_output_file_config_and_encoder() -> None:
    config = OutputFileConfig.builder().with_part_prefix("a").with_part_suffix(".b").build()
    assert config == OutputFileConfig("a", ".b")
    assert (config.get_part_prefix(), config.get_part_suffix()) == ("a", ".b")
    assert OutputFileConfig.builder().build() == OutputFileConfig("part", "")
    encoder = Encoder.simple_string_encoder()
    assert encoder((1, "x")) == "(1, 'x')" and encoder.charset_name == "UTF-8"


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda p: FileSink.for_row_format(p, "utf-8"), TypeError, "simple_string_encoder"),
        (lambda p: FileSink.for_row_format(_any(42), str), TypeError, "base_path must be a str"),
        (lambda p: FileSink.for_row_format("hdfs://nn/x", str), NotImplementedError, "hdfs"),
        (
            lambda p: FileSink.for_row_format(p, str).with_output_file_config(_any(("a", "b"))),
            TypeError,
            r"OutputFileConfig.builder\(\)",
        ),
        (
            lambda p: FileSink.for_row_format(p, str).with_rolling_policy(_any(1024)),
            TypeError,
            r"default_rolling_policy\(\)",
        ),
        (
            lambda p: FileSink.for_row_format(p, str).with_bucket_assigner(_any("base")),
            TypeError,
            r"base_path_bucket_assigner\(\)",
        ),
        (lambda p: OutputFileConfig(".hidden", ""), ValueError, "leading dot"),
        (lambda p: OutputFileConfig("a/b", ""), ValueError, "path separator"),
        (lambda p: OutputFileConfig("a", _any(1)), TypeError, "part_suffix must be a str"),
        (lambda p: Encoder.simple_string_encoder("no-such-charset"), ValueError, "UTF-8"),
        (lambda p: RollingPolicy.default_rolling_policy(part_size=0), ValueError, "1 byte"),
        (lambda p: RollingPolicy.default_rolling_policy(part_size=_any(1.5)), TypeError, "int"),
        (
            lambda p: RollingPolicy.default_rolling_policy(rollover_interval="1s"),
            TypeError,
            "Duration.of_seconds",
        ),
        (
            lambda p: BucketAssigner.date_time_bucket_assigner(),
            NotImplementedError,
            "How it maps to Flink",
        ),
        (lambda p: FileSink.for_bulk_format(p, None), NotImplementedError, "for_row_format"),
        (
            lambda p: FileSink.for_row_format(p, str).enable_compact(None, None),
            NotImplementedError,
            "compaction",
        ),
    ],
)
def test_bad_sink_arguments_say_what_to_do(
    tmp_path: Path, build: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build(str(tmp_path))


def test_the_plain_constructor_still_works(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, prefix="out", suffix=".csv", encoder=lambda r: f"r{r}")
    assert (sink.prefix, sink.suffix, sink.encoding, sink.rolling_policy) == (
        "out",
        ".csv",
        "utf-8",
        None,
    )


# --- rolling between checkpoints ---


async def test_part_size_rolls_but_nothing_is_visible_before_the_checkpoint(
    tmp_path: Path,
) -> None:
    sink = row_sink(tmp_path, RollingPolicy.default_rolling_policy(part_size=4))
    writer = sink.create_writer()
    await writer.open(make_ctx())
    await writer.process_batch(["a1", "a2"])  # 6 bytes: the next batch rolls
    await writer.process_batch(["b"])
    await writer.process_batch(["c"])  # 2 bytes: under the size, no roll
    assert visible(tmp_path) == [] and len(hidden(tmp_path)) == 2
    await writer.snapshot_state(1)
    assert visible(tmp_path) == []
    await writer.notify_checkpoint_complete(1)
    names = visible(tmp_path)
    assert len(names) == 2 and all(n.startswith("pre-0-") and n.endswith(".ext") for n in names)
    assert [(tmp_path / n).read_text() for n in names] == ["a1\na2\n", "b\nc\n"]
    assert read_committed(tmp_path, prefix="pre", suffix=".ext") == ["a1", "a2", "b", "c"]
    await writer.close()


async def test_on_checkpoint_policy_never_rolls_between_checkpoints(tmp_path: Path) -> None:
    sink = row_sink(tmp_path, RollingPolicy.on_checkpoint_rolling_policy())
    writer = sink.create_writer()
    await writer.open(make_ctx())
    for batch in (["a" * 100], ["b" * 100], ["c"]):
        await writer.process_batch(batch)
    assert len(hidden(tmp_path)) == 1
    await writer.close()


async def test_rollover_and_inactivity_intervals_roll_on_processing_time(
    tmp_path: Path,
) -> None:
    clock = ManualClock(1000)
    policy = RollingPolicy.default_rolling_policy(rollover_interval=100, inactivity_interval=30)
    writer = row_sink(tmp_path, policy).create_writer()
    await writer.open(make_ctx(clock=clock))
    await writer.process_batch(["a"])  # part 1 opens at 1000
    for _ in range(4):  # written every 25 ms: never inactive, but too old at 1100
        clock.advance(25)
        await writer.process_batch(["a"])
    assert len(hidden(tmp_path)) == 2
    clock.advance(30)  # part 2 opened at 1100; 30 ms without a write
    await writer.process_batch(["b"])
    assert len(hidden(tmp_path)) == 3
    await writer.snapshot_state(1)
    await writer.notify_checkpoint_complete(1)
    assert [(tmp_path / n).read_text() for n in visible(tmp_path)] == [
        "a\na\na\na\n",
        "a\n",
        "b\n",
    ]
    await writer.close()


async def test_restore_commits_every_part_of_a_pending_transaction_and_drops_the_rest(
    tmp_path: Path,
) -> None:
    sink = row_sink(tmp_path, RollingPolicy.default_rolling_policy(part_size=1))
    writer = sink.create_writer()
    await writer.open(make_ctx())
    for batch in (["a"], ["b"], ["c"]):
        await writer.process_batch(batch)
    await writer.snapshot_state(1)  # three parts, pending; the checkpoint completes unseen
    blob = writer.ctx.operator_state.snapshot_sync().serialize()
    for batch in (["lost1"], ["lost2"]):  # two parts after the checkpoint
        await writer.process_batch(batch)
    writer._current = None  # a hard crash: close() never aborts
    assert len(hidden(tmp_path)) == 5

    restored = sink.create_writer()
    await restored.open(make_ctx(blobs=[blob], attempt=1))
    assert read_committed(tmp_path) == ["a", "b", "c"]
    assert hidden(tmp_path) == []
    await restored.close()
    await writer.close()


async def test_restored_parts_are_checked(tmp_path: Path) -> None:
    sink = row_sink(tmp_path)
    writer = sink.create_writer()
    await writer.open(make_ctx())
    await writer.process_batch(["a"])
    await writer.snapshot_state(1)
    entries = list(writer.ctx.operator_state.get_list_state(_descriptor()).get())
    await writer.close()
    for parts in (0, "2", 10**13):
        forged = [{**e, "transaction": {**e["transaction"], "parts": parts}} for e in entries]
        with pytest.raises(RestoredTransactionError, match="parts must be an int"):
            await sink.create_writer().open(make_ctx(blobs=[_blob(forged)], attempt=1))
    # A checkpoint from before rolling policies (no "parts") still restores.
    old = [
        {**e, "transaction": {k: v for k, v in e["transaction"].items() if k != "parts"}}
        for e in entries
    ]
    restored = sink.create_writer()
    await restored.open(make_ctx(blobs=[_blob(old)], attempt=1))
    await restored.close()
    assert read_committed(tmp_path) == ["a"]


def _descriptor() -> Any:
    from streamlet.operators.sinks.two_phase import TRANSACTIONS_STATE
    from streamlet.state.descriptors import ListStateDescriptor

    return ListStateDescriptor(TRANSACTIONS_STATE)


def _blob(entries: list[Any]) -> bytes:
    backend = OperatorStateBackend("files")
    state = backend.get_list_state(_descriptor())
    for entry in entries:
        state.add(entry)
    return backend.snapshot_sync().serialize()


# --- the source ---


def _lines(n: int, tag: str) -> str:
    return "".join(f"{tag}{i}\n" for i in range(n))


def _inputs(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A directory (with a subdirectory and files a reader must skip) and a lone file."""
    directory = tmp_path / "in"
    (directory / "sub").mkdir(parents=True)
    (directory / "b.txt").write_text(_lines(300, "b"))
    (directory / "sub" / "c.txt").write_text(_lines(200, "c"))
    (directory / ".part-0.inprogress").write_text("hidden\n")
    (directory / "_SUCCESS").write_text("marker\n")
    (directory / ".git").mkdir()
    (directory / ".git" / "x").write_text("no\n")
    lone = tmp_path / "a.txt"
    lone.write_text(_lines(250, "a"))
    expected = [f"a{i}" for i in range(250)] + [f"b{i}" for i in range(300)]
    return directory, lone, expected + [f"c{i}" for i in range(200)]


async def _read(source: FileSource, split: str, position: Any = None, limit: int = 10**9) -> Any:
    reader = source.create_reader(split, position)
    await reader.open()
    try:
        out: list[str] = []
        while len(out) < limit and (batch := await reader.read_batch(64)) is not None:
            out.extend(batch)
        return out, reader.position()
    finally:
        await reader.close()


async def test_source_splits_one_per_file_sorted_skipping_hidden(tmp_path: Path) -> None:
    directory, lone, expected = _inputs(tmp_path)
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(directory), f"file://{lone}"
    ).build()
    assert source.bounded and source.name == "File Source"
    splits = source.create_splits(2)
    assert splits == [str(lone), str(directory / "b.txt"), str(directory / "sub" / "c.txt")]
    lines: list[str] = []
    for split in splits:
        lines += (await _read(source, split))[0]
    assert lines == expected


async def test_source_restores_mid_file_without_repeating_or_skipping(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("".join(f"line {i} é\n" for i in range(1000)))
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), path).build()
    [split] = source.create_splits(1)
    first, position = await _read(source, split, limit=300)
    assert 0 < position < path.stat().st_size
    rest, end = await _read(source, split, position)
    assert first + rest == [f"line {i} é" for i in range(1000)]
    assert end == path.stat().st_size


class GatedFileSource(FileSource):
    """A FileSource whose readers, in the first attempt, pause after 100 lines until two
    checkpoints complete: the second was triggered during the pause (one checkpoint at a
    time), so it holds a position in the middle of a file."""

    def __init__(self, source: FileSource) -> None:
        super().__init__(source.stream_format, source.paths)
        self.gated = True
        self.completed = 0  # the newest completed checkpoint's id
        self.changed = anyio.Event()

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[str]:
        inner, source = super().create_reader(split, position), self

        class Reader(SourceReader[str]):
            returned = 0

            async def open(self) -> None:
                await inner.open()

            async def read_batch(self, max_records: int) -> list[str] | None:
                if source.gated and self.returned >= 100:
                    seen = source.completed
                    while source.completed < seen + 2:
                        await source.changed.wait()
                    source.gated = False
                batch = await inner.read_batch(min(max_records, 50))
                self.returned += len(batch or ())
                return batch

            def position(self) -> Any:
                return inner.position()

            async def notify_checkpoint_complete(self, checkpoint_id: int, position: Any) -> None:
                source.completed = max(source.completed, checkpoint_id)
                changed, source.changed = source.changed, anyio.Event()
                changed.set()

            async def close(self) -> None:
                await inner.close()

        return Reader()


@pytest.mark.parametrize("parallelism", [1, 2])
async def test_job_from_file_source_to_row_format_sink_once_under_a_fault(
    tmp_path: Path, parallelism: int
) -> None:
    # The first attempt fails right after the readers resumed from a checkpoint taken in
    # the middle of the files; the restore must neither repeat nor skip a line.
    directory, lone, expected = _inputs(tmp_path)
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_checkpoint_config().set_checkpoint_storage_dir(tmp_path / "checkpoints")
    env.enable_checkpointing(10)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(1, 0))
    source = GatedFileSource(
        FileSource.for_record_stream_format(
            StreamFormat.text_line_format(), directory, lone
        ).build()
    )
    failed: list[str] = []

    def upper(line: str) -> str:
        if not source.gated and not failed:
            failed.append(line)
            raise RuntimeError("injected fault")
        return line.upper()

    out = tmp_path / "out"
    env.from_source(source, WatermarkStrategy.no_watermarks(), "file-source").map(upper).sink_to(
        row_sink(out, RollingPolicy.default_rolling_policy(part_size=200))
    )
    with anyio.fail_after(30):
        result = await env.execute("files")
    assert failed and result.restart_count == 1 and result.restored_from is not None
    committed = read_committed(out, prefix="pre", suffix=".ext")
    assert Counter(committed) == Counter(line.upper() for line in expected)
    assert hidden(out) == []
    assert len(visible(out)) > 2 * parallelism  # the size policy rolled between checkpoints


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda p: FileSource.for_record_stream_format(StreamFormat.text_line_format()),
            ValueError,
            "at least one path",
        ),
        (
            lambda p: FileSource.for_record_stream_format(_any("text"), p),
            TypeError,
            r"StreamFormat.text_line_format\(\)",
        ),
        (
            lambda p: FileSource.for_record_stream_format(StreamFormat.text_line_format(), 3),
            TypeError,
            "path must be a str",
        ),
        (
            lambda p: FileSource.for_record_stream_format(
                StreamFormat.text_line_format(), os.path.join(p, "missing.txt")
            ).build(),
            FileNotFoundError,
            "missing.txt",
        ),
        (
            lambda p: FileSource.for_record_stream_format(
                StreamFormat.text_line_format(), "s3://bucket/key"
            ),
            NotImplementedError,
            "s3",
        ),
        (
            lambda p: FileSource.for_record_stream_format(
                StreamFormat.text_line_format(), p
            ).monitor_continuously(Duration.of_seconds(1)),
            NotImplementedError,
            "monitor_continuously",
        ),
        (lambda p: FileSource.for_bulk_file_format(None, p), NotImplementedError, "bulk"),
        (lambda p: StreamFormat.text_line_format("utf-16"), ValueError, "ASCII-compatible"),
        (lambda p: StreamFormat.text_line_format(_any(8)), TypeError, "UTF-8"),
    ],
)
def test_bad_source_arguments_say_what_to_do(
    tmp_path: Path, build: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build(str(tmp_path))


def test_compressed_files_are_refused_at_build(tmp_path: Path) -> None:
    (tmp_path / "x.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(NotImplementedError, match="decompress"):
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), tmp_path).build()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: streamlet.FileCompactStrategy.builder(), "FileCompactStrategy"),
        (lambda: streamlet.FileCompactor.concat_file_compactor(), "FileCompactor"),
        (lambda: streamlet.FileCompactor.identical_file_compactor(), "FileCompactor"),
        (lambda: streamlet.FileEnumeratorProvider.default_splittable_file_enumerator(), "Enum"),
        (lambda: streamlet.FileSplitAssignerProvider.locality_aware_split_assigner(), "Split"),
        (lambda: streamlet.StreamingFileSink.for_row_format("x", str), "FileSink.for_row_format"),
        (lambda: streamlet.StreamingFileSink.for_bulk_format("x", None), "StreamingFileSink"),
    ],
)
def test_unsupported_names_raise_not_implemented_naming_them(call: Any, match: str) -> None:
    with pytest.raises(NotImplementedError, match=match) as info:
        call()
    assert "How it maps to Flink" in str(info.value)


def test_names_are_exported() -> None:
    for name in (
        "FileSink",
        "FileSource",
        "FileSourceBuilder",
        "StreamFormat",
        "BulkFormat",
        "Encoder",
        "OutputFileConfig",
        "RollingPolicy",
        "DefaultRollingPolicy",
        "OnCheckpointRollingPolicy",
        "BucketAssigner",
        "FileCompactStrategy",
        "FileCompactor",
        "FileEnumeratorProvider",
        "FileSplitAssignerProvider",
        "StreamingFileSink",
    ):
        assert name in streamlet.__all__ and hasattr(streamlet, name), name
