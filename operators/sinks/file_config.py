"""PyFlink's file sink settings: :class:`Encoder`, :class:`OutputFileConfig`,
:class:`RollingPolicy` and :class:`BucketAssigner`, the values
``FileSink.for_row_format(...)``'s builder takes.

They are plain, validated values here (PyFlink's wrap Java objects); the sink reads them when
the builder builds it, so a bad setting fails at build time.
"""

from __future__ import annotations

import codecs
from typing import Any

from ..file_paths import has_separator
from ..time import to_millis

__all__ = [
    "BucketAssigner",
    "DefaultRollingPolicy",
    "Encoder",
    "FileCompactStrategy",
    "FileCompactor",
    "OnCheckpointRollingPolicy",
    "OutputFileConfig",
    "RollingPolicy",
]

_README_TABLE = "see the README's 'How it maps to Flink' table"


class Encoder:
    """Turns a record into its line in a part file (PyFlink's
    ``pyflink.common.serialization.Encoder``).

    An Encoder is a callable returning the line without its newline, which is the contract
    of ``FileSink(encoder=...)``; the sink adds the ``"\\n"`` and encodes the text in
    :attr:`charset_name`.

    :param encode: record -> line (without the newline)
    :param charset_name: the text encoding of the part files
    :raises TypeError: if ``encode`` is not callable or ``charset_name`` not a str
    :raises ValueError: if ``charset_name`` is not a known text encoding
    """

    def __init__(self, encode: Any = str, charset_name: str = "UTF-8") -> None:
        if not callable(encode):
            raise TypeError(f"Encoder needs a callable record -> str, got {encode!r}")
        self._encode = encode
        self.charset_name = check_charset(charset_name)

    @staticmethod
    def simple_string_encoder(charset_name: str = "UTF-8") -> Encoder:
        """``str(record)`` per line, as Flink's ``SimpleStringEncoder`` (``toString()``)."""
        return Encoder(str, charset_name)

    def __call__(self, record: Any) -> str:
        return self._encode(record)

    def __repr__(self) -> str:
        return f"Encoder({self._encode!r}, charset_name={self.charset_name!r})"


def check_charset(charset_name: Any) -> str:
    """Return ``charset_name`` if Python knows it as a text encoding.

    :raises TypeError: if it is not a str
    :raises ValueError: if the encoding is unknown
    """
    if not isinstance(charset_name, str):
        raise TypeError(f"charset_name must be a str such as 'UTF-8', got {charset_name!r}")
    try:
        codecs.lookup(charset_name)
    except LookupError:
        raise ValueError(
            f"charset_name must be a known text encoding such as 'UTF-8', got {charset_name!r}"
        ) from None
    return charset_name


class OutputFileConfig:
    """The part file names' prefix and suffix (Flink's ``OutputFileConfig``).

    A part file is named ``<prefix>-<subtask>-<writer id>-<counter><suffix>``.

    :raises TypeError: if either is not a str
    :raises ValueError: if the prefix is empty, starts with a dot or holds a path separator,
        or the suffix holds a path separator
    """

    def __init__(self, part_prefix: str, part_suffix: str) -> None:
        if not isinstance(part_prefix, str):
            raise TypeError(f"part_prefix must be a str, got {part_prefix!r}")
        if not isinstance(part_suffix, str):
            raise TypeError(f"part_suffix must be a str, got {part_suffix!r}")
        if not part_prefix or part_prefix.startswith(".") or has_separator(part_prefix):
            raise ValueError(
                f"part_prefix must be a non-empty file name part without a leading dot or a "
                f"path separator, got {part_prefix!r}"
            )
        if has_separator(part_suffix):
            raise ValueError(f"part_suffix must not hold a path separator, got {part_suffix!r}")
        self._part_prefix = part_prefix
        self._part_suffix = part_suffix

    @staticmethod
    def builder() -> OutputFileConfig.OutputFileConfigBuilder:
        """A builder starting at Flink's defaults: prefix ``"part"``, no suffix."""
        return OutputFileConfig.OutputFileConfigBuilder()

    def get_part_prefix(self) -> str:
        """The prefix of the part file names."""
        return self._part_prefix

    def get_part_suffix(self) -> str:
        """The suffix of the part file names."""
        return self._part_suffix

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutputFileConfig):
            return NotImplemented
        return (self._part_prefix, self._part_suffix) == (other._part_prefix, other._part_suffix)

    def __hash__(self) -> int:
        return hash((self._part_prefix, self._part_suffix))

    def __repr__(self) -> str:
        return f"OutputFileConfig({self._part_prefix!r}, {self._part_suffix!r})"

    class OutputFileConfigBuilder:
        """Builds an :class:`OutputFileConfig`; checks happen in :meth:`build`."""

        def __init__(self) -> None:
            self.part_prefix = "part"
            self.part_suffix = ""

        def with_part_prefix(self, prefix: str) -> OutputFileConfig.OutputFileConfigBuilder:
            self.part_prefix = prefix
            return self

        def with_part_suffix(self, suffix: str) -> OutputFileConfig.OutputFileConfigBuilder:
            self.part_suffix = suffix
            return self

        def build(self) -> OutputFileConfig:
            return OutputFileConfig(self.part_prefix, self.part_suffix)


