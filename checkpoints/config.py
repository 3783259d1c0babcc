"""Checkpoint configuration: PyFlink's ``CheckpointConfig`` with Flink's defaults.

Defaults follow Flink (``execution.checkpointing.*``): checkpointing disabled until an
interval is set, EXACTLY_ONCE, 10 minute timeout, one concurrent checkpoint, no minimum pause,
zero tolerable failures, one retained checkpoint. Every setter validates at once and raises
``ValueError`` naming the option and the value. A combination Flink forbids (a minimum pause
together with more than one concurrent checkpoint) is refused by whichever setter creates it.

Where checkpoints go is chosen here but built in :mod:`streamlet.checkpoints.storage`
(:func:`~streamlet.checkpoints.storage.create_checkpoint_storage`): a directory (``file:///abs/path``,
a plain path or an :class:`FsStateBackend`), :class:`JobManagerCheckpointStorage` (in memory,
Flink's default), or a ready-made storage object (tests). This module is a leaf: it imports
no sibling module.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "MINIMAL_CHECKPOINT_TIME_MS",
    "CheckpointConfig",
    "CheckpointingMode",
    "ExternalizedCheckpointCleanup",
    "ExternalizedCheckpointRetention",
    "FileSystemCheckpointStorage",
    "FsStateBackend",
    "HashMapStateBackend",
    "JobManagerCheckpointStorage",
    "parse_storage_uri",
]

logger = logging.getLogger("streamlet.checkpoints")

MINIMAL_CHECKPOINT_TIME_MS = 10
"""Smallest interval and timeout Flink accepts (``CheckpointConfig.MINIMAL_CHECKPOINT_TIME``)."""


class CheckpointingMode(Enum):
    """The consistency a checkpoint gives: aligned barriers or barrier tracking (DESIGN §5)."""

    EXACTLY_ONCE = "EXACTLY_ONCE"
    AT_LEAST_ONCE = "AT_LEAST_ONCE"


def parse_storage_uri(uri_or_path: str | os.PathLike[str]) -> Path:
    """Return the local directory named by a ``file://`` URI or a plain path.

    Accepts ``file:///abs/path``, ``file:/abs/path``, ``file://localhost/abs/path`` and plain
    paths (``~`` is expanded; relative paths are made absolute against the current directory).

    :raises ValueError: if the URI has another scheme (``s3://``, ...), names a remote host,
        or is empty
    """
    if isinstance(uri_or_path, os.PathLike):
        return Path(uri_or_path).expanduser().absolute()
    if not isinstance(uri_or_path, str):
        raise TypeError(
            f"checkpoint storage must be a path, a file:// URI or a storage object, "
            f"got {uri_or_path!r}"
        )
    if not uri_or_path:
        raise ValueError("checkpoint storage directory must not be empty, got ''")
    parts = urlsplit(uri_or_path)
    if len(parts.scheme) > 1:  # a one-letter "scheme" is a Windows drive letter
        if parts.scheme != "file":
            raise ValueError(
                f"unsupported checkpoint storage scheme {parts.scheme!r} in {uri_or_path!r}: "
                f"only file:// URIs and plain paths are supported"
            )
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"checkpoint storage URI must name a local path, got host {parts.netloc!r} "
                f"in {uri_or_path!r}"
            )
        if not parts.path:
            raise ValueError(f"checkpoint storage URI has no path, got {uri_or_path!r}")
        return Path(unquote(parts.path))
    return Path(uri_or_path).expanduser().absolute()


class FsStateBackend:
    """A filesystem state location, as in PyFlink: ``env.set_state_backend(FsStateBackend(uri))``.

    Only the checkpoint directory is taken from it; state itself always lives on the heap.

    :param checkpoint_directory_uri: ``file:///abs/path`` or a plain path
    :raises ValueError: if the URI is not a local ``file://`` URI or path
    """

    __slots__ = ("path", "uri")

    def __init__(self, checkpoint_directory_uri: str | os.PathLike[str]) -> None:
        self.uri = str(checkpoint_directory_uri)
        self.path = parse_storage_uri(checkpoint_directory_uri)

    def get_checkpoint_path(self) -> str:
        """Return the URI this backend was created with."""
        return self.uri

    def __repr__(self) -> str:
        return f"FsStateBackend({self.uri!r})"


class JobManagerCheckpointStorage:
    """Keep checkpoints in memory (Flink's ``JobManagerCheckpointStorage``): lost with the process.

    The default when no directory is configured; meant for tests and small jobs.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "JobManagerCheckpointStorage()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobManagerCheckpointStorage)

    def __hash__(self) -> int:
        return hash(JobManagerCheckpointStorage)


class FileSystemCheckpointStorage:
    """Write checkpoints under a directory (Flink's ``FileSystemCheckpointStorage``):
    ``config.set_checkpoint_storage(FileSystemCheckpointStorage("file:///tmp/chk"))``.

    :param checkpoint_path: ``file:///abs/path`` or a plain path
    :param file_state_size_threshold: accepted as in PyFlink and unused (streamlet writes
        one state file per subtask and operator)
    :param write_buffer_size: accepted as in PyFlink and unused
    :raises ValueError: if the path is not a local ``file://`` URI or path
    """

    __slots__ = ("path", "uri")

    def __init__(
        self,
        checkpoint_path: str | os.PathLike[str],
        file_state_size_threshold: int | None = None,
        write_buffer_size: int = -1,
    ) -> None:
        self.uri = str(checkpoint_path)
        self.path = parse_storage_uri(checkpoint_path)

    def get_checkpoint_path(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"FileSystemCheckpointStorage({self.uri!r})"


class HashMapStateBackend:
    """State as objects on the heap (Flink's ``HashMapStateBackend``), which is how
    streamlet always keeps state: ``env.set_state_backend(HashMapStateBackend())`` is
    accepted and changes nothing. Where checkpoints go is the checkpoint storage's
    business (``CheckpointConfig.set_checkpoint_storage``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HashMapStateBackend()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashMapStateBackend)

    def __hash__(self) -> int:
        return hash(HashMapStateBackend)


class ExternalizedCheckpointRetention(Enum):
    """What happens to a job's checkpoints when it ends (Flink's names). streamlet keeps
    the retained completed checkpoints of a checkpoint directory after the job ends, as
    RETAIN_ON_CANCELLATION does (``restore="latest"`` relies on it)."""

    DELETE_ON_CANCELLATION = 0
    RETAIN_ON_CANCELLATION = 1
    NO_EXTERNALIZED_CHECKPOINTS = 2


ExternalizedCheckpointCleanup = ExternalizedCheckpointRetention
"""PyFlink 1.x's name of :class:`ExternalizedCheckpointRetention`."""


def _check_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return value


def _millis(name: str, value: Any) -> int:
    """``value`` in ms: an int, a ``datetime.timedelta``, or a ``Duration`` / ``Time``
    (anything with ``to_milliseconds()``; this module imports no other layer)."""
    if isinstance(value, timedelta):
        return value // timedelta(milliseconds=1)
    to_ms = getattr(value, "to_milliseconds", None)
    if callable(to_ms) and not isinstance(value, int):
        return _check_int(name, to_ms())
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f"{name} must be an int of milliseconds, a Duration, Time or timedelta, got {value!r}"
        )
    return value


@dataclass(slots=True)
class CheckpointConfig:
    """How and when a job checkpoints. Change it through the ``set_*`` methods.

    Fields are read by the runtime; the coordinator calls :meth:`validate` once more, in case
    a field was assigned directly.

    :param interval_ms: trigger interval; ``None`` disables periodic checkpoints
    :param mode: EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE (barrier tracking)
    :param timeout_ms: a checkpoint not complete after this long is aborted
    :param max_concurrent_checkpoints: no periodic trigger while this many are pending
    :param min_pause_between_checkpoints_ms: least time from a completion to the next trigger
    :param tolerable_failed_checkpoints: consecutive counted failures the job survives
    :param max_retained_checkpoints: completed checkpoints kept (Flink's ``num-retained``)
    :param storage: a directory :class:`~pathlib.Path`, :class:`JobManagerCheckpointStorage`,
        or a storage object (anything with ``write_state_file`` and ``write_metadata``)
    """

    interval_ms: int | None = None
    mode: CheckpointingMode = CheckpointingMode.EXACTLY_ONCE
    timeout_ms: int = 600_000
    max_concurrent_checkpoints: int = 1
    min_pause_between_checkpoints_ms: int = 0
    tolerable_failed_checkpoints: int = 0
    max_retained_checkpoints: int = 1
    storage: Any = None
    #: Where savepoints go when ``trigger_savepoint`` / ``stop_with_savepoint`` name no
    #: directory (Flink's ``execution.checkpointing.savepoint-dir``), or None.
    default_savepoint_directory: str | None = None
    externalized_checkpoint_retention: ExternalizedCheckpointRetention = (
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    )
    aligned_checkpoint_timeout_ms: int = 0
    #: Unaligned checkpoints (Flink's ``execution.checkpointing.unaligned.enabled``).
    unaligned_checkpoints: bool = False
    #: Unaligned also over pointwise and broadcast edges (``...unaligned.forced``).
    force_unaligned_checkpoints: bool = False
    #: Whether checkpoints write only the keyed state changed since the previous one
    #: (Flink's ``execution.checkpointing.incremental``); savepoints stay full.
    incremental: bool = False

    def __post_init__(self) -> None:
        if self.storage is None:
            self.storage = JobManagerCheckpointStorage()
        self.validate()

    def validate(self) -> None:
        """Check every field and combination again.

        :raises ValueError: if a value is out of range or the combination is forbidden
        :raises TypeError: if a value has the wrong type
        """
        self.set_checkpoint_interval(self.interval_ms)
        self.set_checkpointing_mode(self.mode)
        self.set_checkpoint_timeout(self.timeout_ms)
        self.set_max_concurrent_checkpoints(self.max_concurrent_checkpoints)
        self.set_min_pause_between_checkpoints(self.min_pause_between_checkpoints_ms)
        self.set_tolerable_checkpoint_failure_number(self.tolerable_failed_checkpoints)
        self.set_max_retained_checkpoints(self.max_retained_checkpoints)
        self.set_checkpoint_storage(self.storage)
        self.enable_incremental_checkpointing(self.incremental)

    # --- setters (PyFlink names) ---

    def set_checkpoint_interval(self, checkpoint_interval: Any) -> CheckpointConfig:
        """Set the trigger interval in ms, or ``None`` to disable periodic checkpoints.

        :raises ValueError: if the interval is below 10 ms
        """
        if checkpoint_interval is not None:
            checkpoint_interval = _millis("checkpoint interval", checkpoint_interval)
            if checkpoint_interval < MINIMAL_CHECKPOINT_TIME_MS:
                raise ValueError(
                    f"checkpoint interval must be >= {MINIMAL_CHECKPOINT_TIME_MS} ms, "
                    f"got {checkpoint_interval}"
                )
        self.interval_ms = checkpoint_interval
        return self

    def set_checkpointing_mode(self, checkpointing_mode: CheckpointingMode) -> CheckpointConfig:
        """Set EXACTLY_ONCE or AT_LEAST_ONCE.

        :raises TypeError: if ``checkpointing_mode`` is not a :class:`CheckpointingMode`
        """
        if not isinstance(checkpointing_mode, CheckpointingMode):
            raise TypeError(
                f"checkpointing mode must be a CheckpointingMode, got {checkpointing_mode!r}"
            )
        self.mode = checkpointing_mode
        return self

    def set_checkpoint_timeout(self, checkpoint_timeout: Any) -> CheckpointConfig:
        """Set how long (ms) a checkpoint may take before it is aborted as expired.

        :raises ValueError: if the timeout is below 10 ms
        """
        checkpoint_timeout = _millis("checkpoint timeout", checkpoint_timeout)
        if checkpoint_timeout < MINIMAL_CHECKPOINT_TIME_MS:
            raise ValueError(
                f"checkpoint timeout must be >= {MINIMAL_CHECKPOINT_TIME_MS} ms, "
                f"got {checkpoint_timeout}"
            )
        self.timeout_ms = checkpoint_timeout
        return self

    def set_max_concurrent_checkpoints(self, max_concurrent_checkpoints: int) -> CheckpointConfig:
        """Set how many checkpoints may be pending at once.

        :raises ValueError: if below 1, or above 1 while a minimum pause is set
        """
        _check_int("max concurrent checkpoints", max_concurrent_checkpoints)
        if max_concurrent_checkpoints < 1:
            raise ValueError(
                f"max concurrent checkpoints must be >= 1, got {max_concurrent_checkpoints}"
            )
        if max_concurrent_checkpoints > 1 and self.min_pause_between_checkpoints_ms > 0:
            raise ValueError(
                f"max concurrent checkpoints must be 1 when a min pause between checkpoints is "
                f"set ({self.min_pause_between_checkpoints_ms} ms), "
                f"got {max_concurrent_checkpoints}"
            )
        self.max_concurrent_checkpoints = max_concurrent_checkpoints
        return self

    def set_min_pause_between_checkpoints(
        self, min_pause_between_checkpoints: Any
    ) -> CheckpointConfig:
        """Set the least time (ms) between the end of one checkpoint and the next trigger.

        :raises ValueError: if negative, or positive while more than one concurrent
            checkpoint is allowed
        """
        min_pause_between_checkpoints = _millis(
            "min pause between checkpoints", min_pause_between_checkpoints
        )
        if min_pause_between_checkpoints < 0:
            raise ValueError(
                f"min pause between checkpoints must be >= 0 ms, "
                f"got {min_pause_between_checkpoints}"
            )
        if min_pause_between_checkpoints > 0 and self.max_concurrent_checkpoints > 1:
            raise ValueError(
                f"min pause between checkpoints must be 0 when max concurrent checkpoints is "
                f"{self.max_concurrent_checkpoints}, got {min_pause_between_checkpoints}"
            )
        self.min_pause_between_checkpoints_ms = min_pause_between_checkpoints
        return self

    def set_tolerable_checkpoint_failure_number(self, number: int) -> CheckpointConfig:
        """Set how many consecutive counted checkpoint failures the job survives.

        :raises ValueError: if negative
        """
        _check_int("tolerable checkpoint failure number", number)
        if number < 0:
            raise ValueError(f"tolerable checkpoint failure number must be >= 0, got {number}")
        self.tolerable_failed_checkpoints = number
        return self

    def set_max_retained_checkpoints(self, number: int) -> CheckpointConfig:
        """Set how many completed checkpoints are kept (Flink's ``num-retained``).

        :raises ValueError: if below 1
        """
        _check_int("max retained checkpoints", number)
        if number < 1:
            raise ValueError(f"max retained checkpoints must be >= 1, got {number}")
        self.max_retained_checkpoints = number
        return self

    def set_checkpoint_storage_dir(
        self, checkpoint_path: str | os.PathLike[str]
    ) -> CheckpointConfig:
        """Write checkpoints under a directory: ``file:///abs/path`` or a plain path.

        :raises ValueError: if the URI is not a local ``file://`` URI or path
        """
        self.storage = parse_storage_uri(checkpoint_path)
        return self

    def set_checkpoint_storage(self, storage: Any) -> CheckpointConfig:
        """Choose where checkpoints go.

        :param storage: a path or ``file://`` URI, an :class:`FsStateBackend` or
            :class:`FileSystemCheckpointStorage`, :class:`JobManagerCheckpointStorage`, or
            a storage object
        :raises ValueError: if a URI is not a local ``file://`` URI or path
        :raises TypeError: if ``storage`` is none of those
        """
        if isinstance(storage, FsStateBackend | FileSystemCheckpointStorage):
            self.storage = storage.path
        elif isinstance(storage, str | os.PathLike):
            self.storage = parse_storage_uri(storage)
        elif isinstance(storage, JobManagerCheckpointStorage) or (
            hasattr(storage, "write_state_file") and hasattr(storage, "write_metadata")
        ):
            self.storage = storage
        else:
            raise TypeError(
                f"checkpoint storage must be a path, a file:// URI, an FsStateBackend, "
                f"FileSystemCheckpointStorage, JobManagerCheckpointStorage or a storage "
                f"object, got {storage!r}"
            )
        return self

    # --- getters ---

    def is_checkpointing_enabled(self) -> bool:
        """Return True if periodic checkpoints are enabled (an interval is set)."""
        return self.interval_ms is not None

    def get_checkpoint_interval(self) -> int:
        """Return the trigger interval in ms, -1 when checkpointing is off (as Flink)."""
        return -1 if self.interval_ms is None else self.interval_ms

    def get_checkpointing_mode(self) -> CheckpointingMode:
        """Return the checkpointing mode."""
        return self.mode

    def get_checkpoint_timeout(self) -> int:
        """Return the checkpoint timeout in ms."""
        return self.timeout_ms

    def get_max_concurrent_checkpoints(self) -> int:
        """Return the maximum number of concurrently pending checkpoints."""
        return self.max_concurrent_checkpoints

    def get_min_pause_between_checkpoints(self) -> int:
        """Return the minimum pause between checkpoints in ms."""
        return self.min_pause_between_checkpoints_ms

    def get_tolerable_checkpoint_failure_number(self) -> int:
        """Return how many consecutive counted failures are tolerated."""
        return self.tolerable_failed_checkpoints

    def get_max_retained_checkpoints(self) -> int:
        """Return how many completed checkpoints are kept."""
        return self.max_retained_checkpoints

    def get_checkpoint_storage(self) -> Any:
        """Return the storage choice: a directory ``Path``, in-memory, or a storage object."""
        return self.storage

    def get_checkpoint_storage_dir(self) -> Path | None:
        """Return the checkpoint directory, or ``None`` if checkpoints are not on disk."""
        return self.storage if isinstance(self.storage, Path) else None

    # --- PyFlink's remaining CheckpointConfig methods (issue 16) ---

    def set_default_savepoint_directory(
        self, directory: str | os.PathLike[str] | None
    ) -> CheckpointConfig:
        """Write savepoints here when ``trigger_savepoint()`` / ``stop_with_savepoint()``
        name no directory (Flink's ``execution.checkpointing.savepoint-dir``); None: no
        default.

        :raises ValueError: if not a local ``file://`` URI or path
        """
        if directory is None:
            self.default_savepoint_directory = None
        else:
            self.default_savepoint_directory = str(parse_storage_uri(directory))
        return self

    def get_default_savepoint_directory(self) -> str | None:
        return self.default_savepoint_directory

    def set_externalized_checkpoint_retention(
        self, retention: ExternalizedCheckpointRetention
    ) -> CheckpointConfig:
        """Record what should happen to checkpoints when the job ends. streamlet keeps the
        retained checkpoints of a checkpoint directory in every case (so that
        ``restore="latest"`` finds them): DELETE_ON_CANCELLATION and
        NO_EXTERNALIZED_CHECKPOINTS are recorded, with a warning, and not enforced.

        :raises TypeError: if ``retention`` is not an ExternalizedCheckpointRetention
        """
        if not isinstance(retention, ExternalizedCheckpointRetention):
            raise TypeError(
                f"externalized checkpoint retention must be an "
                f"ExternalizedCheckpointRetention, got {retention!r}"
            )
        if retention is not ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION:
            logger.warning(
                "%s is not enforced: streamlet keeps the retained checkpoints of a checkpoint "
                "directory after the job ends (delete the directory to drop them)",
                retention.name,
            )
        self.externalized_checkpoint_retention = retention
        return self

    def enable_externalized_checkpoints(
        self, cleanup_mode: ExternalizedCheckpointRetention
    ) -> CheckpointConfig:
        """PyFlink 1.x's name of :meth:`set_externalized_checkpoint_retention`."""
        return self.set_externalized_checkpoint_retention(cleanup_mode)

    set_externalized_checkpoint_cleanup = enable_externalized_checkpoints

    def get_externalized_checkpoint_retention(self) -> ExternalizedCheckpointRetention:
        return self.externalized_checkpoint_retention

    get_externalized_checkpoint_cleanup = get_externalized_checkpoint_retention

    def is_externalized_checkpoints_enabled(self) -> bool:
        """Whether completed checkpoints outlive the job: with a checkpoint directory."""
        return self.get_checkpoint_storage_dir() is not None

    def is_fail_on_checkpointing_errors(self) -> bool:
        return self.tolerable_failed_checkpoints == 0

    def set_fail_on_checkpointing_errors(
        self, fail_on_checkpointing_errors: bool
    ) -> CheckpointConfig:
        """True: the first failed checkpoint fails the job (0 tolerable failures); False:
        failed checkpoints never do (PyFlink's deprecated switch)."""
        if not isinstance(fail_on_checkpointing_errors, bool):
            raise TypeError(f"expected a bool, got {fail_on_checkpointing_errors!r}")
        return self.set_tolerable_checkpoint_failure_number(
            0 if fail_on_checkpointing_errors else 2**31 - 1
        )

    # --- unaligned checkpoints (issue 17) ---

    def is_unaligned_checkpoints_enabled(self) -> bool:
        return self.unaligned_checkpoints

    def enable_unaligned_checkpoints(self, enabled: bool = True) -> CheckpointConfig:
        """Let barriers overtake the records in flight (Flink's unaligned checkpoints).

        A subtask forwards the first barrier of a checkpoint at once, ahead of its queued
        output, and the records the barrier overtakes (in its output channels, and in its
        input channels before that channel's barrier) are stored with the checkpoint as
        channel state, replayed before new input on restore. Checkpoints then complete
        quickly under backpressure, at the cost of storing in-flight records. As in Flink
        they apply to EXACTLY_ONCE only (under AT_LEAST_ONCE the job runs with barrier
        tracking and a warning), savepoints stay aligned, and with
        :meth:`set_aligned_checkpoint_timeout` a checkpoint starts aligned and switches
        when its alignment takes too long.

        :raises TypeError: if ``enabled`` is not a bool
        """
        if not isinstance(enabled, bool):
            raise TypeError(f"enable_unaligned_checkpoints expects a bool, got {enabled!r}")
        self.unaligned_checkpoints = enabled
        return self

    def disable_unaligned_checkpoints(self) -> CheckpointConfig:
        return self.enable_unaligned_checkpoints(False)

    def set_force_unaligned_checkpoints(
        self, force_unaligned_checkpoints: bool = True
    ) -> CheckpointConfig:
        """Take unaligned checkpoints over pointwise (forward, rescale) and broadcast edges
        too, which Flink (and streamlet) otherwise checkpoint aligned. Channel state of
        such an edge cannot be restored at another parallelism.

        :raises TypeError: if the argument is not a bool
        """
        if not isinstance(force_unaligned_checkpoints, bool):
            raise TypeError(
                f"set_force_unaligned_checkpoints expects a bool, got "
                f"{force_unaligned_checkpoints!r}"
            )
        self.force_unaligned_checkpoints = force_unaligned_checkpoints
        return self

    def is_force_unaligned_checkpoints(self) -> bool:
        return self.force_unaligned_checkpoints

    def set_aligned_checkpoint_timeout(self, alignment_timeout: Any) -> CheckpointConfig:
        """With unaligned checkpoints: start each checkpoint aligned, and switch a subtask
        to unaligned once the checkpoint's start delay there (barrier creation to now)
        exceeds this (ms, a ``Duration`` / ``timedelta``). 0, the default, is Flink's
        "start unaligned at once".

        :raises ValueError: if negative
        """
        ms = _millis("aligned checkpoint timeout", alignment_timeout)
        if ms < 0:
            raise ValueError(
                f"aligned checkpoint timeout must be >= 0 ms, got {alignment_timeout!r}"
            )
        self.aligned_checkpoint_timeout_ms = ms
        return self

    def get_aligned_checkpoint_timeout(self) -> int:
        return self.aligned_checkpoint_timeout_ms

    @property
    def takes_unaligned_checkpoints(self) -> bool:
        """Whether checkpoints of the job may be unaligned: enabled and EXACTLY_ONCE (Flink
        ignores the switch under AT_LEAST_ONCE, with a warning the runner logs)."""
        return self.unaligned_checkpoints and self.mode is CheckpointingMode.EXACTLY_ONCE

    def enable_incremental_checkpointing(self, enabled: bool = True) -> CheckpointConfig:
        """Write, in each checkpoint, only the keyed state changed since the previous one
        (Flink's ``execution.checkpointing.incremental``).

        Keyed state then goes into pieces in the job's ``shared/`` checkpoint directory:
        now and then a full base, in between the entries changed since it (a changelog per
        key, materialized periodically, as Flink's changelog state backend does). Later
        checkpoints reference the pieces of earlier ones, which are removed when no retained
        checkpoint references them. Savepoints are always full and self-contained. Every
        state access then also records its key (a set insert).

        :raises TypeError: if ``enabled`` is not a bool
        """
        if not isinstance(enabled, bool):
            raise TypeError(f"incremental checkpointing takes a bool, got {enabled!r}")
        self.incremental = enabled
        return self

    def is_incremental_checkpointing_enabled(self) -> bool:
        return self.incremental

    set_alignment_timeout = set_aligned_checkpoint_timeout
    get_alignment_timeout = get_aligned_checkpoint_timeout
