"""PyFlink's names and signatures on streamlet's API (issue 16): ``Types`` and ``Row``, the
per-stream settings, the state backend and checkpoint names, ``JobClient``'s savepoint
methods, ``RuntimeContext.get_metrics_group()`` and time arguments as Durations.

The jobs here run in PyFlink's blocking form (no event loop in the test), except where a
test says otherwise."""

from __future__ import annotations

import json
import math
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import streamlet
from streamlet import (
    CheckpointConfig,
    CheckpointingMode,
    Configuration,
    Duration,
    ExternalizedCheckpointCleanup,
    ExternalizedCheckpointRetention,
    FileSystemCheckpointStorage,
    HashMapStateBackend,
    JobManagerCheckpointStorage,
    KeyedProcessFunction,
    MapFunction,
    RestartStrategies,
    Row,
    RuntimeContext,
    SlotSharingGroup,
    StreamExecutionEnvironment,
    Time,
    Types,
    ValueStateDescriptor,
)
from streamlet.graph.plan import build_plan
from streamlet.operators.metrics import Meter
from streamlet.runtime.deploy import _chain_settings
from streamlet.runtime.subtask import SubtaskSettings
from streamlet.testing import TestingSink

# --- Types and Row ---


def test_from_collection_turns_tuples_into_rows_for_a_row_type() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection(
        [(1, "a"), (2, "b")],
        type_info=Types.ROW_NAMED(["id", "info"], [Types.INT(), Types.STRING()]),
    )
    out = ds.map(lambda r: (r.id, r.info.upper())).execute_and_collect(limit=2)
    assert sorted(out) == [(1, "A"), (2, "B")]
    env = StreamExecutionEnvironment.get_execution_environment()
    rows = env.from_collection([[1, 2]], Types.ROW([Types.LONG(), Types.LONG()]))
    assert rows.execute_and_collect(limit=1) == [Row(1, 2)]
    tuples = env.from_collection([[1, "x"]], Types.TUPLE([Types.INT(), Types.STRING()]))
    assert tuples.execute_and_collect(limit=1) == [(1, "x")]


@pytest.mark.parametrize(
    ("data", "type_info", "message"),
    [
        (
            [(1, "a"), (2, 3)],
            Types.TUPLE([Types.INT(), Types.STRING()]),
            r"element 1, \(2, 3\), does not fit type_info TUPLE\(\[INT, STRING\]\): "
            r"field 1 \(3\): a int is not a STRING",
        ),
        (
            [(1, "a", 2)],
            Types.ROW([Types.INT(), Types.STRING()]),
            r"element 0, .* it has 3 fields, the type 2",
        ),
        ([2**31], Types.INT(), r"2147483648 is outside the range of a INT \(32-bit\)"),
        ([True], Types.LONG(), r"a bool is not a LONG"),
        (["ab"], Types.CHAR(), r"a CHAR is a str of length 1"),
        ([{"a": "b"}], Types.MAP(Types.STRING(), Types.INT()), r"entry 'a': a str is not a INT"),
        ([[1, "x"]], Types.LIST(Types.INT()), r"element 1 \('x'\): a str is not a INT"),
        (
            [Row(id=1, other="x")],
            Types.ROW_NAMED(["id", "info"], [Types.INT(), Types.STRING()]),
            r"its fields \['id', 'other'\] are not \['id', 'info'\]",
        ),
    ],
)
def test_from_collection_names_the_element_that_does_not_fit(
    data: list[Any], type_info: Any, message: str
) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(TypeError, match=message):
        env.from_collection(data, type_info)


def test_every_type_factory_and_what_it_accepts() -> None:
    from datetime import date, datetime, time
    from decimal import Decimal

    fits = {
        Types.STRING(): "s",
        Types.BOOLEAN(): True,
        Types.BYTE(): -128,
        Types.SHORT(): 2**15 - 1,
        Types.LONG(): -(2**63),
        Types.FLOAT(): 1.5,
        Types.DOUBLE(): 2,
        Types.BIG_INT(): 2**100,
        Types.BIG_DEC(): Decimal("1.5"),
        Types.INSTANT(): datetime(2026, 1, 1),
        Types.SQL_DATE(): date(2026, 1, 1),
        Types.SQL_TIME(): time(1, 2),
        Types.SQL_TIMESTAMP(): datetime(2026, 1, 1, 1),
        Types.PICKLED_BYTE_ARRAY(): object(),
        Types.PRIMITIVE_ARRAY(Types.BYTE()): b"\x00",
        Types.PRIMITIVE_ARRAY(Types.INT()): [1, 2],
        Types.BASIC_ARRAY(Types.STRING()): ["a"],
        Types.OBJECT_ARRAY(Types.ROW([Types.INT()])): [Row(1)],
    }
    for info, value in fits.items():
        assert info.problem(value) is None, info
    assert Types.BYTE().problem(128) is not None
    assert Types.SQL_DATE().problem(datetime(2026, 1, 1)) is not None
    assert Types.INT() == Types.INT() and Types.INT() != Types.LONG()
    assert repr(Types.ROW_NAMED(["a"], [Types.INT()])) == "ROW_NAMED([a: INT])"
    assert Types.ROW([Types.INT()]).get_field_names() == ["f0"]


