"""Keyed timers as keyed state: the queues of Flink's ``InternalTimerService``.

A keyed operator's timers (one queue per time domain and timer service) live in the heap
backend as an ordinary keyed *value* state named ``_timer_state/{domain}_{service}``
(Flink's names: ``_timer_state/event_user-timers``, ``_timer_state/processing_user-timers``).
Per user key the state holds the key's timer timestamps as a sorted list without
duplicates. Because it is a normal state, snapshots, restore, redistribution of key groups
at any parallelism and copy-on-write against pending snapshots all work as for user state,
and the checkpoint format is unchanged.

Why a sorted list, not a dict used as a set: registering is an append in the common case
(timers registered in time order) and firing removes the list's head, both a few tens of
ns, where a dict per key cost 0.6 us per registration with 10,000 keys (a cache miss into
a dict's table, and its resizes); and the default serializer writes lists of ints in its
plain mode, about ten times faster than the tagged mode a dict of int keys needs (about
0.15 us per timer to write, 0.07 us to read).

What fires next is decided by an in-memory binary heap with one entry per *key*, not per
timer: the entry of the key's earliest timer (its list's head). An entry is one int,
``timestamp << 62 | seq``, so the heap compares ints, not tuples (a heap of tuples spent a
microsecond per timer in comparisons); ``entries`` maps it to the key and its key group
index. Registering a timer that is not the key's earliest is an
append to its list, with no heap operation, and firing a key's earliest timer replaces its
entry with one for the next (``heapreplace``), so the heap is as large as the number of keys
with timers and stays in the CPU's caches. ``seq`` grows with every push (and stays below
``2**62``), so entries are unique, the heap never compares two keys (keys may be of mixed,
unorderable types), and ``entry >> 62`` is the timestamp; timers of equal timestamps of
different keys fire in an unspecified order, as in Flink.

Entries are never searched: an entry whose timestamp is no longer its key's earliest timer
(deleted, or a new earlier one came) is *stale* and is skipped when it reaches the top. The
invariant: every key with timers has an entry whose timestamp is its earliest timer (a
delete of the earliest pushes one for the next). An entry fires iff, on top of the heap, its
timestamp is still its key's earliest timer, so every timer fires exactly once, in order.
The heap is not state: the queue rebuilds it from the state when it is created (the
operator's ``open()``, after the backend was restored).

Removing a key's earliest timer deletes the head of its list, which moves the rest: cheap
for the tens or thousands of timers a key usually has, linear in them for a key with
hundreds of thousands.

The per-timer paths (:meth:`~KeyedTimerQueue.register`, :meth:`~KeyedTimerQueue.due`)
are written flat, as the state views are: the current key and its key group index come from
the backend (never hashed again), one list index and an ``is None`` test do the
copy-on-write check, then one list operation and at most one heap operation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from heapq import heapify, heappop, heappush, heapreplace
from itertools import count
from typing import Any, NoReturn

from .descriptors import ValueStateDescriptor
from .errors import StateError
from .heap_backend import TIMER_STATE_PREFIX, HeapKeyedStateBackend

__all__ = ["DOMAINS", "KeyedTimerQueue", "timer_state_name"]

#: The time domains of timers (Flink's ``TimeDomain``, lower case as in its state names).
DOMAINS = ("event", "processing")


def timer_state_name(domain: str, service: str = "user-timers") -> str:
    """Return the name of the keyed state holding the timers of ``domain`` and ``service``."""
    return f"{TIMER_STATE_PREFIX}{domain}_{service}"


#: pop_due takes the due entries out at once after this many single pops in a row...
_BULK_AFTER = 1024
#: ...if the heap holds fewer than this many times the pops so far, or all are due.
_BULK_SHARE = 8
#: A limit at or beyond the largest watermark: every timer is due.
_END_OF_TIME = 2**63 - 1


#: Bits of a heap entry below the timestamp: the push counter (never reaches 2**62).
_SEQ_BITS = 62


def _find(timers: list[int] | None, timestamp: int) -> int:
    """The position of ``timestamp`` in a key's sorted timers, -1 if it is not there."""
    if timers is None:
        return -1
    position = bisect_left(timers, timestamp)
    if position < len(timers) and timers[position] == timestamp:
        return position
    return -1


def _not_int(timestamp: object) -> NoReturn:
    raise TypeError(
        f"a timer's timestamp must be an int (milliseconds), got {timestamp!r} "
        f"of type {type(timestamp).__name__}"
    )