class RollingPolicy:
    """When a sink subtask closes its part file and starts the next (Flink's
    ``RollingPolicy``). Build one with :meth:`default_rolling_policy` or
    :meth:`on_checkpoint_rolling_policy`.

    Whatever the policy, a part file also rolls at every checkpoint, and becomes visible only
    when that checkpoint completes: rolling never publishes anything early, so exactly-once
    holds with every policy.
    """

    #: Largest part file in bytes before it rolls (None: no limit).
    part_size: int | None = None
    #: Longest a part file stays open, in ms (None: no limit).
    rollover_interval_ms: int | None = None
    #: Longest a part file may go without a write, in ms (None: no limit).
    inactivity_interval_ms: int | None = None

    @staticmethod
    def default_rolling_policy(
        part_size: int = 1024 * 1024 * 128,
        rollover_interval: Any = 60 * 1000,
        inactivity_interval: Any = 60 * 1000,
    ) -> DefaultRollingPolicy:
        """Roll when the part file reached ``part_size`` bytes, is older than
        ``rollover_interval`` or got no write for ``inactivity_interval`` (and at every
        checkpoint). Intervals are ms, ``Duration``, ``Time`` or ``timedelta``."""
        return DefaultRollingPolicy(part_size, rollover_interval, inactivity_interval)

    @staticmethod
    def on_checkpoint_rolling_policy() -> OnCheckpointRollingPolicy:
        """Roll only at checkpoints: one part file per subtask and checkpoint."""
        return OnCheckpointRollingPolicy()


class DefaultRollingPolicy(RollingPolicy):
    """Rolls on size, age and inactivity; see :meth:`RollingPolicy.default_rolling_policy`.

    The sink checks the policy before it writes a batch, so a part file holds whole batches
    and can exceed ``part_size`` by the last batch written to it; a file that stays idle is
    rolled (closed) at the next write or checkpoint, whichever comes first.

    :raises TypeError: if ``part_size`` is not an int or an interval not a duration
    :raises ValueError: if ``part_size`` or an interval is below 1
    """

    def __init__(
        self,
        part_size: int = 1024 * 1024 * 128,
        rollover_interval: Any = 60 * 1000,
        inactivity_interval: Any = 60 * 1000,
    ) -> None:
        if isinstance(part_size, bool) or not isinstance(part_size, int):
            raise TypeError(f"part_size must be an int of bytes, got {part_size!r}")
        if part_size < 1:
            raise ValueError(f"part_size must be at least 1 byte, got {part_size}")
        self.part_size = part_size
        self.rollover_interval_ms = to_millis(rollover_interval, "rollover_interval", minimum=1)
        self.inactivity_interval_ms = to_millis(
            inactivity_interval, "inactivity_interval", minimum=1
        )

    def __repr__(self) -> str:
        return (
            f"DefaultRollingPolicy(part_size={self.part_size}, rollover_interval="
            f"{self.rollover_interval_ms}, inactivity_interval={self.inactivity_interval_ms})"
        )


class OnCheckpointRollingPolicy(RollingPolicy):
    """Rolls only at checkpoints; see :meth:`RollingPolicy.on_checkpoint_rolling_policy`."""

    def __repr__(self) -> str:
        return "OnCheckpointRollingPolicy()"


class BucketAssigner:
    """Which directory under the base path a record goes to (Flink's ``BucketAssigner``).

    Only :meth:`base_path_bucket_assigner` is supported: every part file goes directly into
    the base path. (Flink's row-format default is the date-time assigner; streamlet's is the
    base path.)
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    @staticmethod
    def base_path_bucket_assigner() -> BucketAssigner:
        """No buckets: all part files go into the base path."""
        return BucketAssigner("base_path")

    @staticmethod
    def date_time_bucket_assigner(
        format_str: str = "yyyy-MM-dd--HH", timezone_id: str | None = None
    ) -> BucketAssigner:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "BucketAssigner.date_time_bucket_assigner is not supported by streamlet yet: part "
            "files go directly into the base path; use "
            f"BucketAssigner.base_path_bucket_assigner() ({_README_TABLE})"
        )

    def __repr__(self) -> str:
        return f"BucketAssigner({self.kind!r})"


class FileCompactStrategy:
    """Flink's compaction strategy for the file sink; not supported by streamlet yet."""

    @staticmethod
    def builder() -> Any:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            f"FileCompactStrategy (file sink compaction) is not supported by streamlet yet "
            f"({_README_TABLE})"
        )


class FileCompactor:
    """Flink's file compactor for the file sink; not supported by streamlet yet."""

    @staticmethod
    def concat_file_compactor(file_delimiter: bytes | None = None) -> Any:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            f"FileCompactor (file sink compaction) is not supported by streamlet yet "
            f"({_README_TABLE})"
        )

    @staticmethod
    def identical_file_compactor() -> Any:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        return FileCompactor.concat_file_compactor()