def test_type_arguments_are_checked_where_pyflink_takes_them() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([("a", 1)])
    keyed = ds.map(lambda x: x, output_type=Types.TUPLE([Types.STRING(), Types.INT()])).key_by(
        lambda x: x[0], key_type=Types.STRING()
    )
    keyed.flat_map(lambda x: [x], output_type=Types.PICKLED_BYTE_ARRAY())
    with pytest.raises(
        TypeError,
        match=r"map\(output_type\) must be a type information .* "
        r"\(call it: Types.INT\(\), not Types.INT\)",
    ):
        ds.map(lambda x: x, output_type=Types.INT)
    with pytest.raises(TypeError, match=r"key_by\(key_type\) must be a type information"):
        ds.key_by(lambda x: x, key_type=str)
    with pytest.raises(TypeError, match=r"ROW\(\) needs a list of field types"):
        Types.ROW(Types.INT())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one str name per field type"):
        Types.ROW_NAMED(["a", "b"], [Types.INT()])


class CountPerKey(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value: Any, ctx: Any) -> Any:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield ctx.get_current_key(), n


def test_row_keys_survive_a_savepoint_and_a_restore(tmp_path: Path) -> None:
    config = Configuration()
    config.set_string("execution.checkpointing.dir", str(tmp_path / "chk"))
    config.set_string("execution.checkpointing.savepoint-dir", str(tmp_path / "sp"))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    enough = threading.Event()

    def sink(record: tuple[Row, int]) -> None:
        if record[1] >= 5:
            enough.set()

    (
        env.from_sequence(0, 10**15)
        .map(lambda x: Row(k=x % 2))
        .key_by(lambda r: r)
        .process(CountPerKey())
        .uid("counter")
        .add_sink(sink)
    )
    client = env.execute_async("rows")
    assert enough.wait(30)
    path = client.stop_with_savepoint().result()  # PyFlink's default: no drain, configured dir
    assert Path(path).is_relative_to(tmp_path / "sp")

    out: list[tuple[Row, int]] = []
    env = StreamExecutionEnvironment.get_execution_environment(config)
    rows = env.from_collection([(0,), (1,)], Types.ROW_NAMED(["k"], [Types.INT()]))
    rows.key_by(lambda r: r).process(CountPerKey()).uid("counter").sink_to(TestingSink(out))
    env.execute("rows", restore=path, allow_non_restored_state=True)
    assert {type(key) for key, _ in out} == {Row}
    assert all(n > 5 for _, n in out), out  # counted on from the savepoint's state


# --- per-stream settings ---


def _plan(env: StreamExecutionEnvironment) -> list[dict[str, Any]]:
    chains: list[dict[str, Any]] = json.loads(env.get_execution_plan())["chains"]
    return chains


def test_start_new_chain_and_set_description() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1]).map(lambda x: x).name("a")
    ds = ds.map(lambda x: x).name("b").start_new_chain().set_description("why b is here")
    ds.map(lambda x: x).name("c").print()
    chains = _plan(env)
    # b leaves a's chain; c still joins b's.
    assert [[op["name"] for op in c["operators"]] for c in chains] == [
        ["Collection Source", "a"],
        ["b", "c", "Print to Std. Out"],
    ]
    assert chains[1]["operators"][0] == {"name": "b", "uid": "b-3", "description": "why b is here"}
    assert "description" not in chains[0]["operators"][0]


