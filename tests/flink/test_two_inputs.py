"""Two-input operators on Flink: connect with co-functions, keyed co-process with state and
timers, and the broadcast state pattern, with the same results as on streamlet."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from streamlet import (
    BroadcastProcessFunction,
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    OutputTag,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
    WatermarkStrategy,
)
from streamlet.state.errors import StateError
from tests.flink.runners import both

pytestmark = pytest.mark.slow


class _Tag(CoMapFunction):
    def map1(self, value):
        return ("number", value * 10)

    def map2(self, value):
        return ("word", value.upper())


class _SeenPerKey(CoFlatMapFunction):
    """Counts in the function object (no keyed state): the running count per key reaches
    the key's total only if every record of a key comes to one subtask."""

    def __init__(self) -> None:
        self.seen: dict = {}

    def flat_map1(self, value):
        key = value % 3
        self.seen[key] = self.seen.get(key, 0) + 1
        yield ("seen", key, self.seen[key])

    def flat_map2(self, value):
        return None  # nothing for this input


class _CountPerKey(CoMapFunction):
    """A CoMap on connected keyed streams: one keyed count shared by both inputs."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", default_value=0))

    def map1(self, value):
        self.count.update(self.count.value() + 1)
        return ("count", value % 2, self.count.value())

    def map2(self, value):
        self.count.update(self.count.value() + 1)
        return ("count", len(value) % 2, self.count.value())


WORDS = OutputTag("words")


class _Split(CoProcessFunction):
    def process_element1(self, value, ctx):
        yield ("main", value)

    def process_element2(self, value, ctx):
        yield WORDS, value


def test_connect_co_map_and_hash_partitioned_co_flat_map() -> None:
    def build(env):
        numbers = env.from_collection(list(range(12)))
        words = env.from_collection(["a", "b", "c"])
        tagged = numbers.connect(words).map(_Tag())
        seen = numbers.key_by(lambda n: n % 3).connect(words).flat_map(_SeenPerKey())
        counts = numbers.connect(words).key_by(lambda n: n % 2, len).map(_CountPerKey())
        split = numbers.connect(words).process(_Split())
        side = split.get_side_output(WORDS).map(lambda w: ("side", w))
        return tagged.union(seen, counts, split, side)

    local, flink = both(build)
    assert Counter(flink) == Counter(local)
    assert ("word", "B") in flink and ("number", 110) in flink
    # Words (length 1) share key 1 with the odd numbers: 6 + 3 updates of one count.
    assert max(n for kind, k, n in (r for r in flink if r[0] == "count") if k == 1) == 9
    assert sorted(r for r in flink if r[0] == "side") == [("side", w) for w in "abc"]
    seen = [r for r in flink if r[0] == "seen"]
    totals = {key: max(n for _, k, n in seen if k == key) for key in range(3)}
    assert totals == {0: 4, 1: 4, 2: 4}


UNPAID = OutputTag("unpaid")


class _Match(KeyedCoProcessFunction):
    """Orders and their payments (either first) meet in keyed state; 10 ms after an order,
    its event-time timer says whether it was paid (the sum) or goes to a side output.

    The timestamps ascend in both collections, so when the watermark passes a timer every
    record up to it has arrived on both inputs: the outcome does not depend on how the two
    inputs interleave."""

    def open(self, runtime_context):
        self.order = runtime_context.get_state(ValueStateDescriptor("order"))
        self.paid = runtime_context.get_state(ValueStateDescriptor("paid", default_value=0))

    def process_element1(self, order, ctx):
        self.order.update(order[1])
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)

    def process_element2(self, payment, ctx):
        self.paid.update(self.paid.value() + payment[1])

    def on_timer(self, timestamp, ctx):
        if self.paid.value():
            yield ("matched", ctx.get_current_key(), self.order.value(), self.paid.value())
        else:
            yield UNPAID, (ctx.get_current_key(), self.order.value(), timestamp)


def test_keyed_co_process_with_state_timers_and_side_output() -> None:
    # Keys 1, 1.0 and True are one key: the order of key 1 meets both payments.
    orders = [(1, "book", 5), (2, "pen", 7), (3, "lamp", 9), (4, "cup", 30)]
    payments = [(1.0, 12, 6), (2, 3, 8), (True, 1, 9), (4, 2, 31)]

    def build(env):
        strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
            lambda record, _ts: record[2]
        )
        first = env.from_collection(orders).assign_timestamps_and_watermarks(strategy)
        second = env.from_collection(payments).assign_timestamps_and_watermarks(strategy)
        matched = first.connect(second).key_by(lambda o: o[0], lambda p: p[0]).process(_Match())
        unpaid = matched.get_side_output(UNPAID).map(lambda r: ("unpaid", *r))
        return matched.union(unpaid)

    local, flink = both(build)
    assert Counter(flink) == Counter(local)
    assert sorted(flink) == [
        ("matched", 1, "book", 13),
        ("matched", 2, "pen", 3),
        ("matched", 4, "cup", 2),
        ("unpaid", 3, "lamp", 19),
    ]


LIMITS = MapStateDescriptor("limits")


class _Alerts(KeyedBroadcastProcessFunction):
    """Readings wait in keyed state; a timer at the end (the watermark reaches the end once
    both inputs ended, so every rule has arrived) checks them against the broadcast limit
    of their kind, read-only."""

    def open(self, runtime_context):
        self.readings = runtime_context.get_list_state(ListStateDescriptor("readings"))

    def process_element(self, reading, ctx):
        self.readings.add(reading[1])
        ctx.timer_service().register_event_time_timer(1000)
        try:
            ctx.get_broadcast_state(LIMITS).put("sneaky", 0)
        except StateError:
            pass
        else:
            yield ("wrote read-only state",)

    def process_broadcast_element(self, rule, ctx):
        ctx.get_broadcast_state(LIMITS).put(rule[0], rule[1])
        return []

    def on_timer(self, timestamp, ctx):
        sensor = ctx.get_current_key()
        limit = ctx.get_broadcast_state(LIMITS).get(sensor[0])
        above = sorted(v for v in self.readings.get() if limit is not None and v > limit)
        yield ("alerts", sensor, limit, above)


def test_broadcast_rules_applied_to_keyed_events() -> None:
    readings = [("t1", 20), ("h1", 70), ("t1", 35), ("t2", 31), ("h1", 40), ("x1", 1)]
    rules = [("t", 30), ("h", 50), ("t", 25)]  # the later "t" rule replaces the first

    def build(env):
        strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
            lambda _record, _ts: 1
        )
        events = env.from_collection(readings).assign_timestamps_and_watermarks(strategy)
        limits = env.from_collection(rules).set_parallelism(1).broadcast(LIMITS)
        return events.key_by(lambda r: r[0]).connect(limits).process(_Alerts())

    local, flink = both(build)
    assert Counter(map(repr, flink)) == Counter(map(repr, local))
    assert sorted(flink) == [
        ("alerts", "h1", 50, [70]),
        ("alerts", "t1", 25, [35]),
        ("alerts", "t2", 25, [31]),
        ("alerts", "x1", None, []),
    ]


class _EveryCopy(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        return []

    def process_broadcast_element(self, value, ctx):
        state = ctx.get_broadcast_state(LIMITS)
        state.put(value, len(state.keys()) + 1)
        yield ("copy", value, state.get(value))


def test_broadcast_elements_reach_every_subtask() -> None:
    def build(env):
        events = env.from_collection([1, 2, 3])
        limits = env.from_collection(["a", "b"]).set_parallelism(1).broadcast(LIMITS)
        return events.connect(limits).process(_EveryCopy())

    local, flink = both(build)
    assert Counter(flink) == Counter(local) == Counter({("copy", "a", 1): 2, ("copy", "b", 2): 2})


def test_readme_orders_and_payments_run_on_flink() -> None:
    # The README's connect example, up to its add_sink (a Python sink, which does not
    # translate): the same Match function and streams, collected from Flink instead.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("class Match(KeyedCoProcessFunction):")
    block_start = readme.rindex("```python", 0, start) + len("```python")
    job = readme[block_start : readme.index("matched: list = []", start)]
    namespace: dict = {"__name__": "readme_two_inputs"}
    exec(compile(job, "README.md (Two inputs)", "exec"), namespace)
    orders, payments = namespace["orders"], namespace["payments"]
    matched = (
        orders.connect(payments)
        .key_by(lambda o: o[0], lambda p: p[0])
        .process(namespace["Match"]())
        .execute_and_collect(runner="flink")
    )
    assert sorted(matched) == [(1, 12, "book"), (2, 3, "pen")]


class _VisitsKeysIndirectly(KeyedBroadcastProcessFunction):
    """Reaches apply_to_keyed_state through getattr, which the check before the JVM
    cannot see: the Flink-side context refuses it with the reason."""

    def process_element(self, value, ctx):
        return []

    def process_broadcast_element(self, value, ctx):
        getattr(ctx, "apply_" + "to_keyed_state")(LIMITS, lambda key, state: None)


def test_apply_to_keyed_state_fails_with_the_reason_on_flink() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    rules = env.from_collection([1]).broadcast(LIMITS)
    stream = env.from_collection([("a", 1)]).key_by(lambda r: r[0]).connect(rules)
    with pytest.raises(
        RuntimeError, match=r"apply_to_keyed_state\(\) has no counterpart in PyFlink"
    ):
        stream.process(_VisitsKeysIndirectly()).execute_and_collect(runner="flink")
