"""At-least-once sinks: print, a user callback, and the collector behind execute_and_collect.

After a restore these see the records since the last checkpoint again (Flink's guarantee
for stdout and socket sinks); use the file sink or a two-phase-commit sink for exactly-once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from streamlet.state.errors import StreamletError

from ..base import OperatorContext
from ..functions import FunctionAdapter, FunctionInitializationContext, RuntimeContext
from .base import SinkWriter

__all__ = ["CallbackSinkWriter", "OutputClosedError", "PrintSinkWriter", "QueueSinkWriter"]


class OutputClosedError(StreamletError):
    """The reader of stdout (or stderr) went away, as ``| head`` does: the job ends there.

    Not a fault a restart can cure; the runner does not restart on it and the command line
    exits quietly, as Unix tools do on SIGPIPE.
    """


class PrintSinkWriter(SinkWriter):
    """Writes ``str(record)`` per line to stdout, prefixed ``N> `` when parallelism > 1.

    :param sink_identifier: an optional prefix, as Flink's ``print(sink_identifier)``
    :param to_stderr: write to stderr instead
    :param formatter: how a record is shown (``str``; for a typed PyFlink stream, as Java
        prints it: see :func:`streamlet.operators.typeinfo.java_string`)
    """

    def __init__(
        self,
        sink_identifier: str | None = None,
        to_stderr: bool = False,
        formatter: Callable[[Any], str] = str,
    ) -> None:
        self._identifier = sink_identifier
        self._to_stderr = to_stderr
        self._format = formatter

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        parts = []
        if self._identifier:
            parts.append(self._identifier)
        if ctx.parallelism > 1:
            parts.append(str(ctx.subtask_index + 1))
        self._prefix = ":".join(parts) + "> " if parts else ""

    async def write_batch(self, records: list[Any]) -> None:
        stream = sys.stderr if self._to_stderr else sys.stdout
        prefix = self._prefix
        fmt = self._format
        if fmt is not str:
            records = [fmt(record) for record in records]
        try:
            stream.write("".join([f"{prefix}{record}\n" for record in records]))
            stream.flush()
        except BrokenPipeError as exc:
            name = "stderr" if self._to_stderr else "stdout"
            raise OutputClosedError(f"the reader of {name} closed it") from exc


class CallbackSinkWriter(SinkWriter):
    """Calls a user function (or a SinkFunction's ``invoke``) once per record."""

    def __init__(self, adapter: FunctionAdapter) -> None:
        self.adapter = adapter

    async def open(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        rc = RuntimeContext(ctx)
        await self.adapter.initialize_state(
            FunctionInitializationContext(ctx.operator_state, rc, ctx.restored)
        )
        await self.adapter.open(rc)

    async def write_batch(self, records: list[Any]) -> None:
        call = self.adapter.call
        if self.adapter.is_async:
            for record in records:
                await call(record)
        else:
            for record in records:
                call(record)

    async def snapshot_state(self, checkpoint_id: int) -> None:
        await self.adapter.snapshot_state(checkpoint_id)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        await self.adapter.notify_checkpoint_complete(checkpoint_id)

    async def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        await self.adapter.notify_checkpoint_aborted(checkpoint_id)

    async def close(self) -> None:
        await self.adapter.close()


class QueueSinkWriter(SinkWriter):
    """Sends every batch into an anyio memory object stream (for execute_and_collect).

    The stream is shared by all subtasks and attempts; the reader owns and closes it.
    """

    def __init__(self, send_stream: Any) -> None:
        self._send = send_stream

    async def write_batch(self, records: list[Any]) -> None:
        await self._send.send(records)
