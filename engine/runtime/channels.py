"""Bounded single-producer single-consumer channels and the input gate that reads them.

DESIGN §3: every (producer subtask, consumer subtask) pair the partitioner can reach gets its
own :class:`Channel`. A channel holds at most ``capacity`` *buffers*; a buffer is a ``list``
of records, a :class:`~streamlet.state.keyed_batch.KeyedBatch` (records with their keys and
key groups, on a key_by edge), a :class:`~streamlet.operators.records.TimestampedBatch`
(records with their timestamps) or one event (barrier, cancel marker, watermark, watermark
status, end of partition). A
full channel makes the producer wait, which is the backpressure that bounds memory.

A subtask reads all its channels through one :class:`InputGate`, which hands out the next
buffer of any unblocked channel, round-robin, without a task per channel: every channel of a
gate wakes the same :class:`Notifier`, which the subtask's mailbox wakes too. The barrier
aligner blocks and unblocks single channels through the gate.

We keep anyio's vocabulary: ``send`` / ``send_nowait`` (raising :exc:`anyio.WouldBlock`),
``receive_nowait``, ``statistics()``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

from streamlet.operators.records import TimestampedBatch
from streamlet.state.keyed_batch import KeyedBatch

__all__ = ["Channel", "ChannelStatistics", "EdgeInfo", "InputGate", "Notifier"]


@dataclass(frozen=True, slots=True)
class EdgeInfo:
    """The edge a channel belongs to, as channel state names it.

    :param edge_id: see :func:`streamlet.checkpoints.channel_state.edge_id`
    :param partitioner: the partitioner's name (``hash`` for key_by, ``forward``, ...)
    :param producers: the producing chain's parallelism
    :param consumers: the consuming chain's parallelism
    """

    edge_id: str
    partitioner: str
    producers: int
    consumers: int


#: The buffer types that carry records (everything else in a channel is one event).
_DATA_KINDS = (list, KeyedBatch, TimestampedBatch)


class Notifier:
    """Wakes one waiting consumer; cheap to call when nobody waits.

    Invariant: at most one task waits on a notifier (the subtask that owns it).
    """

    __slots__ = ("_event", "_pending")

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        # A notify with nobody waiting is remembered, so a wait right after returns at once.
        self._pending = False

    def notify(self) -> None:
        event = self._event
        if event is not None:
            self._event = None
            event.set()
        else:
            self._pending = True

    async def wait(self) -> None:
        """Wait until :meth:`notify` is called (or return at once if it already was)."""
        if self._pending:
            self._pending = False
            await anyio.lowlevel.checkpoint()
            return
        event = self._event = anyio.Event()
        try:
            await event.wait()
        finally:
            if self._event is event:
                self._event = None

    def clear(self) -> None:
        self._pending = False


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """A snapshot of a channel's counters.

    :param buffers_queued: buffers waiting in the channel now
    :param records_queued: records waiting in the channel now
    :param peak_buffers_queued: most buffers ever waiting at once
    :param peak_records_queued: most records ever waiting at once
    :param records_sent: records sent through the channel so far
    :param capacity: the bound on queued buffers
    """

    buffers_queued: int
    records_queued: int
    peak_buffers_queued: int
    peak_records_queued: int
    records_sent: int
    capacity: int


class Channel:
    """A bounded FIFO of buffers from one producer subtask to one consumer subtask.

    Buffers are handed over by reference: neither side may mutate a list after sending it.
    """

    __slots__ = (
        "_consumer",
        "_peak_buffers",
        "_peak_records",
        "_queue",
        "_records_queued",
        "_records_sent",
        "_space",
        "blocked",
        "capacity",
        "consumer_index",
        "edge",
        "ended",
        "name",
        "overtakable",
        "producer_index",
    )

    def __init__(self, capacity: int, consumer: Notifier, name: str = "") -> None:
        if capacity < 1:
            raise ValueError(f"channel capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.name = name
        self._queue: deque[Any] = deque()
        self._consumer = consumer
        self._space: anyio.Event | None = None
        self._records_queued = 0
        self._records_sent = 0
        self._peak_buffers = 0
        self._peak_records = 0
        #: Set by the input gate's owner while the barrier aligner holds this channel.
        self.blocked = False
        #: True once the consumer took the EndOfPartition event from this channel.
        self.ended = False
        #: Which edge and subtasks the channel joins (channel state names them; set by
        #: deploy), and whether an unaligned barrier may overtake its buffers.
        self.edge: EdgeInfo | None = None
        self.producer_index = 0
        self.consumer_index = 0
        self.overtakable = False

    # --- producer side ---

    def send_nowait(self, buffer: Any) -> None:
        """Append ``buffer`` if there is room.

        :raises anyio.WouldBlock: if the channel already holds ``capacity`` buffers
        """
        queue = self._queue
        if len(queue) >= self.capacity:
            raise anyio.WouldBlock
        self._append(buffer)

    def try_send(self, buffer: Any) -> bool:
        """Append ``buffer`` and return True if there is room, else return False."""
        if len(self._queue) >= self.capacity:
            return False
        self._append(buffer)
        return True

    async def send(self, buffer: Any) -> None:
        """Append ``buffer``, waiting while the channel is full (backpressure).

        Cancellation-safe: a cancelled send appended nothing.
        """
        while len(self._queue) >= self.capacity:
            space = self._space = anyio.Event()
            await space.wait()
        self._append(buffer)

    def _append(self, buffer: Any) -> None:
        queue = self._queue
        queue.append(buffer)
        kind = type(buffer)
        if kind is list or kind is KeyedBatch or kind is TimestampedBatch:
            n = len(buffer)
            self._records_sent += n
            records = self._records_queued = self._records_queued + n
            if records > self._peak_records:
                self._peak_records = records
        if len(queue) > self._peak_buffers:
            self._peak_buffers = len(queue)
        self._consumer.notify()

    def overtake(self, event: Any) -> list[Any]:
        """Put ``event`` ahead of every queued buffer (an unaligned barrier) and return the
        data buffers it overtook, oldest first. They stay queued: the consumer reads them
        after the event. The event may exceed ``capacity`` by one, like Flink's priority
        events, so this never waits."""
        queue = self._queue
        overtaken = [b for b in queue if type(b) in _DATA_KINDS]
        queue.appendleft(event)
        if len(queue) > self._peak_buffers:
            self._peak_buffers = len(queue)
        self._consumer.notify()
        return overtaken

    def restore_buffers(self, buffers: list[Any]) -> None:
        """Queue restored channel state before anything is sent (may exceed capacity)."""
        for buffer in buffers:
            self._append(buffer)

    # --- consumer side ---

    def receive_nowait(self) -> Any:
        """Remove and return the oldest buffer.

        :raises anyio.WouldBlock: if the channel is empty
        """
        try:
            buffer = self._queue.popleft()
        except IndexError:
            raise anyio.WouldBlock from None
        kind = type(buffer)
        if kind is list or kind is KeyedBatch or kind is TimestampedBatch:
            self._records_queued -= len(buffer)
        space = self._space
        if space is not None:
            self._space = None
            space.set()
        return buffer

    def __len__(self) -> int:
        return len(self._queue)

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            buffers_queued=len(self._queue),
            records_queued=self._records_queued,
            peak_buffers_queued=self._peak_buffers,
            peak_records_queued=self._peak_records,
            records_sent=self._records_sent,
            capacity=self.capacity,
        )


class InputGate:
    """All input channels of one subtask, read fairly through one notifier.

    :param channels: the subtask's input channels, in a fixed order (channel index = position)
    :param notifier: the notifier every channel of this gate wakes
    """

    __slots__ = ("_encode", "_next", "channels", "notifier", "recording")

    def __init__(self, channels: list[Channel], notifier: Notifier) -> None:
        self.channels = channels
        self.notifier = notifier
        self._next = 0
        #: Channels whose data buffers are input channel state of an unaligned checkpoint,
        #: each with what was taken so far (encoded by ``encode``, see :meth:`record`).
        self.recording: dict[int, list[Any]] = {}
        self._encode: Any = None

    def poll(self) -> tuple[int, Any] | None:
        """Return ``(channel_index, buffer)`` from the next ready, unblocked channel, or None.

        Channels are visited round-robin from the one after the last served, so a busy
        channel cannot starve the others.
        """
        channels = self.channels
        n = len(channels)
        start = self._next
        for offset in range(n):
            index = start + offset
            if index >= n:
                index -= n
            channel = channels[index]
            if channel._queue and not channel.blocked:
                self._next = index + 1 if index + 1 < n else 0
                buffer = channel.receive_nowait()
                if self.recording:
                    taken = self.recording.get(index)
                    if taken is not None and type(buffer) in _DATA_KINDS:
                        taken.append(self._encode(buffer))
                return index, buffer
        return None

    def record(self, channel_index: int, encode: Any) -> None:
        """Keep (as ``encode(buffer)``) every data buffer read from the channel from now on,
        until :meth:`take_recorded`."""
        self._encode = encode
        self.recording[channel_index] = []

    def take_recorded(self, channel_index: int) -> list[Any]:
        """Stop recording the channel; return what was recorded (empty if nothing)."""
        return self.recording.pop(channel_index, [])

    def block(self, channel_index: int) -> None:
        self.channels[channel_index].blocked = True

    def unblock(self, channel_index: int) -> None:
        channel = self.channels[channel_index]
        if channel.blocked:
            channel.blocked = False
            if channel._queue:
                self.notifier.notify()

    def unblock_all(self) -> None:
        for index in range(len(self.channels)):
            self.unblock(index)

    @property
    def all_ended(self) -> bool:
        return all(channel.ended for channel in self.channels)
