"""Flink's ``StateTtlConfig`` (PyFlink's names): how long keyed state lives, what refreshes
it, whether expired entries may be returned, and how they are cleaned up.

Only the configuration lives here (it has no dependencies, so descriptors can check it); the
state views that apply it are in :mod:`streamlet.state.ttl`, which explains the semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

__all__ = [
    "CleanupStrategies",
    "IncrementalCleanupStrategy",
    "StateTtlConfig",
    "ttl_to_millis",
]


def ttl_to_millis(ttl: Any, where: str = "StateTtlConfig") -> int:
    """Return ``ttl`` in milliseconds: a ``Time`` or ``Duration`` (anything with
    ``to_milliseconds()``), a :class:`datetime.timedelta`, or an int of milliseconds.

    :raises TypeError: for anything else
    :raises ValueError: if the span is not positive
    """
    if isinstance(ttl, bool):
        ms: Any = None
    elif isinstance(ttl, int):
        ms = ttl
    elif isinstance(ttl, timedelta):
        ms = ttl // timedelta(milliseconds=1)
    elif callable(getattr(ttl, "to_milliseconds", None)):
        ms = ttl.to_milliseconds()
    else:
        ms = None
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TypeError(
            f"{where}: the ttl must be a Time (Time.seconds(10)), a Duration, a "
            f"datetime.timedelta or an int of milliseconds, got {ttl!r} ({type(ttl).__name__})"
        )
    if ms <= 0:
        raise ValueError(
            f"{where}: the ttl must be positive (at least 1 ms), got {ttl!r} ({ms} ms)"
        )
    return ms


@dataclass(frozen=True, slots=True)
class IncrementalCleanupStrategy:
    """Flink's ``IncrementalCleanupStrategy``: how much incremental cleanup does per step.

    :param cleanup_size: entries (keys of the state) checked per state access
    :param run_cleanup_for_every_record: also run a step per record processed
    """

    cleanup_size: int
    run_for_every_record: bool

    def get_cleanup_size(self) -> int:
        return self.cleanup_size

    def run_cleanup_for_every_record(self) -> bool:
        return self.run_for_every_record


#: Flink's default for the heap backend when cleanup in background is on.
_DEFAULT_INCREMENTAL = IncrementalCleanupStrategy(5, False)


@dataclass(frozen=True, slots=True)
class CleanupStrategies:
    """Flink's ``StateTtlConfig.CleanupStrategies``: which cleanups a TTL state runs."""

    cleanup_in_background: bool
    full_snapshot: bool
    incremental: IncrementalCleanupStrategy | None

    def is_cleanup_in_background(self) -> bool:
        """Whether the backend's default background cleanup is on (Flink's default)."""
        return self.cleanup_in_background

    def in_full_snapshot(self) -> bool:
        """Whether expired entries are left out of snapshots."""
        return self.full_snapshot

    def get_incremental_cleanup_strategy(self) -> IncrementalCleanupStrategy | None:
        """The incremental cleanup: the one configured, else Flink's default (5 entries per
        access, not per record) while cleanup in background is on, else ``None``."""
        if self.incremental is not None:
            return self.incremental
        return _DEFAULT_INCREMENTAL if self.cleanup_in_background else None


class _UpdateType(Enum):
    Disabled = 0
    OnCreateAndWrite = 1
    OnReadAndWrite = 2


class _StateVisibility(Enum):
    ReturnExpiredIfNotCleanedUp = 0
    NeverReturnExpired = 1


class _TtlTimeCharacteristic(Enum):
    ProcessingTime = 0


