"""Local paths as PyFlink's file connectors take them: a plain path or a ``file://`` URI.

streamlet reads and writes the local file system only, so any other scheme (``hdfs://``,
``s3://``, ...) is refused with a ``NotImplementedError`` when the job is built.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["has_separator", "local_path"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def local_path(path: Any, what: str) -> str:
    """Return ``path`` (a str, ``os.PathLike`` or ``file://`` URI) as a local path.

    :param what: names the argument in the errors
    :raises TypeError: if ``path`` is not a str or path
    :raises ValueError: if it is empty
    :raises NotImplementedError: for a URI of another file system than ``file://``
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{what} must be a str or path, got {path!r} ({type(path).__name__})")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str path, not bytes, got {text!r}")
    match = _SCHEME.match(text)
    if match is not None:
        if match.group(1).lower() != "file":
            raise NotImplementedError(
                f"{what} {text!r}: the {match.group(1)}:// file system is not supported by "
                f"streamlet, which reads and writes local files only (see the README's 'How it "
                f"maps to Flink' table); pass a local path"
            )
        text = text[match.end() :]
        if not text.startswith("/"):
            text = "/" + text
    if not text:
        raise ValueError(f"{what} must not be empty")
    return text


def has_separator(text: str) -> bool:
    """Whether ``text`` holds a path separator of this platform."""
    return "/" in text or os.sep in text or (os.altsep is not None and os.altsep in text)
