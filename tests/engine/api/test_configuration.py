"""PyFlink's environment settings: Configuration with Flink's keys, runtime modes, chaining,
global job parameters and add_source (issue 16)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from streamlet import (
    CheckpointingMode,
    Configuration,
    MapFunction,
    RuntimeContext,
    RuntimeExecutionMode,
    StreamExecutionEnvironment,
)
from streamlet.api.configuration import parse_duration_ms
from streamlet.job.restart import (
    ExponentialDelayRestartStrategy,
    FailureRateRestartStrategy,
    FixedDelayRestartStrategy,
    NoRestartStrategy,
)
from streamlet.operators.sources.base import Source, SourceReader
from streamlet.testing import TestingSink


def test_configuration_stores_typed_values_as_pyflinks_does() -> None:
    config = Configuration().set_string("a", "x").set_integer("b", 3).set_boolean("c", True)
    config.set_float("d", 0.5)
    assert config.get_string("a", "") == "x" and config.get_integer("b", 0) == 3
    assert config.get_boolean("c", False) is True and config.get_float("d", 0.0) == 0.5
    assert config.get_integer("missing", 7) == 7
    assert config.key_set() == {"a", "b", "c", "d"} and config.contains_key("a")
    assert config.to_dict() == {"a": "x", "b": "3", "c": "True", "d": "0.5"}
    copy = Configuration(config)
    assert copy == config and copy.remove_config("a") and copy != config
    assert Configuration().add_all(config, prefix="p.").key_set() == {"p.a", "p.b", "p.c", "p.d"}
    with pytest.raises(TypeError, match="non-empty str"):
        Configuration().set_string("", "x")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("10 s", 10_000),
        ("500ms", 500),
        ("1 min", 60_000),
        ("2h", 7_200_000),
        ("250", 250),
        (1500, 1500),
        (timedelta(seconds=2), 2000),
    ],
)
def test_durations_read_as_flinks_configuration_writes_them(text: Any, ms: float) -> None:
    assert parse_duration_ms("k", text) == ms


def configured(**keys: Any) -> StreamExecutionEnvironment:
    config = Configuration()
    for key, value in keys.items():
        config.set_string(key.replace("_", "."), str(value))
    return StreamExecutionEnvironment.get_execution_environment(config)


def test_flinks_keys_set_parallelism_checkpointing_and_restarts() -> None:
    config = Configuration()
    config.set_integer("parallelism.default", 3)
    config.set_string("execution.checkpointing.interval", "2 s")
    config.set_string("execution.checkpointing.mode", "AT_LEAST_ONCE")
    config.set_string("execution.checkpointing.timeout", "1 min")
    config.set_string("execution.checkpointing.max-concurrent-checkpoints", "2")
    config.set_string("execution.checkpointing.dir", "file:///tmp/streamlet-config-test")
    config.set_string("pipeline.auto-watermark-interval", "50 ms")
    config.set_string("restart-strategy.type", "fixed-delay")
    config.set_string("restart-strategy.fixed-delay.attempts", "4")
    config.set_string("restart-strategy.fixed-delay.delay", "3 s")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    assert env.get_parallelism() == 3
    checkpoints = env.get_checkpoint_config()
    assert checkpoints.get_checkpoint_interval() == 2_000
    assert checkpoints.get_checkpointing_mode() is CheckpointingMode.AT_LEAST_ONCE
    assert checkpoints.get_checkpoint_timeout() == 60_000
    assert checkpoints.get_max_concurrent_checkpoints() == 2
    paused = configured(**{"execution_checkpointing_min-pause": "100 ms"})
    assert paused.get_checkpoint_config().get_min_pause_between_checkpoints() == 100
    assert str(checkpoints.get_checkpoint_storage_dir()).endswith("streamlet-config-test")
    assert env.get_config().get_auto_watermark_interval() == 50
    strategy = env.get_restart_strategy()
    assert isinstance(strategy, FixedDelayRestartStrategy)
    assert (strategy.restart_attempts, strategy.delay_ms) == (4, 3_000)


@pytest.mark.parametrize(
    ("keys", "kind"),
    [
        ({"restart-strategy.type": "none"}, NoRestartStrategy),
        ({"restart-strategy": "off"}, NoRestartStrategy),
        (
            {
                "restart-strategy.type": "failure-rate",
                "restart-strategy.failure-rate.max-failures-per-interval": "3",
                "restart-strategy.failure-rate.failure-rate-interval": "5 min",
            },
            FailureRateRestartStrategy,
        ),
        (
            {
                "restart-strategy.type": "exponential-delay",
                "restart-strategy.exponential-delay.initial-backoff": "10 ms",
                "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
            },
            ExponentialDelayRestartStrategy,
        ),
    ],
)
def test_each_restart_strategy_type_with_its_options(keys: dict[str, str], kind: type) -> None:
    config = Configuration()
    for key, value in keys.items():
        config.set_string(key, value)
    strategy = StreamExecutionEnvironment.get_execution_environment(config).get_restart_strategy()
    assert isinstance(strategy, kind)
    if isinstance(strategy, ExponentialDelayRestartStrategy):
        assert strategy.initial_backoff_ms == 10 and strategy.backoff_multiplier == 2.0


def test_a_bad_value_names_its_key_and_an_unknown_key_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ValueError, match=r"'execution.checkpointing.interval' must be a dur"):
        StreamExecutionEnvironment.get_execution_environment(
            Configuration().set_string("execution.checkpointing.interval", "soon")
        )
    with pytest.raises(ValueError, match=r"'restart-strategy.type' must be one of none"):
        StreamExecutionEnvironment.get_execution_environment(
            Configuration().set_string("restart-strategy.type", "sometimes")
        )
    with pytest.raises(ValueError, match=r"'execution.checkpointing.mode' must be EXACTLY_ONCE"):
        StreamExecutionEnvironment.get_execution_environment(
            Configuration().set_string("execution.checkpointing.mode", "twice")
        )
    with pytest.raises(TypeError, match="configure\\(\\) needs a Configuration"):
        StreamExecutionEnvironment.get_execution_environment().configure({"a": 1})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="streamlet.api"):
        StreamExecutionEnvironment.get_execution_environment(
            Configuration().set_string("python.fn-execution.bundle.size", "1000")
        )
    assert "'python.fn-execution.bundle.size' is not used by streamlet" in caplog.text


class Unbounded(Source[int]):
    name = "Unbounded"
    bounded = False

    def create_splits(self, parallelism: int) -> list[Any]:
        return [0]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[int]:
        raise AssertionError("never read: the job is refused first")


def test_batch_mode_emits_only_the_final_value_of_rolling_aggregations() -> None:
    out: list[Any] = []
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(2)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.enable_checkpointing(10)  # off in BATCH, with a warning
    words = ["a", "b", "a", "c", "a", "b"]
    env.from_collection([(w, 1) for w in words]).key_by(lambda t: t[0]).sum(1).sink_to(
        TestingSink(out)
    )
    result = env.execute("batch word count")
    assert sorted(out) == [("a", 3), ("b", 2), ("c", 1)]
    assert result.checkpoints_completed == 0


def test_streaming_mode_emits_every_update_and_automatic_follows_the_sources() -> None:
    for mode, expected in [
        (RuntimeExecutionMode.STREAMING, [("a", 1), ("a", 2)]),
        (RuntimeExecutionMode.AUTOMATIC, [("a", 2)]),  # every source bounded: BATCH
        ("batch", [("a", 2)]),
    ]:
        out: list[Any] = []
        env = StreamExecutionEnvironment.get_execution_environment().set_runtime_mode(mode)  # type: ignore[arg-type]
        env.from_collection([("a", 1), ("a", 1)]).key_by(lambda t: t[0]).sum(1).sink_to(
            TestingSink(out)
        )
        env.execute("modes")
        assert out == expected, mode


def test_batch_mode_refuses_an_unbounded_source_as_flink_does() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.from_source(Unbounded()).print()
    with pytest.raises(ValueError, match=r"unbounded sources \('Unbounded'\).*STREAMING or AUTO"):
        env.execute("unbounded batch")
    with pytest.raises(TypeError, match=r"RuntimeExecutionMode\.STREAMING, BATCH or AUTOMATIC"):
        env.set_runtime_mode("sometimes")  # type: ignore[arg-type]


def test_disable_operator_chaining_runs_every_operator_in_its_own_subtask() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).map(lambda x: x).filter(bool).print()
    assert len(json.loads(env.get_execution_plan())["chains"]) == 1
    env = StreamExecutionEnvironment.get_execution_environment().disable_operator_chaining()
    assert not env.is_chaining_enabled()
    out: list[int] = []
    env.from_collection([1, 2]).map(lambda x: x * 3).filter(bool).sink_to(TestingSink(out))
    assert len(json.loads(env.get_execution_plan())["chains"]) == 4
    env.execute("unchained")
    assert sorted(out) == [3, 6]


class Scale(MapFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.factor = int(runtime_context.get_job_parameter("factor", "1"))

    def map(self, value: int) -> int:
        return value * self.factor


def test_functions_read_global_job_parameters() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_config().set_global_job_parameters({"factor": 5})
    assert env.get_config().get_global_job_parameters() == {"factor": "5"}
    out: list[int] = []
    env.from_collection([1, 2]).map(Scale()).sink_to(TestingSink(out))
    env.execute("parameters")
    assert sorted(out) == [5, 10]


def test_add_source_takes_a_source_and_refuses_anything_else() -> None:
    from streamlet.operators.sources.collection import CollectionSource

    out: list[int] = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.add_source(CollectionSource([4, 5]), "mine").sink_to(TestingSink(out))
    env.execute("add_source")
    assert out == [4, 5]
    with pytest.raises(TypeError, match="add_source\\(\\) needs a streamlet Source"):
        env.add_source(lambda: 1)  # type: ignore[arg-type]


def test_incremental_checkpointing_from_flinks_key() -> None:
    config = Configuration()
    config.set_string("execution.checkpointing.incremental", "true")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    assert env.get_checkpoint_config().is_incremental_checkpointing_enabled()
    config.set_string("execution.checkpointing.incremental", "false")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    assert not env.get_checkpoint_config().is_incremental_checkpointing_enabled()
    config.set_string("execution.checkpointing.incremental", "maybe")
    with pytest.raises(ValueError, match=r"execution\.checkpointing\.incremental"):
        StreamExecutionEnvironment.get_execution_environment(config)
