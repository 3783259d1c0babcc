"""PyFlink's ``FileSource``: the lines of files and directories, bounded and replayable.

``FileSource.for_record_stream_format(StreamFormat.text_line_format(), *paths).build()``
gives a :class:`FileSource` for ``env.from_source(source, WatermarkStrategy.no_watermarks(),
"file-source")``. Each file is one split, read by a
:class:`~streamlet.operators.sources.text_file.TextFileReader`, whose position (the byte
offset of the next unread line) is what a checkpoint stores: a restore seeks straight to it,
so no line is read twice or skipped (Flink's text format re-reads and skips lines instead).
"""

from __future__ import annotations

import os
from typing import Any

from ..file_paths import local_path
from .base import DeliveryGuarantee, Source, SourceReader
from .text_file import TextFileReader, check_text_encoding

__all__ = [
    "BulkFormat",
    "FileEnumeratorProvider",
    "FileSource",
    "FileSourceBuilder",
    "FileSplitAssignerProvider",
    "StreamFormat",
]

_README_TABLE = "see the README's 'How it maps to Flink' table"
#: Extensions Flink's stream formats decompress on the fly; streamlet does not.
_COMPRESSED = (".deflate", ".xz", ".bz2", ".gz", ".gzip")


class StreamFormat:
    """How a file's bytes become records (Flink's ``StreamFormat``). Only
    :meth:`text_line_format` exists: one record per line.

    :param charset_name: the files' text encoding (ASCII-compatible)
    """

    def __init__(self, charset_name: str = "UTF-8") -> None:
        if not isinstance(charset_name, str):
            raise TypeError(f"charset_name must be a str such as 'UTF-8', got {charset_name!r}")
        check_text_encoding(charset_name)
        self.charset_name = charset_name

    @staticmethod
    def text_line_format(charset_name: str = "UTF-8") -> StreamFormat:
        """One record per line, without its ``"\\n"`` or ``"\\r\\n"``."""
        return StreamFormat(charset_name)

    def __repr__(self) -> str:
        return f"StreamFormat.text_line_format({self.charset_name!r})"


class BulkFormat:
    """Flink's ``BulkFormat`` (Parquet, ORC, ...); not supported by streamlet yet."""


class FileEnumeratorProvider:
    """Flink's file enumerators; not supported by streamlet yet (every file under the paths
    is read, one split per file)."""

    @staticmethod
    def default_splittable_file_enumerator() -> Any:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "FileEnumeratorProvider is not supported by streamlet yet: a FileSource reads every "
            f"file under its paths, one split per file ({_README_TABLE})"
        )

    @staticmethod
    def default_non_splittable_file_enumerator() -> Any:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        return FileEnumeratorProvider.default_splittable_file_enumerator()


class FileSplitAssignerProvider:
    """Flink's split assigners; not supported by streamlet yet (split ``j`` goes to subtask
    ``j % parallelism``)."""

    @staticmethod
    def locality_aware_split_assigner() -> Any:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "FileSplitAssignerProvider is not supported by streamlet yet: split j goes to "
            f"subtask j % parallelism ({_README_TABLE})"
        )


class FileSourceBuilder:
    """Configures a :class:`FileSource`; :meth:`build` makes it (bounded: Flink's
    ``process_static_file_set``, the default)."""

    def __init__(self, stream_format: StreamFormat, paths: tuple[Any, ...]) -> None:
        if not isinstance(stream_format, StreamFormat):
            raise TypeError(
                f"FileSource.for_record_stream_format needs a StreamFormat, got "
                f"{stream_format!r}; use StreamFormat.text_line_format()"
            )
        if not paths:
            raise ValueError(
                "FileSource.for_record_stream_format needs at least one path: "
                "FileSource.for_record_stream_format(StreamFormat.text_line_format(), path, ...)"
            )
        self._format = stream_format
        self._paths = [local_path(path, "FileSource path") for path in paths]

    def monitor_continuously(self, discovery_interval: Any) -> FileSourceBuilder:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "FileSourceBuilder.monitor_continuously (watching for new files) is not supported "
            f"by streamlet yet: a FileSource reads the files present when the job starts "
            f"({_README_TABLE})"
        )

    def process_static_file_set(self) -> FileSourceBuilder:
        """Read the files present when the job starts, then end (the default)."""
        return self

    def set_file_enumerator(self, file_enumerator: Any) -> FileSourceBuilder:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "FileSourceBuilder.set_file_enumerator is not supported by streamlet yet: every "
            f"file under the paths is read, one split per file ({_README_TABLE})"
        )

    def set_split_assigner(self, split_assigner: Any) -> FileSourceBuilder:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "FileSourceBuilder.set_split_assigner is not supported by streamlet yet: split j "
            f"goes to subtask j % parallelism ({_README_TABLE})"
        )

    def build(self) -> FileSource:
        """The source; checks now that every path exists.

        :raises FileNotFoundError: for a missing path (the message names it)
        :raises NotImplementedError: for a compressed file (``.gz``, ``.bz2``, ...)
        """
        source = FileSource(self._format, self._paths)
        enumerate_files(source.paths)
        return source


