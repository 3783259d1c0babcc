"""``Configuration``: settings by Flink's configuration keys (PyFlink's ``pyflink.common``).

``StreamExecutionEnvironment.get_execution_environment(configuration)`` and
``env.configure(configuration)`` apply the keys of :data:`KEYS` (Flink's names, and the older
names Flink still reads); a value is a str as in a ``flink-conf.yaml`` (durations like
``"10 s"``, ``"500 ms"`` or ``"1 min"``, or a number of ms) or the typed value the
``set_*`` methods stored. Keys streamlet does not know are ignored with a warning, as Flink
ignores keys no component reads (a PyFlink program often carries keys for other parts of
Flink); a known key with a bad value is refused, naming the key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["KEYS", "Configuration", "apply_configuration", "parse_duration_ms"]

logger = logging.getLogger("streamlet.api")


class Configuration:
    """A map of Flink configuration keys to values (PyFlink's ``Configuration``).

    :param other: a Configuration to copy
    """

    def __init__(self, other: Configuration | None = None) -> None:
        self._data: dict[str, Any] = {} if other is None else dict(other._data)

    def set_string(self, key: str, value: str) -> Configuration:
        self._data[_key(key)] = str(value)
        return self

    def get_string(self, key: str, default_value: str) -> str:
        value = self._data.get(key)
        return default_value if value is None else str(value)

    def set_integer(self, key: str, value: int) -> Configuration:
        self._data[_key(key)] = int(value)
        return self

    def get_integer(self, key: str, default_value: int) -> int:
        value = self._data.get(key)
        return default_value if value is None else int(value)

    def set_float(self, key: str, value: float) -> Configuration:
        self._data[_key(key)] = float(value)
        return self

    def get_float(self, key: str, default_value: float) -> float:
        value = self._data.get(key)
        return default_value if value is None else float(value)

    def set_boolean(self, key: str, value: bool) -> Configuration:
        self._data[_key(key)] = bool(value)
        return self

    def get_boolean(self, key: str, default_value: bool) -> bool:
        value = self._data.get(key)
        return default_value if value is None else _boolean(key, value)

    def get(self, key: str, default_value: Any = None) -> Any:
        return self._data.get(key, default_value)

    def contains_key(self, key: str) -> bool:
        return key in self._data

    def key_set(self) -> set[str]:
        return set(self._data)

    def remove_config(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def add_all(self, other: Configuration, prefix: str = "") -> Configuration:
        for key, value in other._data.items():
            self._data[prefix + key] = value
        return self

    def to_dict(self) -> dict[str, str]:
        return {key: str(value) for key, value in self._data.items()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Configuration) and other._data == self._data

    def __repr__(self) -> str:
        return f"Configuration({self._data!r})"


def _key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"a configuration key must be a non-empty str, got {key!r}")
    return key


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"configuration {key!r} must be true or false, got {value!r}")


_UNITS_MS = {
    "ms": 1,
    "milli": 1,
    "millis": 1,
    "millisecond": 1,
    "milliseconds": 1,
    "s": 1_000,
    "sec": 1_000,
    "secs": 1_000,
    "second": 1_000,
    "seconds": 1_000,
    "min": 60_000,
    "m": 60_000,
    "mins": 60_000,
    "minute": 60_000,
    "minutes": 60_000,
    "h": 3_600_000,
    "hour": 3_600_000,
    "hours": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
    "days": 86_400_000,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_duration_ms(key: str, value: Any) -> float:
    """A duration as Flink's configuration writes it (``"10 s"``, ``"500ms"``, ``"1 min"``,
    a bare number of ms), or a ``timedelta`` / ``Duration`` / number, in milliseconds.

    :raises ValueError: naming ``key`` if ``value`` is not a duration
    """
    to_ms = getattr(value, "to_milliseconds", None)
    if callable(to_ms):
        return float(to_ms())
    total_seconds = getattr(value, "total_seconds", None)
    if callable(total_seconds):
        return float(total_seconds()) * 1000
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value).lower())
    unit = match.group(2) if match else None
    if match is None or unit not in ("", *_UNITS_MS):
        raise ValueError(
            f"configuration {key!r} must be a duration such as '10 s', '500 ms' or '1 min' "
            f"(or a number of ms), got {value!r}"
        )
    return float(match.group(1)) * (_UNITS_MS[unit] if unit else 1)


def _integer(key: str, value: Any) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"configuration {key!r} must be an integer, got {value!r}") from None


def _number(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"configuration {key!r} must be a number, got {value!r}") from None


#: Flink configuration key -> how streamlet applies it: ``apply(env, key, value)``. Keys
#: of the restart strategy's options are read together with ``restart-strategy.type``.
Setter = Callable[[Any, str, Any], None]


def _parallelism(env: Any, key: str, value: Any) -> None:
    env.set_parallelism(_integer(key, value))


def _max_parallelism(env: Any, key: str, value: Any) -> None:
    env.set_max_parallelism(_integer(key, value))


def _interval(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_checkpoint_interval(int(parse_duration_ms(key, value)))


def _mode(env: Any, key: str, value: Any) -> None:
    from streamlet.checkpoints.config import CheckpointingMode

    name = str(getattr(value, "name", value)).strip().upper().replace("-", "_")
    try:
        mode = CheckpointingMode[name]
    except KeyError:
        raise ValueError(
            f"configuration {key!r} must be EXACTLY_ONCE or AT_LEAST_ONCE, got {value!r}"
        ) from None
    env.get_checkpoint_config().set_checkpointing_mode(mode)


def _timeout(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_checkpoint_timeout(int(parse_duration_ms(key, value)))


def _min_pause(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_min_pause_between_checkpoints(
        int(parse_duration_ms(key, value))
    )


def _max_concurrent(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_max_concurrent_checkpoints(_integer(key, value))


def _tolerable(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(_integer(key, value))


def _retained(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_max_retained_checkpoints(_integer(key, value))


def _unaligned(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().enable_unaligned_checkpoints(_boolean(key, value))


def _unaligned_forced(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_force_unaligned_checkpoints(_boolean(key, value))


def _aligned_timeout(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_aligned_checkpoint_timeout(int(parse_duration_ms(key, value)))


def _checkpoint_dir(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(value))


def _savepoint_dir(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().set_default_savepoint_directory(str(value))


def _incremental(env: Any, key: str, value: Any) -> None:
    env.get_checkpoint_config().enable_incremental_checkpointing(_boolean(key, value))


def _watermark_interval(env: Any, key: str, value: Any) -> None:
    env.get_config().set_auto_watermark_interval(int(parse_duration_ms(key, value)))


def _buffer_timeout(env: Any, key: str, value: Any) -> None:
    env.set_buffer_timeout(parse_duration_ms(key, value))


def _runtime_mode(env: Any, key: str, value: Any) -> None:
    env.set_runtime_mode(value)


def _restart_type(env: Any, key: str, value: Any) -> None:
    pass  # read by _restart_strategy, with its options


def _chaining(env: Any, key: str, value: Any) -> None:
    if not _boolean(key, value):
        env.disable_operator_chaining()


def _metrics(env: Any, key: str, value: Any) -> None:
    env._metrics_enabled = _boolean(key, value)


KEYS: dict[str, Setter] = {
    # streamlet's own: Flink's task I/O metrics off, only to measure what they cost.
    "metrics.enabled": _metrics,
    "parallelism.default": _parallelism,
    "pipeline.max-parallelism": _max_parallelism,
    "pipeline.auto-watermark-interval": _watermark_interval,
    "pipeline.operator-chaining.enabled": _chaining,
    "pipeline.operator-chaining": _chaining,
    "execution.runtime-mode": _runtime_mode,
    "execution.buffer-timeout": _buffer_timeout,
    "execution.buffer-timeout.interval": _buffer_timeout,
    "execution.checkpointing.interval": _interval,
    "execution.checkpointing.mode": _mode,
    "execution.checkpointing.timeout": _timeout,
    "execution.checkpointing.min-pause": _min_pause,
    "execution.checkpointing.max-concurrent-checkpoints": _max_concurrent,
    "execution.checkpointing.tolerable-failed-checkpoints": _tolerable,
    "execution.checkpointing.num-retained": _retained,
    "execution.checkpointing.unaligned.enabled": _unaligned,
    "execution.checkpointing.unaligned": _unaligned,
    "execution.checkpointing.unaligned.forced": _unaligned_forced,
    "execution.checkpointing.aligned-checkpoint-timeout": _aligned_timeout,
    "execution.checkpointing.alignment-timeout": _aligned_timeout,
    "state.checkpoints.num-retained": _retained,
    "execution.checkpointing.dir": _checkpoint_dir,
    "state.checkpoints.dir": _checkpoint_dir,
    "execution.checkpointing.savepoint-dir": _savepoint_dir,
    "state.savepoints.dir": _savepoint_dir,
    "execution.checkpointing.incremental": _incremental,
    "state.backend.incremental": _incremental,
    "restart-strategy.type": _restart_type,
    "restart-strategy": _restart_type,
}

#: The options of each restart strategy (read only with its ``restart-strategy.type``).
_RESTART_OPTIONS = {
    "fixed-delay": ("attempts", "delay"),
    "failure-rate": ("max-failures-per-interval", "failure-rate-interval", "delay"),
    "exponential-delay": (
        "initial-backoff",
        "max-backoff",
        "backoff-multiplier",
        "reset-backoff-threshold",
        "jitter-factor",
        "attempts-before-reset-backoff",
    ),
}
_RESTART_ALIASES = {
    "none": "none",
    "off": "none",
    "disable": "none",
    "fixed-delay": "fixed-delay",
    "fixeddelay": "fixed-delay",
    "failure-rate": "failure-rate",
    "failurerate": "failure-rate",
    "exponential-delay": "exponential-delay",
    "exponentialdelay": "exponential-delay",
}


def _restart_strategy(config: Configuration) -> Any:
    """The restart strategy the configuration names, or None if it names none."""
    from streamlet.job.restart import (
        ExponentialDelayRestartStrategy,
        FailureRateRestartStrategy,
        FixedDelayRestartStrategy,
        NoRestartStrategy,
    )

    key = (
        "restart-strategy.type"
        if config.contains_key("restart-strategy.type")
        else ("restart-strategy")
    )
    raw = config.get(key)
    if raw is None:
        return None
    kind = _RESTART_ALIASES.get(str(raw).strip().lower())
    if kind is None:
        raise ValueError(
            f"configuration {key!r} must be one of none, fixed-delay, failure-rate or "
            f"exponential-delay, got {raw!r}"
        )
    if kind == "none":
        return NoRestartStrategy()

    def option(name: str, default: Any) -> Any:
        return config.get(f"restart-strategy.{kind}.{name}", default)

    if kind == "fixed-delay":
        return FixedDelayRestartStrategy(
            _integer(f"restart-strategy.{kind}.attempts", option("attempts", 1)),
            parse_duration_ms(f"restart-strategy.{kind}.delay", option("delay", "1 s")),
        )
    if kind == "failure-rate":
        return FailureRateRestartStrategy(
            _integer(
                f"restart-strategy.{kind}.max-failures-per-interval",
                option("max-failures-per-interval", 1),
            ),
            parse_duration_ms(
                f"restart-strategy.{kind}.failure-rate-interval",
                option("failure-rate-interval", "1 min"),
            ),
            parse_duration_ms(f"restart-strategy.{kind}.delay", option("delay", "1 s")),
        )
    attempts = option("attempts-before-reset-backoff", None)
    return ExponentialDelayRestartStrategy(
        parse_duration_ms(
            f"restart-strategy.{kind}.initial-backoff", option("initial-backoff", "1 s")
        ),
        parse_duration_ms(f"restart-strategy.{kind}.max-backoff", option("max-backoff", "1 min")),
        _number(f"restart-strategy.{kind}.backoff-multiplier", option("backoff-multiplier", 1.5)),
        parse_duration_ms(
            f"restart-strategy.{kind}.reset-backoff-threshold",
            option("reset-backoff-threshold", "1 h"),
        ),
        _number(f"restart-strategy.{kind}.jitter-factor", option("jitter-factor", 0.1)),
        float("inf")
        if attempts is None
        else _integer(f"restart-strategy.{kind}.attempts-before-reset-backoff", attempts),
    )


def apply_configuration(env: Any, config: Configuration) -> None:
    """Apply every key of ``config`` that streamlet knows to ``env`` (see the module doc).

    :raises TypeError: if ``config`` is not a Configuration
    :raises ValueError: naming the key, for a known key with a bad value
    """
    if not isinstance(config, Configuration):
        raise TypeError(f"configure() needs a Configuration, got {config!r}")
    options = {
        f"restart-strategy.{kind}.{name}"
        for kind, names in _RESTART_OPTIONS.items()
        for name in names
    }
    for key in config:
        setter = KEYS.get(key)
        if setter is not None:
            setter(env, key, config.get(key))
        elif key not in options:
            logger.warning(
                "configuration key %r is not used by streamlet and is ignored (the keys it "
                "reads are listed in the README's configuration reference)",
                key,
            )
    strategy = _restart_strategy(config)
    if strategy is not None:
        env.set_restart_strategy(strategy)