def test_force_non_parallel_and_per_operator_max_parallelism() -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(4)
    ds = env.from_sequence(1, 10)
    single = ds.map(lambda x: x).force_non_parallel()
    assert single.get_parallelism() == 1
    with pytest.raises(ValueError, match="supports parallelism <= 1, got 2"):
        single.set_parallelism(2)
    bounded = ds.map(lambda x: x).set_max_parallelism(2)
    assert bounded.get_parallelism() == 2  # the default 4 is lowered to its bound
    assert ds.map(lambda x: x).set_max_parallelism(128).get_parallelism() == 4  # the job's
    keyed = ds.key_by(lambda x: x).map(lambda x: x)
    keyed.set_max_parallelism(env.get_max_parallelism())  # the job's number: accepted
    with pytest.raises(ValueError, match=r"keyed: its key groups are the job's \(128"):
        keyed.set_max_parallelism(64)
    with pytest.raises(ValueError, match="has parallelism 3, above the max parallelism 2"):
        ds.map(lambda x: x).set_parallelism(3).set_max_parallelism(2)
    with pytest.raises(ValueError, match=r"must be in \[1, 32768\]"):
        ds.map(lambda x: x).set_max_parallelism(0)


def test_slot_sharing_groups_are_accepted_and_the_environment_is_reachable() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1]).map(lambda x: x)
    assert ds.slot_sharing_group("g") is ds
    assert ds.slot_sharing_group(SlotSharingGroup("h")) is ds
    with pytest.raises(TypeError, match="needs a name"):
        ds.slot_sharing_group(3)
    assert ds.get_execution_environment() is env
    assert ds.print().get_execution_environment() is env


def _chain_timeouts(env: StreamExecutionEnvironment) -> list[float]:
    plan = build_plan(env._graph, env.get_parallelism(), env.get_max_parallelism())
    settings = SubtaskSettings(job_name="j", attempt=0, batch_size=8, buffer_timeout_s=0.1)
    return [_chain_settings(chain, settings).buffer_timeout_s for chain in plan.chains]


def test_per_operator_buffer_timeouts_apply_to_their_chain() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1]).map(lambda x: x).set_buffer_timeout(-1)
    ds = ds.map(lambda x: x).start_new_chain().set_buffer_timeout(Duration.of_millis(20))
    ds = ds.map(lambda x: x).set_buffer_timeout(timedelta(milliseconds=5))  # same chain
    ds.map(lambda x: x).start_new_chain().print()
    assert _chain_timeouts(env) == [math.inf, 0.005, 0.1]
    with pytest.raises(ValueError, match="at least -1 ms"):
        ds.set_buffer_timeout(-2)


def test_the_environments_buffer_timeout_takes_minus_one_and_durations() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_buffer_timeout(-1)
    assert env.get_buffer_timeout() == -1
    env.from_collection([1, 2]).print()
    assert env._job_config().buffer_timeout_ms == math.inf
    assert env.set_buffer_timeout(Time.seconds(1)).get_buffer_timeout() == 1000
    with pytest.raises(ValueError, match="buffer timeout"):
        env.set_buffer_timeout(-3)


# --- state backends and checkpoint configuration ---


def test_state_backend_and_checkpoint_storage_names(tmp_path: Path) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.set_state_backend(HashMapStateBackend()) is env
    config = env.get_checkpoint_config()
    assert isinstance(config.get_checkpoint_storage(), JobManagerCheckpointStorage)
    config.set_checkpoint_storage(FileSystemCheckpointStorage(f"file://{tmp_path}"))
    assert config.get_checkpoint_storage_dir() == tmp_path
    config.set_checkpoint_storage(JobManagerCheckpointStorage())
    assert config.get_checkpoint_storage_dir() is None
    with pytest.raises(TypeError, match="HashMapStateBackend or an FsStateBackend"):
        env.set_state_backend(object())  # type: ignore[arg-type]


def test_get_checkpoint_interval_is_minus_one_when_off() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.get_checkpoint_interval() == -1
    env.enable_checkpointing(Duration.of_seconds(2))
    assert env.get_checkpoint_interval() == 2000


def test_checkpoint_times_take_durations() -> None:
    config = CheckpointConfig()
    config.set_checkpoint_timeout(timedelta(minutes=1)).set_min_pause_between_checkpoints(
        Time.milliseconds(500)
    )
    assert (config.get_checkpoint_timeout(), config.get_min_pause_between_checkpoints()) == (
        60_000,
        500,
    )


