"""The sink contract: a :class:`Sink` makes one :class:`SinkWriter` per subtask and attempt.

A writer is an operator at the end of a chain: it receives batches and emits nothing. It has
the whole operator lifecycle (``open``, ``snapshot_state`` at a barrier,
``notify_checkpoint_complete``, ``end_input``, ``close``), which is what a two-phase-commit
sink needs. Plain sinks only implement :meth:`SinkWriter.write_batch`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..base import Operator

__all__ = ["Sink", "SinkWriter"]


class SinkWriter(Operator[Any, Any]):
    """Writes the records of one subtask."""

    @abstractmethod
    async def write_batch(self, records: list[Any]) -> None:
        """Write ``records`` (in order). Called once per input batch."""

    async def process_batch(self, batch: list[Any]) -> list[Any]:
        await self.write_batch(batch)
        return []


class Sink(ABC):
    """A user-implementable sink for ``DataStream.sink_to``."""

    #: Display name of the sink operator.
    name: str = "Sink"

    @abstractmethod
    def create_writer(self) -> SinkWriter:
        """Return a fresh writer; called once per subtask and attempt."""
