"""The source contract: splits, readers, and what a source can replay.

A source is described once and read by ``parallelism`` subtasks (Flink's FLIP-27 shape,
async-first):

- :meth:`Source.create_splits` cuts the input into *splits* once, when the job first starts.
  A split is a JSON-able value that says everything a reader needs (a range, a path, ...).
- Split ``j`` is read by subtask ``j % parallelism``. Each split gets its own
  :class:`SourceReader`, built by :meth:`Source.create_reader` from the split and, after a
  restore, the *position* stored in the checkpoint.
- The engine calls :meth:`SourceReader.read_batch` in a fetcher task of its own and records
  :meth:`SourceReader.position` with every batch it emits. A checkpoint stores, per split,
  the position after the last batch emitted *before* the barrier. Resume contract: a reader
  built with that position must return exactly the records after it: no record twice, none
  skipped (mind the off-by-one).
- Because splits and their positions are stored as operator list state, a job restored at
  another parallelism hands the splits to the new subtasks round-robin.

A source whose input lives outside the job (a socket, an application's queue) cannot rewind.
It says so with :attr:`Source.delivery` and may keep resources that outlive a failover in
:meth:`Source.session` (for example the socket connection, so a failure inside the job
neither closes it nor loses lines already received).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "DeliveryGuarantee",
    "Source",
    "SourceReader",
    "SourceSessionContext",
]

OUT = TypeVar("OUT")
"""Type of the records a source emits."""


class DeliveryGuarantee(Enum):
    """What a source promises after a restore (Flink's guarantees table)."""

    #: Rewinds to the checkpointed position: nothing lost, nothing repeated.
    EXACTLY_ONCE = "exactly_once"
    #: Cannot rewind: records read since the last checkpoint are lost on failure.
    AT_MOST_ONCE = "at_most_once"


@dataclass(frozen=True, slots=True)
class SourceSessionContext:
    """What a source session may use for the whole job, across restarts.

    :param job_name: the job's name
    :param source_uid: uid of the source operator
    :param wal_dir: the job's directory for ingress write-ahead logs (a source keeps its log
        in a subdirectory named after its uid), or ``None`` when the job has no checkpoint
        directory
    """

    job_name: str
    source_uid: str
    wal_dir: Path | None = None


class SourceReader(ABC, Generic[OUT]):
    """Reads one split. Built for one attempt of the job; closed when the attempt ends."""

    async def open(self) -> None:
        """Acquire resources. Called once before the first :meth:`read_batch`."""

    @abstractmethod
    async def read_batch(self, max_records: int) -> list[OUT] | None:
        """Return up to ``max_records`` next records, waiting until at least one is ready.

        :return: a non-empty list of records, or ``None`` when the split is exhausted and
            will never produce again (bounded input). An unbounded split never returns None
            unless its input ended for good (a closed socket with no retries left).
        :raises Exception: to fail the job; the records returned by earlier calls reach
            downstream first (the engine queues the failure behind them), so a reader that
            finds bad input returns the good records before it and raises on the next call.
        """

    @abstractmethod
    def position(self) -> Any:
        """Return a JSON-able position just after the last record returned so far."""

    async def notify_checkpoint_complete(self, checkpoint_id: int, position: Any) -> None:
        """Checkpoint ``checkpoint_id`` completed with this split at ``position``.

        Readers with an ingress write-ahead log truncate it here.
        """

    async def close(self) -> None:
        """Release resources. Always called, also after a failure; must not raise for that."""


class Source(ABC, Generic[OUT]):
    """A user-implementable source. Subclass it and pass it to ``env.from_source``.

    Do not build per-split state in ``__init__``: the same instance creates readers for every
    attempt of the job, so everything a reader needs must come from the split and position.
    """

    #: Display name of the source operator.
    name: str = "Source"
    #: Largest parallelism this source supports; ``1`` for a non-parallel source.
    max_parallelism: int | None = None
    #: False when the source never ends by itself.
    bounded: bool = True
    #: What the source promises after a restore.
    delivery: DeliveryGuarantee = DeliveryGuarantee.EXACTLY_ONCE

    @abstractmethod
    def create_splits(self, parallelism: int) -> list[Any]:
        """Cut the input into JSON-able splits; called once when the job first starts."""

    @abstractmethod
    def create_reader(self, split: Any, position: Any | None) -> SourceReader[OUT]:
        """Return a reader for ``split``, resuming after ``position`` (None: from the start)."""

    @contextlib.asynccontextmanager
    async def session(self, ctx: SourceSessionContext) -> AsyncIterator[None]:
        """Hold resources for the whole job, across restarts (default: none)."""
        yield