def test_unaligned_checkpoint_switches_round_trip_and_reject_non_bools() -> None:
    config = CheckpointConfig()
    assert not config.is_unaligned_checkpoints_enabled()
    assert not config.is_force_unaligned_checkpoints()
    config.enable_unaligned_checkpoints().set_force_unaligned_checkpoints()
    assert config.is_unaligned_checkpoints_enabled() and config.is_force_unaligned_checkpoints()
    assert config.takes_unaligned_checkpoints
    config.set_checkpointing_mode(CheckpointingMode.AT_LEAST_ONCE)
    assert not config.takes_unaligned_checkpoints  # Flink: EXACTLY_ONCE only
    config.disable_unaligned_checkpoints()
    assert not config.is_unaligned_checkpoints_enabled()
    for call in (config.enable_unaligned_checkpoints, config.set_force_unaligned_checkpoints):
        with pytest.raises(TypeError, match="expects a bool, got 'yes'"):
            call("yes")
    config.set_aligned_checkpoint_timeout(Duration.of_seconds(1))
    assert config.get_alignment_timeout() == 1000
    config.set_aligned_checkpoint_timeout(timedelta(milliseconds=30))
    assert config.get_aligned_checkpoint_timeout() == 30
    with pytest.raises(ValueError, match="aligned checkpoint timeout must be >= 0 ms"):
        config.set_aligned_checkpoint_timeout(-1)


def test_unaligned_options_by_flink_key() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    conf = Configuration()
    conf.set_string("execution.checkpointing.unaligned.enabled", "true")
    conf.set_string("execution.checkpointing.unaligned.forced", "true")
    conf.set_string("execution.checkpointing.aligned-checkpoint-timeout", "250 ms")
    env.configure(conf)
    config = env.get_checkpoint_config()
    assert config.is_unaligned_checkpoints_enabled() and config.is_force_unaligned_checkpoints()
    assert config.get_aligned_checkpoint_timeout() == 250


def test_externalized_checkpoints_and_failing_on_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = CheckpointConfig()
    assert ExternalizedCheckpointCleanup is ExternalizedCheckpointRetention
    assert not config.is_externalized_checkpoints_enabled()  # in memory
    config.set_checkpoint_storage_dir(str(tmp_path))
    assert config.is_externalized_checkpoints_enabled()
    config.enable_externalized_checkpoints(ExternalizedCheckpointCleanup.RETAIN_ON_CANCELLATION)
    assert not caplog.records
    config.set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.DELETE_ON_CANCELLATION
    )
    assert "DELETE_ON_CANCELLATION is not enforced" in caplog.text
    assert (
        config.get_externalized_checkpoint_cleanup()
        is ExternalizedCheckpointRetention.DELETE_ON_CANCELLATION
    )
    assert config.is_fail_on_checkpointing_errors()
    config.set_fail_on_checkpointing_errors(False)
    assert config.get_tolerable_checkpoint_failure_number() == 2**31 - 1


# --- JobClient ---


def test_savepoints_need_a_directory_and_drain_needs_checkpointing(tmp_path: Path) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "chk"))
    running = threading.Event()
    env.from_sequence(1, 10**15).add_sink(lambda x: running.set())
    client = env.execute_async("savepoints")
    try:
        assert running.wait(30)
        with pytest.raises(ValueError, match="no savepoint directory: pass one"):
            client.trigger_savepoint()  # refused at the call, before any future
        with pytest.raises(ValueError, match="needs checkpointing on"):
            client.stop_with_savepoint(True, str(tmp_path / "sp")).result(timeout=30)
        with pytest.raises(TypeError, match="the first argument is a bool"):
            client.stop_with_savepoint(str(tmp_path), str(tmp_path))
        path = client.trigger_savepoint(savepoint_directory=str(tmp_path / "sp")).result()
        assert Path(path).is_relative_to(tmp_path / "sp")
        env.set_default_savepoint_directory(str(tmp_path / "later"))  # a started job: no effect
        with pytest.raises(ValueError, match="no savepoint directory"):
            client.trigger_savepoint()
    finally:
        client.cancel().result(timeout=30)


# --- metrics ---


