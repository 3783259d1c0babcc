"""Exactly-once part files: :class:`FileSink` (a two-phase-commit sink) and
:func:`read_committed`.

Layout of ``directory`` (subtask 1, writer id ``3f2c9e1b``, default prefix and suffix)::

    part-1-3f2c9e1b-000002.txt                  committed: visible
    .part-1-3f2c9e1b-000003.txt.inprogress      in progress or pending: hidden

A transaction is one part file. Its records are appended to the hidden file; ``pre_commit``
(at a checkpoint) flushes and fsyncs it; ``commit`` (when the checkpoint completed) renames
it atomically to its visible name and fsyncs the directory. So a reader that skips dot-files
sees only committed data, and every part file appears whole. A new part file starts at every
checkpoint; a transaction that got no record never creates a file (files are created on the
first write), so idle checkpoints leave nothing behind. A rolling policy
(:class:`~streamlet.operators.sinks.file_config.DefaultRollingPolicy`) may also roll between
checkpoints: the transaction then spans several part files with consecutive counters, all
hidden until its checkpoint completes, so exactly-once is the same with every policy.

Names are never reused: the writer id is drawn at random for every writer (one per subtask,
attempt and process) and checked against the directory, and the counter grows per
transaction. Files are created exclusively and a commit never overwrites a file, so a
restarted job cannot clobber what an earlier attempt committed.

Hidden files that are in no checkpoint's state can stay behind, for example those of a
writer that failed before its first checkpoint. They are harmless: readers skip dot-files
and no commit refers to them; delete them by hand when no job writes into the directory.
The sink does not sweep the directory by name, because another live subtask (or job) may be
writing a hidden file there; it only removes files of writers named in restored state, which
belong to a failed attempt (see :meth:`FileSink.recover_and_abort`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread

from streamlet.checkpoints.file_blob_store import fsync_directory

from ..base import OperatorContext
from ..file_paths import has_separator, local_path
from ..processing_time import current_processing_time
from ..time import to_millis
from .file_config import (
    BucketAssigner,
    DefaultRollingPolicy,
    Encoder,
    OutputFileConfig,
    RollingPolicy,
    check_charset,
)
from .two_phase import TwoPhaseCommitSink, check_plain_name

__all__ = ["FileSink", "StreamingFileSink", "read_committed"]

logger = logging.getLogger("streamlet.sinks")

_HIDDEN_SUFFIX = ".inprogress"
#: Encoded batches at least this large are written from a worker thread; smaller ones go
#: into the file's buffer directly (a memory copy, rarely a page-cache write).
_THREAD_WRITE_BYTES = 64 * 1024
_TRANSACTION_KEYS = frozenset({"name", "hidden", "stem", "suffix", "counter", "records", "parts"})
#: What checkpoints written before rolling policies existed hold (one part per transaction).
_SINGLE_PART_KEYS = _TRANSACTION_KEYS - {"parts"}
_README_TABLE = "see the README's 'How it maps to Flink' table"
#: Largest counter accepted from restored state (a writer never gets near it).
_MAX_COUNTER = 10**12


class FileSink(TwoPhaseCommitSink[Any, dict[str, Any]]):
    """Write each record as one line into part files of ``directory``, exactly once.

    Works for bounded and unbounded jobs. With checkpointing, a part file becomes visible
    when the checkpoint after its records completed (a bounded job's final checkpoint
    commits the last one before ``execute()`` returns). Without checkpointing, each subtask
    commits its one part file when its input ends: on a failure nothing is committed, and a
    restart (none by default) would write everything again next to it, so this mode is
    at-least-once at best.

    RESUME CONTRACT. A transaction is the dict ``{"name", "hidden", "stem", "suffix",
    "counter", "records", "parts"}``: the visible and hidden names of its first part file
    (relative to the directory, so a moved directory still restores), the name up to the
    counter, the suffix, the first part's counter, the number of records written and the
    number of part files (counters ``counter .. counter + parts - 1``; without ``parts``, as
    older checkpoints store it, one). A restore renames the hidden files of
    pending transactions (or finds them renamed already) and deletes those of in-progress
    ones, plus any later hidden file of the same old writer (written after the restored
    checkpoint). Records written after the restored checkpoint never become visible; the
    sources replay them into new part files. Restored transactions are untrusted: before
    any commit or abort each must name plain files of this sink's pattern (its prefix and
    suffix) directly inside ``directory`` (:meth:`validate_restored_transaction`), and a
    commit refuses a hidden file that is a symlink.

    :param directory: where part files go; created (with parents) if missing
    :param prefix: start of every part file name; must not start with a dot
    :param suffix: end of every part file name
    :param encoder: turns a record into its line (without the newline), for example
        :meth:`Encoder.simple_string_encoder`
    :param encoding: the text encoding of the part files; by default the ``Encoder``'s
        ``charset_name``, else UTF-8
    :param rolling_policy: when to start a new part file between checkpoints; ``None`` or
        :meth:`RollingPolicy.on_checkpoint_rolling_policy`: only at checkpoints
    :param commit_on_end_of_input: see
        :class:`~streamlet.operators.sinks.two_phase.TwoPhaseCommitSink`
    :raises TypeError: if ``directory`` is not a path, ``prefix`` or ``suffix`` not a str,
        ``encoder`` not callable or ``rolling_policy`` not a RollingPolicy
    :raises ValueError: if ``prefix`` is empty, starts with a dot or holds a path separator,
        if ``suffix`` holds a path separator, or if ``directory`` exists and is not a
        directory
    """

    name = "File Sink"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        prefix: str = "part",
        suffix: str = ".txt",
        encoder: Callable[[Any], str] = str,
        commit_on_end_of_input: bool | None = None,
        encoding: str | None = None,
        rolling_policy: RollingPolicy | None = None,
    ) -> None:
        super().__init__(commit_on_end_of_input=commit_on_end_of_input)
        if not isinstance(directory, str | os.PathLike):
            raise TypeError(f"directory must be a str or path, got {directory!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        if not isinstance(suffix, str):
            raise TypeError(f"suffix must be a str, got {suffix!r}")
        if not prefix or prefix.startswith(".") or has_separator(prefix):
            raise ValueError(
                f"prefix must be a non-empty file name part without a leading dot or a path "
                f"separator, got {prefix!r}"
            )
        if has_separator(suffix):
            raise ValueError(f"suffix must not hold a path separator, got {suffix!r}")
        if not callable(encoder):
            raise TypeError(f"encoder must be callable, got {encoder!r}")
        if encoding is None:
            encoding = encoder.charset_name if isinstance(encoder, Encoder) else "utf-8"
        if rolling_policy is not None and not isinstance(rolling_policy, RollingPolicy):
            raise TypeError(
                f"rolling_policy must be a RollingPolicy (RollingPolicy.default_rolling_policy() "
                f"or RollingPolicy.on_checkpoint_rolling_policy()), got {rolling_policy!r}"
            )
        self.directory = Path(os.path.abspath(os.fspath(directory)))
        self.prefix = prefix
        self.suffix = suffix
        self.encoder = encoder
        self.encoding = check_charset(encoding)
        self.rolling_policy = rolling_policy
        policy = rolling_policy or RollingPolicy()
        self._part_size = policy.part_size
        self._rollover_ms = policy.rollover_interval_ms
        self._inactivity_ms = policy.inactivity_interval_ms
        self._timed = self._rollover_ms is not None or self._inactivity_ms is not None
        _prepare_directory(self.directory)
        self._writer_id = ""
        self._counter = 0
        # hidden name -> open file, for transactions written to but not pre-committed yet
        self._files: dict[str, BinaryIO] = {}
        # The open part file's bytes, creation and last write (processing time, ms).
        self._part_bytes = 0
        self._part_opened_ms = 0
        self._part_written_ms = 0

    @staticmethod
    def for_row_format(
        base_path: str | os.PathLike[str], encoder: Any
    ) -> FileSink.RowFormatBuilder:
        """PyFlink's builder: ``FileSink.for_row_format(path, Encoder.simple_string_encoder())
        .with_output_file_config(...).with_rolling_policy(...).build()``.

        :param base_path: the directory of the part files (a path or ``file://`` URI)
        :param encoder: an :class:`Encoder` (or any callable record -> line)
        :raises TypeError: if ``encoder`` is neither
        :raises NotImplementedError: for a non-local ``base_path`` (``hdfs://``, ...)
        """
        return FileSink.RowFormatBuilder(base_path, encoder)

    @staticmethod
    def for_bulk_format(base_path: str | os.PathLike[str], writer_factory: Any) -> Any:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "FileSink.for_bulk_format (bulk formats: Parquet, ORC, Avro) is not supported by "
            f"streamlet yet; use FileSink.for_row_format ({_README_TABLE})"
        )

    class RowFormatBuilder:
        """Configures a row-format :class:`FileSink`; :meth:`build` makes it.

        Defaults as Flink's: prefix ``"part"``, no suffix,
        :meth:`RollingPolicy.default_rolling_policy`; but part files go directly into the
        base path (Flink's default bucket assigner makes hourly subdirectories).
        """

        def __init__(self, base_path: str | os.PathLike[str], encoder: Any) -> None:
            self._base_path = local_path(base_path, "FileSink base_path")
            if not callable(encoder):
                raise TypeError(
                    f"FileSink.for_row_format needs an Encoder, got {encoder!r}; use "
                    f"Encoder.simple_string_encoder()"
                )
            self._encoder = encoder
            self._output_file_config = OutputFileConfig("part", "")
            self._rolling_policy: RollingPolicy = DefaultRollingPolicy()

        def with_output_file_config(
            self, output_file_config: OutputFileConfig
        ) -> FileSink.RowFormatBuilder:
            """Name the part files ``<prefix>-...<suffix>``."""
            if not isinstance(output_file_config, OutputFileConfig):
                raise TypeError(
                    f"with_output_file_config needs an OutputFileConfig, got "
                    f"{output_file_config!r}; use OutputFileConfig.builder()"
                    f".with_part_prefix(...).with_part_suffix(...).build()"
                )
            self._output_file_config = output_file_config
            return self

        def with_rolling_policy(self, rolling_policy: RollingPolicy) -> FileSink.RowFormatBuilder:
            """When to start a new part file (also always at checkpoints)."""
            if not isinstance(rolling_policy, RollingPolicy):
                raise TypeError(
                    f"with_rolling_policy needs a RollingPolicy, got {rolling_policy!r}; use "
                    f"RollingPolicy.default_rolling_policy() or "
                    f"RollingPolicy.on_checkpoint_rolling_policy()"
                )
            self._rolling_policy = rolling_policy
            return self

        def with_bucket_assigner(
            self, bucket_assigner: BucketAssigner
        ) -> FileSink.RowFormatBuilder:
            """Only :meth:`BucketAssigner.base_path_bucket_assigner` is supported."""
            if not isinstance(bucket_assigner, BucketAssigner):
                raise TypeError(
                    f"with_bucket_assigner needs a BucketAssigner, got {bucket_assigner!r}; use "
                    f"BucketAssigner.base_path_bucket_assigner()"
                )
            return self

        def with_bucket_check_interval(self, interval: Any) -> FileSink.RowFormatBuilder:
            """Accepted for PyFlink's sake (ms, ``Duration``, ...): streamlet checks the
            rolling policy at every write and checkpoint instead of on a timer."""
            to_millis(interval, "bucket check interval", minimum=1)
            return self

        def enable_compact(self, strategy: Any, compactor: Any) -> FileSink.RowFormatBuilder:
            """Not supported yet.

            :raises NotImplementedError: always
            """
            raise NotImplementedError(
                f"FileSink compaction (enable_compact) is not supported by streamlet yet "
                f"({_README_TABLE})"
            )

        def disable_compact(self) -> FileSink.RowFormatBuilder:
            """Compaction is off anyway."""
            return self

        def build(self) -> FileSink:
            """The sink; checks the base path (created if missing)."""
            return FileSink(
                self._base_path,
                prefix=self._output_file_config.get_part_prefix(),
                suffix=self._output_file_config.get_part_suffix(),
                encoder=self._encoder,
                rolling_policy=self._rolling_policy,
            )

    def __repr__(self) -> str:
        return f"FileSink({str(self.directory)!r}, prefix={self.prefix!r})"

    # --- per-subtask lifecycle ---

    async def open(self, ctx: OperatorContext) -> None:
        await super().open(ctx)
        await anyio.to_thread.run_sync(_prepare_directory, self.directory)
        self._writer_id = await anyio.to_thread.run_sync(self._choose_writer_id)
        self._counter = 0

    async def close(self) -> None:
        files, self._files = self._files, {}
        errors = []
        for file in files.values():
            try:
                file.close()
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    # --- transactions ---

    def begin_transaction(self) -> dict[str, Any]:
        """Name the next part file; the hidden file is created by the first write."""
        counter = self._counter
        self._counter += 1
        stem = f"{self.prefix}-{self.ctx.subtask_index}-{self._writer_id}-"
        name = f"{stem}{counter:06d}{self.suffix}"
        return {
            "name": name,
            "hidden": f".{name}{_HIDDEN_SUFFIX}",
            "stem": stem,
            "suffix": self.suffix,
            "counter": counter,
            "records": 0,
            "parts": 1,
        }

    async def write(self, transaction: dict[str, Any], records: list[Any]) -> None:
        """Append one line per record to the transaction's current part file (hidden),
        rolling to the next part first if the rolling policy says so."""
        if not records:
            return
        data = _encode(self.encoder, records, self.encoding)
        hidden = _part_names(transaction, transaction.get("parts", 1) - 1)[1]
        file = self._files.get(hidden)
        now = current_processing_time(self.ctx.processing_time) if self._timed else 0
        if file is not None and self._should_roll(now):
            # Finished like at a checkpoint (fsynced), but stays hidden until one completes.
            await anyio.to_thread.run_sync(_finish, self._files, hidden, self.directory)
            transaction["parts"] += 1
            self._counter += 1
            hidden = _part_names(transaction, transaction["parts"] - 1)[1]
            file = None
        if file is None:
            # The thread registers the file itself: if this task is cancelled meanwhile,
            # the file is still in self._files, and close() closes it.
            file = await anyio.to_thread.run_sync(
                _create_exclusive, self._files, hidden, self.directory / hidden
            )
            self._part_bytes = 0
            self._part_opened_ms = now
        if len(data) >= _THREAD_WRITE_BYTES:
            await anyio.to_thread.run_sync(file.write, data)
        else:
            file.write(data)
        self._part_bytes += len(data)
        self._part_written_ms = now
        transaction["records"] += len(records)

    def _should_roll(self, now: int) -> bool:
        """Whether the open part file is due to roll before the next batch."""
        if self._part_size is not None and self._part_bytes >= self._part_size:
            return True
        if self._rollover_ms is not None and now - self._part_opened_ms >= self._rollover_ms:
            return True
        return (
            self._inactivity_ms is not None and now - self._part_written_ms >= self._inactivity_ms
        )

    async def pre_commit(self, transaction: dict[str, Any]) -> None:
        """Flush, fsync and close the open part file (and fsync the directory)."""
        # The worker pops the file itself: a call cancelled before its thread starts leaves
        # the file registered, so close() still closes it. Earlier parts were finished when
        # they rolled.
        hidden = _part_names(transaction, transaction.get("parts", 1) - 1)[1]
        await anyio.to_thread.run_sync(_finish, self._files, hidden, self.directory)

    async def commit(self, transaction: dict[str, Any]) -> None:
        """Rename the hidden file to its visible name; a no-op if that happened already.

        :raises FileNotFoundError: if both files are missing although records were written
        :raises FileExistsError: if both files exist (a commit never overwrites a file)
        """
        await anyio.to_thread.run_sync(_commit, self.directory, transaction, False)

    async def recover_and_commit(self, transaction: dict[str, Any]) -> None:
        """As :meth:`commit`, but when both files are missing log a warning instead of
        raising: the committed file may have been consumed and moved away since."""
        await anyio.to_thread.run_sync(_commit, self.directory, transaction, True)

    async def abort(self, transaction: dict[str, Any]) -> None:
        """Close and delete the hidden part files, if there are any."""
        for part in range(transaction.get("parts", 1)):
            hidden = _part_names(transaction, part)[1]
            await anyio.to_thread.run_sync(_discard, self._files, hidden, self.directory)

    def validate_restored_transaction(self, transaction: Any) -> None:
        """Accept only a transaction this sink could have begun: its own naming, no paths.

        Restored names are joined to the directory, renamed and deleted, so each must be a
        plain name of this sink's pattern (``<prefix>-<subtask>-<writer id>-<counter>
        <suffix>`` and its hidden twin), consistent with the stem, counter and suffix
        stored next to it. A checkpoint written with another prefix or suffix is refused:
        restore it with the ones it was written with.

        :raises TypeError: if the transaction or a field has the wrong type
        :raises ValueError: if a field is out of range or a name is not this sink's
        """
        if not isinstance(transaction, dict):
            raise TypeError(f"a FileSink transaction is a dict, got {type(transaction).__name__}")
        if set(transaction) not in (_TRANSACTION_KEYS, _SINGLE_PART_KEYS):
            raise ValueError(f"a FileSink transaction has the keys {sorted(_TRANSACTION_KEYS)}")
        counter, records = transaction["counter"], transaction["records"]
        if type(counter) is not int or not 0 <= counter <= _MAX_COUNTER:
            raise ValueError(f"counter must be an int in 0..{_MAX_COUNTER}, got {counter!r:.80}")
        parts = transaction.get("parts", 1)
        if type(parts) is not int or not 1 <= parts <= _MAX_COUNTER - counter + 1:
            raise ValueError(
                f"parts must be an int in 1..{_MAX_COUNTER - counter + 1}, got {parts!r:.80}"
            )
        if type(records) is not int or records < 0:
            raise ValueError(f"records must be a non-negative int, got {records!r:.80}")
        if transaction["suffix"] != self.suffix:
            raise ValueError(
                f"suffix {transaction['suffix']!r:.80} is not this sink's suffix {self.suffix!r}"
            )
        name = check_plain_name(transaction["name"], "the part file name")
        hidden = check_plain_name(transaction["hidden"], "the hidden file name")
        stem = check_plain_name(transaction["stem"], "the part file stem", self._stem_pattern())
        expected = f"{stem}{counter:06d}{self.suffix}"
        if name != expected:
            raise ValueError(f"the part file name {name!r:.200} should be {expected!r}")
        if hidden != f".{expected}{_HIDDEN_SUFFIX}":
            raise ValueError(
                f"the hidden file name {hidden!r:.200} should be {f'.{expected}{_HIDDEN_SUFFIX}'!r}"
            )

    def _stem_pattern(self) -> re.Pattern[str]:
        # The stem begin_transaction builds: prefix, subtask index, 8 hex digits of writer id.
        return re.compile(rf"{re.escape(self.prefix)}-(0|[1-9][0-9]{{0,5}})-[0-9a-f]{{8}}-")

    async def recover_and_abort(self, transaction: dict[str, Any]) -> None:
        """Abort, and delete the hidden files the same old writer began after it.

        The writer of a restored in-progress transaction belongs to a failed attempt, so
        nothing writes to its files any more. Its later transactions (larger counters) hold
        records after the restored checkpoint; those are replayed, so their hidden files
        must go. Exactly one new subtask gets this entry, even after rescaling.
        """
        await self.abort(transaction)
        removed = await anyio.to_thread.run_sync(_remove_later, self.directory, transaction)
        if removed:
            logger.info(
                "%s: removed %d hidden file(s) written after the restored checkpoint",
                self.ctx.task_name_with_subtask,
                removed,
            )

    # --- helpers ---

    def _choose_writer_id(self) -> str:
        """Draw a writer id no file in the directory uses yet for this subtask (blocking)."""
        taken = {entry.name for entry in os.scandir(self.directory)}
        while True:
            writer_id = uuid.uuid4().hex[:8]
            stem = f"{self.prefix}-{self.ctx.subtask_index}-{writer_id}-"
            if not any(name.startswith(stem) or name.startswith(f".{stem}") for name in taken):
                return writer_id


class StreamingFileSink:
    """PyFlink's legacy ``StreamingFileSink`` (a ``SinkFunction``); use :class:`FileSink`
    with ``sink_to`` instead."""

    @staticmethod
    def for_row_format(base_path: str, encoder: Any) -> Any:
        """Not supported.

        :raises NotImplementedError: always, naming the replacement
        """
        raise NotImplementedError(
            "StreamingFileSink is not supported by streamlet: write "
            "ds.sink_to(FileSink.for_row_format(base_path, encoder)...build()) instead, as "
            f"Flink recommends ({_README_TABLE})"
        )

    @staticmethod
    def for_bulk_format(base_path: str, writer_factory: Any) -> Any:
        """Not supported.

        :raises NotImplementedError: always
        """
        return StreamingFileSink.for_row_format(base_path, writer_factory)


def read_committed(
    directory: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    suffix: str | None = None,
    encoding: str = "utf-8",
) -> list[str]:
    """Return the lines of every visible part file in ``directory``, files sorted by name
    with their numbers compared as numbers (so the parts of one writer come in the order
    they were written).

    Reads the part files of streamlet's FileSink and those of Flink's FileSink (as the
    Flink runner writes them: ``part-<uuid>-<counter>``, counters not zero-padded, so
    ``...-10`` comes after ``...-9``). Dot-files (in-progress and pending part files of
    either) are skipped. Blocking: call it from a worker thread inside a running job.

    :param prefix: only read files named ``<prefix>-...``
    :param suffix: only read files whose names end with ``suffix``
    :param encoding: the part files' text encoding (the sink's ``encoding``)
    """
    root = Path(directory)
    names = sorted(
        (
            entry.name
            for entry in os.scandir(root)
            if not entry.name.startswith(".")
            and entry.is_file()
            and (prefix is None or entry.name.startswith(f"{prefix}-"))
            and (suffix is None or entry.name.endswith(suffix))
        ),
        key=_natural_order,
    )
    lines: list[str] = []
    for name in names:
        with open(root / name, encoding=encoding, newline="") as file:
            parts = file.read().split("\n")
        if parts[-1] == "":
            parts.pop()
        lines.extend(parts)
    return lines


_DIGITS = re.compile(r"(\d+)")


def _natural_order(name: str) -> tuple[tuple[int, int, str], ...]:
    """``name`` split into text and numbers, numbers compared by value (``part-x-10``
    after ``part-x-9``; zero-padded counters keep their order), without converting them
    to ints (a name read from disk may hold any run of digits)."""
    order = []
    for piece in _DIGITS.split(name):
        if piece.isdigit():
            digits = piece.lstrip("0")
            order.append((1, len(digits), digits))
        else:
            order.append((0, 0, piece))
    return tuple(order)


# --- blocking file operations (run in worker threads) ---


def _prepare_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"FileSink directory {str(directory)!r} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)


def _encode(encoder: Callable[[Any], str], records: list[Any], encoding: str) -> bytes:
    try:
        text = "".join([encoder(record) + "\n" for record in records])
    except TypeError:
        for record in records:
            line = encoder(record)
            if not isinstance(line, str):
                raise TypeError(
                    f"FileSink encoder must return a str, got {type(line).__name__} for "
                    f"record {record!r:.60}"
                ) from None
        raise
    return text.encode(encoding)


def _create_exclusive(files: dict[str, BinaryIO], hidden: str, path: Path) -> BinaryIO:
    # Kept open across writes; pre_commit, abort or close closes it.
    file = files[hidden] = open(path, "xb")
    return file


def _finish(files: dict[str, BinaryIO], hidden: str, directory: Path) -> None:
    """Flush, fsync and close the hidden file (if one was opened) and fsync the directory."""
    file = files.pop(hidden, None)
    if file is None:
        return
    try:
        file.flush()
        os.fsync(file.fileno())
    finally:
        file.close()
    fsync_directory(directory)


def _discard(files: dict[str, BinaryIO], hidden: str, directory: Path) -> None:
    """Close the hidden file if it is open, and delete it if it exists."""
    file = files.pop(hidden, None)
    if file is not None:
        file.close()
    _unlink(directory / hidden)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _part_names(transaction: dict[str, Any], part: int) -> tuple[str, str]:
    """The visible and hidden names of part ``part`` (0-based) of a transaction."""
    if part == 0:
        return transaction["name"], transaction["hidden"]
    name = f"{transaction['stem']}{transaction['counter'] + part:06d}{transaction['suffix']}"
    return name, f".{name}{_HIDDEN_SUFFIX}"


def _commit(directory: Path, transaction: dict[str, Any], recovering: bool) -> None:
    if not transaction["records"]:
        _unlink(directory / transaction["hidden"])  # an empty transaction publishes nothing
        return
    renamed = False
    for part in range(transaction.get("parts", 1)):
        name, hidden = _part_names(transaction, part)
        renamed |= _commit_part(directory / hidden, directory / name, recovering)
    if renamed:
        fsync_directory(directory)


def _commit_part(hidden: Path, final: Path, recovering: bool) -> bool:
    """Rename one part file visible; False if it was renamed before."""
    if hidden.is_symlink():
        # The sink creates regular files only; publishing a planted link would expose
        # whatever it points to under a part file's name.
        raise ValueError(f"refusing to commit {hidden}: it is a symlink, not this sink's file")
    if hidden.exists():
        if final.exists():
            raise FileExistsError(
                errno.EEXIST, f"refusing to overwrite {final} with the pending file", str(final)
            )
        os.replace(hidden, final)
        return True
    if final.exists():
        return False  # committed before (a restore repeats commits)
    detail = f"pending file {hidden} and committed file {final} are both missing"
    if recovering:
        logger.warning("%s; assuming it was committed and moved away since", detail)
        return False
    raise FileNotFoundError(errno.ENOENT, detail, str(hidden))


def _remove_later(directory: Path, transaction: dict[str, Any]) -> int:
    pattern = re.compile(
        rf"\.{re.escape(transaction['stem'])}(\d+){re.escape(transaction['suffix'])}"
        rf"{re.escape(_HIDDEN_SUFFIX)}"
    )
    counter = transaction["counter"]
    removed = 0
    for entry in os.scandir(directory):
        match = pattern.fullmatch(entry.name)
        if match is not None and int(match.group(1)) > counter:
            _unlink(directory / entry.name)
            removed += 1
    return removed
