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
first write), so idle checkpoints leave nothing behind.

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
from .two_phase import TwoPhaseCommitSink, check_plain_name

__all__ = ["FileSink", "read_committed"]

logger = logging.getLogger("streamlet.sinks")

_HIDDEN_SUFFIX = ".inprogress"
#: Encoded batches at least this large are written from a worker thread; smaller ones go
#: into the file's buffer directly (a memory copy, rarely a page-cache write).
_THREAD_WRITE_BYTES = 64 * 1024
_TRANSACTION_KEYS = frozenset({"name", "hidden", "stem", "suffix", "counter", "records"})
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
    "counter", "records"}``: the visible and hidden file names (relative to the directory,
    so a moved directory still restores), the name up to the counter, the suffix, the
    counter and the number of records written. A restore renames the hidden files of
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
    :param encoder: turns a record into its line (without the newline); lines are UTF-8
    :param commit_on_end_of_input: see
        :class:`~streamlet.operators.sinks.two_phase.TwoPhaseCommitSink`
    :raises TypeError: if ``directory`` is not a path, ``prefix`` or ``suffix`` not a str,
        or ``encoder`` not callable
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
    ) -> None:
        super().__init__(commit_on_end_of_input=commit_on_end_of_input)
        if not isinstance(directory, str | os.PathLike):
            raise TypeError(f"directory must be a str or path, got {directory!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        if not isinstance(suffix, str):
            raise TypeError(f"suffix must be a str, got {suffix!r}")
        if not prefix or prefix.startswith(".") or _has_separator(prefix):
            raise ValueError(
                f"prefix must be a non-empty file name part without a leading dot or a path "
                f"separator, got {prefix!r}"
            )
        if _has_separator(suffix):
            raise ValueError(f"suffix must not hold a path separator, got {suffix!r}")
        if not callable(encoder):
            raise TypeError(f"encoder must be callable, got {encoder!r}")
        self.directory = Path(os.path.abspath(os.fspath(directory)))
        self.prefix = prefix
        self.suffix = suffix
        self.encoder = encoder
        _prepare_directory(self.directory)
        self._writer_id = ""
        self._counter = 0
        # hidden name -> open file, for transactions written to but not pre-committed yet
        self._files: dict[str, BinaryIO] = {}

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
        }

    async def write(self, transaction: dict[str, Any], records: list[Any]) -> None:
        """Append one line per record to the transaction's hidden file."""
        if not records:
            return
        data = _encode(self.encoder, records)
        hidden = transaction["hidden"]
        file = self._files.get(hidden)
        if file is None:
            # The thread registers the file itself: if this task is cancelled meanwhile,
            # the file is still in self._files, and close() closes it.
            file = await anyio.to_thread.run_sync(
                _create_exclusive, self._files, hidden, self.directory / hidden
            )
        if len(data) >= _THREAD_WRITE_BYTES:
            await anyio.to_thread.run_sync(file.write, data)
        else:
            file.write(data)
        transaction["records"] += len(records)

    async def pre_commit(self, transaction: dict[str, Any]) -> None:
        """Flush, fsync and close the hidden file (and fsync the directory)."""
        # The worker pops the file itself: a call cancelled before its thread starts leaves
        # the file registered, so close() still closes it.
        await anyio.to_thread.run_sync(_finish, self._files, transaction["hidden"], self.directory)

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
        """Close and delete the hidden file, if there is one."""
        await anyio.to_thread.run_sync(_discard, self._files, transaction["hidden"], self.directory)

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
        if set(transaction) != _TRANSACTION_KEYS:
            raise ValueError(f"a FileSink transaction has the keys {sorted(_TRANSACTION_KEYS)}")
        counter, records = transaction["counter"], transaction["records"]
        if type(counter) is not int or not 0 <= counter <= _MAX_COUNTER:
            raise ValueError(f"counter must be an int in 0..{_MAX_COUNTER}, got {counter!r:.80}")
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


def read_committed(directory: str | os.PathLike[str], *, prefix: str | None = None) -> list[str]:
    """Return the lines of every visible part file in ``directory``, files sorted by name.

    Dot-files (in-progress and pending part files) are skipped. Blocking: call it from a
    worker thread inside a running job.

    :param prefix: only read files named ``<prefix>-...``
    """
    root = Path(directory)
    names = sorted(
        entry.name
        for entry in os.scandir(root)
        if not entry.name.startswith(".")
        and entry.is_file()
        and (prefix is None or entry.name.startswith(f"{prefix}-"))
    )
    lines: list[str] = []
    for name in names:
        with open(root / name, encoding="utf-8", newline="") as file:
            parts = file.read().split("\n")
        if parts[-1] == "":
            parts.pop()
        lines.extend(parts)
    return lines


# --- blocking file operations (run in worker threads) ---


def _has_separator(text: str) -> bool:
    return "/" in text or os.sep in text or (os.altsep is not None and os.altsep in text)


def _prepare_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"FileSink directory {str(directory)!r} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)


def _encode(encoder: Callable[[Any], str], records: list[Any]) -> bytes:
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
    return text.encode("utf-8")


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


def _commit(directory: Path, transaction: dict[str, Any], recovering: bool) -> None:
    hidden = directory / transaction["hidden"]
    final = directory / transaction["name"]
    if not transaction["records"]:
        _unlink(hidden)  # an empty transaction publishes nothing
        return
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
        fsync_directory(directory)
        return
    if final.exists():
        return  # committed before (a restore repeats commits)
    detail = f"pending file {hidden} and committed file {final} are both missing"
    if recovering:
        logger.warning("%s; assuming it was committed and moved away since", detail)
        return
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