class Measured(MapFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        group = runtime_context.get_metrics_group()
        self.records = group.counter("records")
        self.rate = group.meter("rate", time_span_in_seconds=10)
        self.sizes = group.add_group("sizes", "x").distribution("size")
        self.index = runtime_context.get_index_of_this_subtask()
        group.gauge("index", lambda: self.index)

    def map(self, value: int) -> int:
        self.records.inc()
        self.rate.mark_event()
        self.sizes.update(value % 10)
        return value


def test_user_metrics_are_listed_by_operator_and_subtask() -> None:
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    seen = threading.Event()
    env.from_sequence(1, 10**15).map(Measured()).uid("measured").add_sink(lambda x: seen.set())
    client = env.execute_async("metrics")
    try:
        assert seen.wait(30)
        metrics = client.metrics()
    finally:
        client.cancel().result(timeout=30)
    assert set(metrics) == {"measured"}  # operators without metrics are left out
    assert set(metrics["measured"]) <= {0, 1} and metrics["measured"]
    for index, values in metrics["measured"].items():
        assert values["index"] == index
        assert values["rate"]["count"] == values["records"]
        assert values["sizes.x.size"]["count"] == values["records"]
    # The sink saw a record, so one subtask at least counted it (listed before the sink).
    busy = [v for v in metrics["measured"].values() if v["records"] >= 1]
    assert busy and 0 <= busy[0]["sizes.x.size"]["min"] <= busy[0]["sizes.x.size"]["max"] <= 9
    assert client.metrics() == {}  # no attempt runs any more


def test_a_meter_counts_events_per_second_over_its_span() -> None:
    now = [100.0]
    meter = Meter(time_span_in_seconds=10, clock=lambda: now[0])
    meter.mark_event(5)
    now[0] = 101.5
    meter.mark_event(15)
    assert meter.get_count() == 20 and meter.get_rate() == 10.0  # 20 events in 2 seconds
    now[0] = 110.0  # second 100 fell out of the span (101..110): 15 events in 10 seconds
    assert meter.get_rate() == 1.5
    now[0] = 200.0
    assert meter.get_rate() == 0.0 and meter.get_count() == 20


def test_metric_names_are_checked_and_registered_once() -> None:
    from streamlet import MetricGroup

    group = MetricGroup()
    assert group.counter("c") is group.counter("c")
    with pytest.raises(ValueError, match="already registered as a Counter, not a Meter"):
        group.meter("c")
    with pytest.raises(ValueError, match="non-empty str"):
        group.counter("")
    group.gauge("broken", lambda: 1 / 0)
    assert group.snapshot()["broken"].startswith("<gauge failed")


# --- time arguments ---


def test_restart_strategies_take_durations() -> None:
    assert RestartStrategies.fixed_delay_restart(3, Duration.of_seconds(2)).delay_ms == 2000
    assert RestartStrategies.fixed_delay_restart(3, 250).delay_ms == 250
    rate = RestartStrategies.failure_rate_restart(2, timedelta(minutes=1), Time.seconds(1))
    assert (rate.failure_rate_interval_ms, rate.delay_ms) == (60_000, 1000)
    exp = RestartStrategies.exponential_delay_restart(
        Duration.of_millis(10), timedelta(seconds=1), 2.0, Time.minutes(1), 0.0
    )
    assert (exp.initial_backoff_ms, exp.max_backoff_ms, exp.reset_backoff_threshold_ms) == (
        10,
        1000,
        60_000,
    )
    with pytest.raises(ValueError, match="delay_between_attempts must be a Duration"):
        RestartStrategies.fixed_delay_restart(1, "1 s")


def test_every_new_name_is_exported_from_streamlet() -> None:
    names = [
        "Types", "TypeInformation", "RowTypeInfo", "TupleTypeInfo", "BasicTypeInfo", "Row",
        "RowKind", "HashMapStateBackend", "FileSystemCheckpointStorage",
        "ExternalizedCheckpointRetention", "ExternalizedCheckpointCleanup", "MetricGroup",
        "Metric", "Counter", "Meter", "Distribution", "Gauge", "SlotSharingGroup",
    ]  # fmt: skip
    for name in names:
        assert name in streamlet.__all__ and hasattr(streamlet, name), name


def test_rolling_aggregations_read_and_replace_row_fields() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    rows = env.from_collection(
        [("a", 1), ("a", 2), ("b", 5)], Types.ROW_NAMED(["k", "n"], [Types.STRING(), Types.INT()])
    )
    by_name = rows.key_by(lambda r: r.k).sum("n").execute_and_collect(limit=3)
    assert by_name == [Row(k="a", n=1), Row(k="a", n=3), Row(k="b", n=5)]
    env = StreamExecutionEnvironment.get_execution_environment()
    positional = env.from_collection([("a", 4), ("a", 2)], Types.ROW([Types.STRING(), Types.INT()]))
    assert positional.key_by(lambda r: r[0]).min(1).execute_and_collect(limit=2) == [
        Row("a", 4),
        Row("a", 2),
    ]


def test_the_environments_checkpoint_and_slot_names() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.get_checkpointing_consistency_mode() is env.get_checkpointing_mode()
    assert env.enable_changelog_state_backend(False) is env
    assert not env.is_changelog_state_backend_enabled()
    with pytest.raises(NotImplementedError, match="changelog state backend is not supported"):
        env.enable_changelog_state_backend(True)
    assert not env.is_unaligned_checkpoints_enabled() and not env.is_force_unaligned_checkpoints()
    assert env.register_slot_sharing_group(SlotSharingGroup("g")) is env
    with pytest.raises(TypeError, match="needs a SlotSharingGroup"):
        env.register_slot_sharing_group("g")