@dataclass(frozen=True, slots=True)
class StateTtlConfig:
    """Flink's ``StateTtlConfig``: build one with ``StateTtlConfig.new_builder(ttl)``.

    ::

        ttl = (
            StateTtlConfig.new_builder(Time.minutes(5))
            .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .cleanup_full_snapshot()
            .build()
        )
        descriptor.enable_time_to_live(ttl)
    """

    UpdateType = _UpdateType
    StateVisibility = _StateVisibility
    TtlTimeCharacteristic = _TtlTimeCharacteristic

    update_type: _UpdateType
    state_visibility: _StateVisibility
    ttl_ms: int
    cleanup_strategies: CleanupStrategies

    @staticmethod
    def new_builder(ttl: Any) -> StateTtlConfig.Builder:
        """Start a config whose entries live ``ttl`` (a ``Time``, ``Duration``,
        ``timedelta`` or int of ms) after their last update.

        :raises TypeError, ValueError: see :func:`ttl_to_millis`
        """
        return StateTtlConfig.Builder(ttl)

    def get_update_type(self) -> _UpdateType:
        return self.update_type

    def get_state_visibility(self) -> _StateVisibility:
        return self.state_visibility

    def get_ttl(self) -> timedelta:
        """The time to live, as a :class:`datetime.timedelta` (see :attr:`ttl_ms`)."""
        return timedelta(milliseconds=self.ttl_ms)

    def get_ttl_time_characteristic(self) -> _TtlTimeCharacteristic:
        """Always ``ProcessingTime``, the only one Flink has."""
        return _TtlTimeCharacteristic.ProcessingTime

    def is_enabled(self) -> bool:
        """Whether TTL is on (the update type is not ``Disabled``)."""
        return self.update_type is not _UpdateType.Disabled

    def get_cleanup_strategies(self) -> CleanupStrategies:
        return self.cleanup_strategies

    class Builder:
        """Flink's ``StateTtlConfig.Builder``; every setter returns the builder."""

        def __init__(self, ttl: Any) -> None:
            self._ttl_ms = ttl_to_millis(ttl, "StateTtlConfig.new_builder()")
            self._update_type = _UpdateType.OnCreateAndWrite
            self._visibility = _StateVisibility.NeverReturnExpired
            self._background = True
            self._full_snapshot = False
            self._incremental: IncrementalCleanupStrategy | None = None

        def set_update_type(self, update_type: _UpdateType) -> StateTtlConfig.Builder:
            """Which accesses refresh an entry's timestamp (default ``OnCreateAndWrite``)."""
            if not isinstance(update_type, _UpdateType):
                raise TypeError(
                    f"set_update_type() takes a StateTtlConfig.UpdateType (OnCreateAndWrite, "
                    f"OnReadAndWrite or Disabled), got {update_type!r}"
                )
            self._update_type = update_type
            return self

        def update_ttl_on_create_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(_UpdateType.OnCreateAndWrite)

        def update_ttl_on_read_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(_UpdateType.OnReadAndWrite)

        def set_state_visibility(self, visibility: _StateVisibility) -> StateTtlConfig.Builder:
            """Whether an expired entry still there may be returned (default
            ``NeverReturnExpired``)."""
            if not isinstance(visibility, _StateVisibility):
                raise TypeError(
                    f"set_state_visibility() takes a StateTtlConfig.StateVisibility "
                    f"(NeverReturnExpired or ReturnExpiredIfNotCleanedUp), got {visibility!r}"
                )
            self._visibility = visibility
            return self

        def return_expired_if_not_cleaned_up(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(_StateVisibility.ReturnExpiredIfNotCleanedUp)

        def never_return_expired(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(_StateVisibility.NeverReturnExpired)

        def set_ttl_time_characteristic(
            self, characteristic: _TtlTimeCharacteristic
        ) -> StateTtlConfig.Builder:
            """Only ``ProcessingTime`` exists (as in Flink)."""
            if characteristic is not _TtlTimeCharacteristic.ProcessingTime:
                raise TypeError(
                    f"set_ttl_time_characteristic() takes "
                    f"StateTtlConfig.TtlTimeCharacteristic.ProcessingTime, got {characteristic!r}"
                )
            return self

        def use_processing_time(self) -> StateTtlConfig.Builder:
            return self

        def set_ttl(self, ttl: Any) -> StateTtlConfig.Builder:
            """Change the time to live; raises as :meth:`StateTtlConfig.new_builder`."""
            self._ttl_ms = ttl_to_millis(ttl, "StateTtlConfig.Builder.set_ttl()")
            return self

        def cleanup_full_snapshot(self) -> StateTtlConfig.Builder:
            """Leave expired entries out of every snapshot (the live state may keep them)."""
            self._full_snapshot = True
            return self

        def cleanup_incrementally(
            self, cleanup_size: int, run_cleanup_for_every_record: bool
        ) -> StateTtlConfig.Builder:
            """Check ``cleanup_size`` entries for expiry on every access of the state, and
            also once per record processed if ``run_cleanup_for_every_record``.

            :raises TypeError: if ``cleanup_size`` is not an int or the flag not a bool
            :raises ValueError: if ``cleanup_size`` is not positive (as in Flink)
            """
            if isinstance(cleanup_size, bool) or not isinstance(cleanup_size, int):
                raise TypeError(
                    f"cleanup_incrementally(): cleanup_size must be an int (entries checked "
                    f"per state access), got {cleanup_size!r}"
                )
            if cleanup_size <= 0:
                raise ValueError(
                    f"cleanup_incrementally(): cleanup_size must be positive (Flink requires "
                    f"it too), got {cleanup_size}; to turn background cleanup off, call "
                    f"disable_cleanup_in_background() instead"
                )
            if not isinstance(run_cleanup_for_every_record, bool):
                raise TypeError(
                    f"cleanup_incrementally(): run_cleanup_for_every_record must be a bool, "
                    f"got {run_cleanup_for_every_record!r}"
                )
            self._incremental = IncrementalCleanupStrategy(
                cleanup_size, run_cleanup_for_every_record
            )
            return self

        def disable_cleanup_in_background(self) -> StateTtlConfig.Builder:
            """Turn off the default incremental cleanup (an explicit
            :meth:`cleanup_incrementally` still runs)."""
            self._background = False
            return self

        def build(self) -> StateTtlConfig:
            return StateTtlConfig(
                self._update_type,
                self._visibility,
                self._ttl_ms,
                CleanupStrategies(self._background, self._full_snapshot, self._incremental),
            )


# Their PyFlink names, in reprs and for pickle (which finds them as StateTtlConfig.UpdateType).
for _enum, _name in (
    (_UpdateType, "UpdateType"),
    (_StateVisibility, "StateVisibility"),
    (_TtlTimeCharacteristic, "TtlTimeCharacteristic"),
):
    _enum.__name__ = _name
    _enum.__qualname__ = f"StateTtlConfig.{_name}"