class FileSource(Source[str]):
    """Read the lines of files and of every file under directories (Flink's ``FileSource``
    with ``StreamFormat.text_line_format``). Build it with :meth:`for_record_stream_format`.

    Directories are walked recursively; files and subdirectories whose names start with
    ``.`` or ``_`` are skipped, as Flink's default enumerator does (so a ``FileSink``'s
    hidden in-progress files are never read). The files are listed when the job first
    starts, sorted by path, one split each; a restore reads the splits of its checkpoint.

    Bounded; parallel (split ``j`` goes to subtask ``j % parallelism``). Guarantee:
    exactly-once, provided the files do not change while the job (and its restores) read
    them.
    """

    name = "File Source"
    bounded = True
    delivery = DeliveryGuarantee.EXACTLY_ONCE

    def __init__(self, stream_format: StreamFormat, paths: list[str]) -> None:
        self.stream_format = stream_format
        self.paths = list(paths)

    @staticmethod
    def for_record_stream_format(stream_format: StreamFormat, *paths: Any) -> FileSourceBuilder:
        """Read ``paths`` (files or directories, local paths or ``file://`` URIs) record by
        record in ``stream_format``.

        :raises TypeError: if ``stream_format`` is not a StreamFormat or a path not a path
        :raises ValueError: if no path is given
        :raises NotImplementedError: for a non-local path (``hdfs://``, ``s3://``, ...)
        """
        return FileSourceBuilder(stream_format, paths)

    @staticmethod
    def for_bulk_file_format(bulk_format: Any, *paths: Any) -> FileSourceBuilder:
        """Not supported yet.

        :raises NotImplementedError: always
        """
        raise NotImplementedError(
            "FileSource.for_bulk_file_format (bulk formats: Parquet, ORC, ...) is not supported "
            f"by streamlet yet; use FileSource.for_record_stream_format(StreamFormat."
            f"text_line_format(), ...) ({_README_TABLE})"
        )

    def __repr__(self) -> str:
        return f"FileSource({self.stream_format!r}, {self.paths!r})"

    def create_splits(self, parallelism: int) -> list[Any]:
        """One split per file: its path."""
        return enumerate_files(self.paths)

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[str]:
        """A reader of file ``split`` from byte offset ``position`` (None: 0)."""
        if not isinstance(split, str):
            raise ValueError(f"a FileSource split is a file path, got {split!r:.200}")
        return TextFileReader(split, self.stream_format.charset_name, position)


def enumerate_files(paths: list[str]) -> list[str]:
    """The files named by ``paths``: each file itself, each directory's files (recursive,
    skipping names starting with ``.`` or ``_``), sorted by path, without duplicates.

    :raises FileNotFoundError: for a path that does not exist
    :raises NotImplementedError: for a compressed file
    """
    found: set[str] = set()
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
                found.update(
                    os.path.join(root, name) for name in files if not name.startswith((".", "_"))
                )
        elif os.path.exists(path):
            found.add(path)
        else:
            raise FileNotFoundError(
                f"FileSource: no such file or directory: {path!r}; pass existing paths to "
                f"FileSource.for_record_stream_format"
            )
    for path in found:
        if path.lower().endswith(_COMPRESSED):
            raise NotImplementedError(
                f"FileSource: {path!r} looks compressed; streamlet does not decompress files "
                f"yet: decompress it first ({_README_TABLE})"
            )
    return sorted(found)
