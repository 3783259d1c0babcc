"""Flink's ``readTextFile``: one record per line of a text file.

The reader pulls the file in large chunks (1 MiB) through ``anyio.open_file``, cuts them on
``b"\\n"`` and decodes runs of whole lines at once, so a multi-byte character split by a
chunk boundary is never a problem. It tracks the byte offset of the next unread line, which
is the position a checkpoint stores: a restore seeks straight there.
"""

from __future__ import annotations

import codecs
import errno
import os
from typing import Any

import anyio

from .base import DeliveryGuarantee, Source, SourceReader

__all__ = [
    "TextFileReader",
    "TextFileSource",
    "check_text_encoding",
]

_CHUNK_BYTES = 1024 * 1024


def check_text_encoding(encoding: str) -> None:
    """Accept an ASCII-compatible text encoding (lines are cut on the byte ``\\n``).

    :raises ValueError: if ``encoding`` is unknown or not ASCII-compatible
    """
    try:
        codec = codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"encoding must be a known text encoding, got {encoding!r}") from None
    if "\n".encode(codec.name) != b"\n" or "A".encode(codec.name) != b"A":
        raise ValueError(f"encoding must be ASCII-compatible, got {encoding!r}")


class TextFileSource(Source[str]):
    """Read a text file line by line (``env.read_text_file(path)``).

    One record per line, without its ``"\\n"`` or ``"\\r\\n"``; a last line without a
    newline is a record too, an empty file gives none. Bounded and non-parallel: one split,
    the whole file. The file is opened when the reader opens, so a missing file fails the
    job at its start with a :class:`FileNotFoundError` naming the path.

    Guarantee: exactly-once, provided the file does not change while the job (and its
    restores) read it.

    RESUME CONTRACT: :meth:`TextFileReader.position` is the byte offset of the first line
    not yet returned (0 before any, the file size after the last). A reader built with that
    offset seeks to it and returns exactly the lines from there on. ``close()`` always runs
    and closes the file.

    :param path: the file to read
    :param encoding: an ASCII-compatible text encoding
    :raises ValueError: if ``encoding`` is unknown or not ASCII-compatible
    """

    name = "Text File Source"
    max_parallelism = 1
    bounded = True
    delivery = DeliveryGuarantee.EXACTLY_ONCE

    def __init__(self, path: str | os.PathLike[str], encoding: str = "utf-8") -> None:
        check_text_encoding(encoding)
        self.path = os.fspath(path)
        self.encoding = encoding

    def __repr__(self) -> str:
        return f"TextFileSource({self.path!r}, encoding={self.encoding!r})"

    def create_splits(self, parallelism: int) -> list[Any]:
        """One split: the path of the whole file."""
        return [self.path]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[str]:
        """Return a reader of the file ``split`` from byte offset ``position`` (None: 0)."""
        return TextFileReader(split, self.encoding, position)


class TextFileReader(SourceReader[str]):
    """Reads the lines of one file from a byte offset. See :class:`TextFileSource`.

    :param path: the file
    :param encoding: its text encoding
    :param position: byte offset of the first line to return, or None for 0
    :raises ValueError: if ``position`` is not an int >= 0
    """

    def __init__(self, path: str, encoding: str, position: Any | None = None) -> None:
        if position is None:
            position = 0
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise ValueError(
                f"position of text file {path!r} must be a byte offset >= 0, got {position!r}"
            )
        self._path = path
        self._encoding = encoding
        self._file: anyio.AsyncFile[bytes] | None = None
        # Invariant: _position is the file offset of _lines[_next] (or of _tail when all
        # of _lines were returned).
        self._position = position
        self._lines: list[bytes] = []
        self._next = 0
        self._tail = bytearray()  # bytes after the last newline read so far
        self._eof = False
        # True when _lines ends with the final line of a file that has no newline at the end.
        self._unterminated = False

    async def open(self) -> None:
        """Open the file and seek to the position.

        :raises FileNotFoundError: if the file does not exist (the message names it)
        :raises ValueError: if the position is past the end of the file
        """
        try:
            self._file = await anyio.open_file(self._path, "rb")
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                errno.ENOENT, "text file source: no such file", self._path
            ) from exc
        size = os.fstat(self._file.wrapped.fileno()).st_size
        if self._position > size:
            await self.close()
            raise ValueError(
                f"position {self._position} is past the end of {self._path!r} "
                f"({size} bytes): the file changed since the checkpoint"
            )
        if self._position:
            await self._file.seek(self._position)

    async def read_batch(self, max_records: int) -> list[str] | None:
        """Return up to ``max_records`` next lines, or None at the end of the file.

        :raises ValueError: if the bytes are not valid ``encoding`` (the message names the
            file and the byte offset)
        """
        while self._next >= len(self._lines):
            if not await self._fill():
                return None
        taken = self._lines[self._next : self._next + max_records]
        text = self._decode(taken)
        self._next += len(taken)
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
        else:
            lines = text.split("\n")
        advance = sum(map(len, taken)) + len(taken)
        if self._unterminated and self._next == len(self._lines):
            advance -= 1
        self._position += advance
        return lines

    def _decode(self, taken: list[bytes]) -> str:
        raw = taken[0] if len(taken) == 1 else b"\n".join(taken)
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"cannot decode {self._path!r} as {self._encoding!r} at byte offset "
                f"{self._position + exc.start}: {exc.reason}"
            ) from exc

    async def _fill(self) -> bool:
        """Read chunks until whole lines are ready; False at the end of the file."""
        if self._file is None:
            raise RuntimeError(f"reader of {self._path!r} is not open")
        self._lines = []
        self._next = 0
        while not self._lines:
            if self._eof:
                if not self._tail:
                    return False
                self._lines = [bytes(self._tail)]
                self._tail.clear()
                self._unterminated = True
                return True
            chunk = await self._file.read(_CHUNK_BYTES)
            if not chunk:
                self._eof = True
                continue
            cut = chunk.rfind(b"\n")
            if cut < 0:
                self._tail += chunk
                continue
            data = bytes(self._tail) + chunk[:cut] if self._tail else chunk[:cut]
            self._tail = bytearray(chunk[cut + 1 :])
            self._lines = data.split(b"\n")
        return True

    def position(self) -> int:
        """Byte offset of the first line not yet returned."""
        return self._position

    async def close(self) -> None:
        """Close the file; safe to call twice and after a failed open."""
        file, self._file = self._file, None
        if file is not None:
            with anyio.CancelScope(shield=True):
                await file.aclose()
