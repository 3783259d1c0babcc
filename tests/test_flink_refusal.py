"""The Flink runner's checks that need no PyFlink: refusal before any JVM, lazy import."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from streamlet import (
    CoMapFunction,
    CountEvictor,
    CountTrigger,
    EventTimeSessionWindows,
    FileSink,
    GlobalWindows,
    KeyedBroadcastProcessFunction,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapFunction,
    MapStateDescriptor,
    OutputTag,
    ProcessJoinFunction,
    ProcessWindowFunction,
    PushSource,
    RestartStrategies,
    SlidingProcessingTimeWindows,
    StreamExecutionEnvironment,
    Trigger,
    TriggerResult,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    ValueStateDescriptor,
    WatermarkStrategy,
    read_committed,
)
from streamlet.flink import FlinkTranslationError, check_translatable
from streamlet.flink.keys import normalise_key
from streamlet.flink.translate import flink_configuration


def test_importing_streamlet_does_not_import_pyflink() -> None:
    code = (
        "import sys, streamlet, streamlet.flink\n"
        "assert 'pyflink' not in sys.modules, 'pyflink imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class _Notified(MapFunction):
    def map(self, value):
        return value

    def notify_checkpoint_complete(self, checkpoint_id):
        pass


def test_refusal_lists_every_node_with_what_to_use_instead() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    push = env.from_source(PushSource(), source_name="queue").uid("queue-uid")
    mapped = push.map(_Notified()).name("notified").uid("notified-uid")
    mapped.key_by(lambda x: x).window(TumblingEventTimeWindows.of(10)).evictor(
        CountEvictor.of(1)
    ).reduce(lambda a, b: a).name("proc").uid("proc-uid").print()
    with pytest.raises(FlinkTranslationError) as info:
        env.execute("refused", runner="flink")
    message = str(info.value)
    assert "'queue' (uid 'queue-uid'): the Python source PushSource" in message
    assert "from_collection, from_sequence or read_text_file" in message
    assert "'notified' (uid 'notified-uid'): the function's notify_checkpoint_complete()" in message
    assert "'proc' (uid 'proc-uid'): the evictor CountEvictor" in message
    assert len(info.value.refusals) == 3
    assert isinstance(info.value, ValueError)


def test_refusal_happens_without_starting_a_jvm() -> None:
    code = (
        "import sys\n"
        "from streamlet import PushSource, StreamExecutionEnvironment\n"
        "from streamlet.flink import FlinkTranslationError\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "env.from_source(PushSource()).print()\n"
        "try:\n"
        "    env.execute('x', runner='flink')\n"
        "except FlinkTranslationError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('not refused')\n"
        "assert 'pyflink' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_translatable_job_passes_the_check() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2]).map(lambda x: x).key_by(lambda x: x).sum(0).print()
    check_translatable(env._graph)


def test_unknown_runner_and_bad_address_are_named() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).print()
    with pytest.raises(ValueError, match="runner must be"):
        env.execute("x", runner="spark")
    with pytest.raises(ValueError, match="host:port"):
        flink_configuration(1, 128, None, None, "nowhere")


@pytest.mark.parametrize(("key", "expected"), [(True, 1), (1.0, 1), (1, 1), ((True, 2.0), (1, 2))])
def test_keys_follow_streamlets_equality(key, expected) -> None:
    assert normalise_key(key) == expected
    assert type(normalise_key(key)) is type(expected)
    assert normalise_key(1.5) == 1.5


def test_custom_partitioner_translates_except_into_two_inputs() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1, 2]).partition_custom(lambda key, n: key % n, lambda x: x)
    ds.map(lambda x: x).name("after").print()
    check_translatable(env._graph)
    other = env.from_collection([3])
    ds.connect(other).map(_Swap()).name("pair").print()
    with pytest.raises(FlinkTranslationError, match=r"'pair' .*partition_custom\(\) input"):
        check_translatable(env._graph)


def test_every_restart_strategy_maps_to_flinks_keys() -> None:
    def keys(strategy: Any) -> dict[str, str]:
        conf = flink_configuration(1, 128, None, strategy, None)
        return {k: v for k, v in conf.items() if k.startswith("restart-strategy.")}

    assert keys(None) == keys(RestartStrategies.no_restart()) == {"restart-strategy.type": "none"}
    assert keys(RestartStrategies.fixed_delay_restart(3, 500)) == {
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "500 ms",
    }
    exponential = RestartStrategies.exponential_delay_restart(10, 2000, 2.0, 60000, 0.1)
    assert keys(exponential) == {
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "10 ms",
        "restart-strategy.exponential-delay.max-backoff": "2000 ms",
        "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
        "restart-strategy.exponential-delay.reset-backoff-threshold": "60000 ms",
        "restart-strategy.exponential-delay.jitter-factor": "0.1",
    }
    assert keys(RestartStrategies.failure_rate_restart(4, 60000, 100)) == {
        "restart-strategy.type": "failure-rate",
        "restart-strategy.failure-rate.max-failures-per-interval": "4",
        "restart-strategy.failure-rate.failure-rate-interval": "60000 ms",
        "restart-strategy.failure-rate.delay": "100 ms",
    }


class _Sum:
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + value

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a + b


class _Always(Trigger):
    def on_element(self, element, timestamp, window, ctx):
        return TriggerResult.FIRE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def clear(self, window, ctx):
        pass


class _Stamps(KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield ctx.timestamp()


class _Everything(TumblingEventTimeWindows):
    """A user assigner (a subclass of a built-in one may assign otherwise)."""


def test_windows_with_builtin_assigners_and_any_trigger_translate() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    keyed = env.from_collection([1, 2]).key_by(lambda x: x % 2)
    keyed.window(TumblingEventTimeWindows.of(10)).allowed_lateness(5).side_output_late_data(
        OutputTag("late")
    ).reduce(lambda a, b: a + b).print()
    keyed.window(SlidingProcessingTimeWindows.of(10, 5)).aggregate(_Sum()).print()
    keyed.window(EventTimeSessionWindows.with_gap(5)).trigger(CountTrigger.of(2)).apply(
        lambda key, window, inputs: inputs
    ).print()
    keyed.window(GlobalWindows.create()).trigger(_Always()).reduce(lambda a, b: a + b).print()
    keyed.count_window(3).reduce(lambda a, b: a + b).print()
    env.from_collection([1]).window_all(TumblingProcessingTimeWindows.of(10)).apply(
        lambda window, inputs: inputs
    ).print()
    check_translatable(env._graph)


def test_evictors_sliding_count_windows_and_custom_assigners_are_refused() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    keyed = env.from_collection([1, 2]).key_by(lambda x: x)
    keyed.count_window(3, 1).reduce(lambda a, b: a + b).name("sliding").uid("s").print()
    keyed.window(TumblingEventTimeWindows.of(10)).evictor(CountEvictor.of(2)).reduce(
        lambda a, b: a + b
    ).name("evicted").uid("e").print()
    keyed.window(_Everything(10, 0)).reduce(lambda a, b: a + b).name("own").uid("o").print()
    with pytest.raises(FlinkTranslationError) as info:
        check_translatable(env._graph)
    message = str(info.value)
    assert "'sliding' (uid 's'): a sliding count window" in message
    assert "instead: count_window(size) (tumbling)" in message
    assert "'evicted' (uid 'e'): the evictor CountEvictor" in message
    assert "'own' (uid 'o'): the custom window assigner _Everything" in message
    assert len(info.value.refusals) == 3


def test_window_results_stamped_otherwise_on_flink_are_refused_before_a_timestamp_reader() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    keyed = env.from_collection([1, 2]).key_by(lambda x: x)
    counted = keyed.count_window(2).reduce(lambda a, b: a + b).name("counted").uid("c")
    counted.map(lambda x: x).key_by(lambda x: x).process(_Stamps()).name("reader").print()
    # The default event-time trigger stamps max_timestamp() on both runners: translated.
    timed = keyed.window(TumblingEventTimeWindows.of(10)).reduce(lambda a, b: a + b)
    timed.key_by(lambda x: x).process(_Stamps()).print()
    # A count-triggered window whose results only reach a sink: translated.
    keyed.count_window(3).reduce(lambda a, b: a + b).map(lambda x: x).print()
    with pytest.raises(FlinkTranslationError) as info:
        check_translatable(env._graph)
    assert len(info.value.refusals) == 1
    assert "'counted' (uid 'c'): its results feed 'reader', which reads timestamps" in str(
        info.value
    )


class _PerWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        state = context.window_state().get_state(ValueStateDescriptor("n", default_value=0))
        state.update(state.value() + 1)
        yield state.value()


def test_per_window_state_in_session_windows_is_refused() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    keyed = env.from_collection([1, 2]).key_by(lambda x: x)
    keyed.window(EventTimeSessionWindows.with_gap(5)).process(_PerWindow()).name("s").print()
    keyed.window(TumblingEventTimeWindows.of(5)).process(_PerWindow()).print()  # translates
    with pytest.raises(FlinkTranslationError) as info:
        check_translatable(env._graph)
    assert len(info.value.refusals) == 1
    assert "'s' (uid" in str(info.value) and "per-window state" in str(info.value)


class _Swap(CoMapFunction):
    def map1(self, value):
        return value

    def map2(self, value):
        return -value


RULES = MapStateDescriptor("rules")
WAITING = ListStateDescriptor("waiting")


class _ReadsRules(KeyedBroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield value, ctx.get_broadcast_state(RULES).get("limit")

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(RULES).put("limit", value)


class _VisitsKeys(_ReadsRules):
    def process_broadcast_element(self, value, ctx):
        def clear(key, state):
            state.clear()

        ctx.apply_to_keyed_state(WAITING, clear)


def test_two_input_operators_broadcast_state_and_file_sink_translate(tmp_path) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    a = env.from_collection([1, 2])
    b = env.from_collection([3])
    a.connect(b).map(_Swap()).print()
    a.connect(b).key_by(lambda x: x, lambda y: y).map(_Swap()).print()
    a.key_by(lambda x: x).connect(b).map(_Swap()).print()
    a.key_by(lambda x: x).connect(b.broadcast(RULES)).process(_ReadsRules()).print()
    a.sink_to(FileSink(tmp_path))
    check_translatable(env._graph)


def test_apply_to_keyed_state_is_refused() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    rules = env.from_collection([50]).broadcast(RULES)
    events = env.from_collection([("s1", 1)]).key_by(lambda r: r[0])
    events.connect(rules).process(_VisitsKeys()).name("alerts").print()
    with pytest.raises(FlinkTranslationError) as info:
        check_translatable(env._graph)
    assert len(info.value.refusals) == 1
    assert "'alerts'" in str(info.value) and "ctx.apply_to_keyed_state()" in str(info.value)


class _Paid(ProcessJoinFunction):
    def process_element(self, left, right, ctx):
        yield left, right


def test_interval_join_and_other_sinks_are_refused(tmp_path) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda r, _ts: r
    )
    a = env.from_collection([1]).assign_timestamps_and_watermarks(strategy)
    joined = (
        a.key_by(lambda x: x).interval_join(a.key_by(lambda x: x)).between(0, 5).process(_Paid())
    )
    joined.name("join").print()

    class _Subclassed(FileSink):
        pass

    a.sink_to(_Subclassed(tmp_path / "a")).name("custom")
    a.sink_to(FileSink(tmp_path / "b", commit_on_end_of_input=False)).name("never")
    with pytest.raises(FlinkTranslationError) as info:
        check_translatable(env._graph)
    message = str(info.value)
    assert "'join'" in message and "interval_join() (PyFlink has no interval join" in message
    assert "'custom'" in message and "the Python sink _Subclassed" in message
    assert "'never'" in message and "commit_on_end_of_input=False" in message
    assert len(info.value.refusals) == 3


def test_read_committed_orders_flinks_part_counters_by_value(tmp_path) -> None:
    # Flink's FileSink names part files part-<uuid>-<counter>, counters not zero-padded.
    for counter in (0, 2, 10, 9):
        (tmp_path / f"part-0a1b-{counter}").write_text(f"line {counter}\n")
    (tmp_path / ".part-0a1b-11.inprogress.3c4d").write_text("pending\n")
    assert read_committed(tmp_path) == ["line 0", "line 2", "line 9", "line 10"]