class KeyedTimerQueue:
    """The timers of one time domain of one keyed operator subtask, kept in its backend.

    Create it once per backend and state name (in the operator's ``open()``, after any
    restore; a restore into the backend after that is not seen by the heap). Timers are
    registered and deleted for the backend's current key; :meth:`pop_due` hands them back
    in timestamp order, each with its key made current, so the ``on_timer`` callback reads
    and writes that key's state.

    :param backend: the keyed state backend of the subtask
    :param domain: ``"event"`` or ``"processing"``
    :param service: the timer service's name (Flink's ``user-timers`` for user timers)
    :raises ValueError: if ``domain`` is not a time domain or ``service`` is empty
    :raises StateError: if a queue of this state name already exists on ``backend``, or
        restored data of that name is not map state
    :raises StateSerializationError: if restored timers cannot be decoded
    """

    __slots__ = (
        "_backend",
        "_count",
        "_due",
        "_entries",
        "_heap",
        "_next_seq",
        "_run",
        "_size",
        "_table",
        "_touch",
        "_writable",
        "domain",
        "name",
        "service",
    )

    def __init__(
        self, backend: HeapKeyedStateBackend, domain: str, service: str = "user-timers"
    ) -> None:
        if domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
        if not isinstance(service, str) or not service:
            raise ValueError(f"service must be a non-empty str, got {service!r}")
        name = timer_state_name(domain, service)
        if name in backend._tables:
            # Two heaps over one state would each fire from their own copy of it.
            raise StateError(
                f"operator {backend.operator_uid!r} already has a timer queue for {name!r}"
            )
        table = backend._internal_value_table(ValueStateDescriptor(name))
        self.domain = domain
        self.service = service
        #: The name of the keyed value state that holds the timers.
        self.name = name
        self._backend = backend
        self._table = table
        self._writable = table.writable
        self._touch = table.touch
        self._size = len(table.tables)
        # Restored timers: an entry per key, for its earliest timer.
        next_seq = count().__next__
        #: heap entry -> (key group index, key).
        self._entries: dict[int, tuple[int, Any]] = {
            (timers[0] << _SEQ_BITS) + next_seq(): (index, key)
            for index, group in enumerate(table.tables)
            for key, timers in group.items()
        }
        heap = list(self._entries)
        heapify(heap)
        self._heap: list[int] = heap
        self._next_seq = next_seq
        self._count = sum(len(timers) for group in table.tables for timers in group.values())
        #: Entries taken out of the heap at once because most of it was due (see
        #: :meth:`due`), sorted latest first (so the next is at the end). Every entry in it
        #: is earlier than or equal to the limit it was taken for.
        self._due: list[int] = []
        # Entries popped one by one since due() last found none due.
        self._run = 0

    def register(self, timestamp: int) -> None:
        """Register a timer at ``timestamp`` for the backend's current key.

        A timer the key already has at that timestamp is kept as it is (one per key and
        timestamp, as in Flink).

        :raises TypeError: if ``timestamp`` is not an int
        :raises StateError: if the backend has no current key
        """
        if type(timestamp) is not int:
            _not_int(timestamp)
        b = self._backend
        i = b._kg_index
        key = b._current_key
        t = self._writable[i]
        if t is None:
            t = self._touched(i, key)
        timers = t.get(key)
        if timers is None:
            t[key] = [timestamp]
            self._push(timestamp, i, key)
        elif timers[-1] < timestamp:
            timers.append(timestamp)  # the common case: later than the key's others
        else:
            position = bisect_left(timers, timestamp)
            if position < len(timers) and timers[position] == timestamp:
                return
            timers.insert(position, timestamp)
            if position == 0:  # the key's new earliest timer needs its entry
                self._push(timestamp, i, key)
        self._count += 1

    def _push(self, timestamp: int, i: int, key: Any) -> None:
        entry = (timestamp << _SEQ_BITS) + self._next_seq()
        self._entries[entry] = (i, key)
        heappush(self._heap, entry)

    def delete(self, timestamp: int) -> None:
        """Delete the current key's timer at ``timestamp``; nothing happens if it has none.

        Other keys' timers at that timestamp stay.

        :raises TypeError: if ``timestamp`` is not an int
        :raises StateError: if the backend has no current key
        """
        if type(timestamp) is not int:
            _not_int(timestamp)
        b = self._backend
        i = b._kg_index
        key = b._current_key
        t = self._writable[i]
        if t is None:
            t = self._touched(i, key)
        timers = t.get(key)
        position = _find(timers, timestamp)
        if position < 0:
            return
        assert timers is not None
        if len(timers) == 1:
            # Invariant: no empty lists are stored.
            del t[key]
        else:
            del timers[position]
            if position == 0:  # the next timer is the key's earliest now: give it an entry
                self._push(timers[0], i, key)
        self._count -= 1

    def peek(self) -> int | None:
        """Return the earliest timestamp of a live timer, ``None`` if there is none.

        Stale entries met on the way are dropped.
        """
        tables = self._table.tables
        entries = self._entries
        due = self._due
        heap = self._heap
        while True:
            from_due = bool(due) and (not heap or due[-1] < heap[0])
            if from_due:
                entry = due[-1]
            elif heap:
                entry = heap[0]
            else:
                return None
            timestamp = entry >> _SEQ_BITS
            i, key = entries[entry]
            timers = tables[i].get(key)
            if timers is not None and timers[0] == timestamp:
                return timestamp
            del entries[entry]
            if from_due:
                due.pop()
            else:
                heappop(heap)

    def pop_due(self, limit: int) -> int | None:
        """Remove the earliest live timer at or before ``limit``; make its key current.

        The timer's key (and its key group index) become the backend's current key, as
        :meth:`HeapKeyedStateBackend.set_current_key` would set them, and its timestamp is
        returned; ``None`` (with the current key unchanged) when no timer is due. Timers
        registered while the caller handles one are seen at once, so a loop
        ``while (ts := queue.pop_due(limit)) is not None`` also fires those at or before
        ``limit``, in order. (:meth:`due` is the same loop as a generator, without a call
        per timer.)
        """
        return next(self.due(limit), None)

    def due(self, limit: int) -> Iterator[int]:
        """Yield the timers at or before ``limit`` in order, each removed and with its key
        made current before it is yielded, as :meth:`pop_due` does one at a time.

        Timers registered or deleted while the caller handles a timer are seen at the next
        step. When most of the heap is due (the final watermark of a bounded input fires
        every timer of a million keys), popping entry by entry costs a cache miss per level
        of a big heap (about 4 us per entry); then the due entries are taken out at once
        and sorted (about 0.6 us), and handed out from that list, merged in order with the
        entries pushed meanwhile.
        """
        backend = self._backend
        writable = self._writable
        tables = self._table.tables
        entries = self._entries
        next_seq = self._next_seq
        heap = self._heap
        due = self._due
        while True:
            from_due = bool(due) and (not heap or due[-1] < heap[0])
            if from_due:
                entry = due[-1]
            elif heap:
                entry = heap[0]
            else:
                self._run = 0
                return
            timestamp = entry >> _SEQ_BITS
            if timestamp > limit:
                self._run = 0
                return  # a stale top hides nothing: every entry below is later
            i, key = where = entries[entry]
            live = tables[i].get(key)
            if live is None or live[0] != timestamp:
                # Stale: the key's earliest timer is another one (or it has none).
                del entries[entry]
                if from_due:
                    due.pop()
                else:
                    heappop(heap)
                continue
            if not from_due:
                self._run += 1
                if (
                    self._run > _BULK_AFTER
                    and not due
                    and (limit >= _END_OF_TIME or self._run * _BULK_SHARE > len(heap))
                ):
                    self._take_due(limit)
                    heap = self._heap
                    due = self._due
                    continue
            t = writable[i]
            if t is None:
                t = self._touch(i, key)
            timers = t[key]  # the live list (copy-on-write recorded its old value)
            del entries[entry]
            if len(timers) == 1:
                del t[key]
                if from_due:
                    due.pop()
                else:
                    heappop(heap)
            else:
                del timers[0]
                following = (timers[0] << _SEQ_BITS) + next_seq()
                entries[following] = where
                if from_due:
                    due.pop()
                    heappush(heap, following)
                else:
                    heapreplace(heap, following)
            self._count -= 1
            # The timer's key becomes current without hashing it again: its key group index
            # came with the entry (what set_current_key would compute).
            backend._kg_index = i
            backend._current_key = key
            yield timestamp

    def _take_due(self, limit: int) -> None:
        """Move every heap entry at or before ``limit`` to :attr:`_due`, sorted."""
        heap = self._heap
        bound = (limit + 1) << _SEQ_BITS  # the first entry of a timestamp after limit
        due = [entry for entry in heap if entry < bound]
        rest = [entry for entry in heap if entry >= bound]
        heapify(rest)
        due.sort(reverse=True)
        self._due = due  # replaces an empty one: due() bulks only once _due is used up
        self._heap = rest
        self._run = 0

    def __len__(self) -> int:
        """The number of live timers (registered and neither deleted nor fired)."""
        return self._count

    def __repr__(self) -> str:
        return f"<KeyedTimerQueue {self.name!r}: {len(self)} timers>"

    def _touched(self, index: int, key: Any) -> dict[Any, Any]:
        """The copy-on-write slow path of :meth:`register` and :meth:`delete`, with the
        timers' own error for "no current key"."""
        if index >= self._size:
            raise StateError(
                f"no current key: timers of {self.name!r} are registered and deleted for the "
                f"current key, so set_current_key() must be called first"
            )
        return self._touch(index, key)
