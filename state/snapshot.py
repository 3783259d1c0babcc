"""Frozen keyed-state snapshots and the byte format of one key group.

:meth:`HeapKeyedStateBackend.snapshot_sync` (Flink's synchronous part) returns a
:class:`KeyedStateSnapshot` holding references to frozen per-key-group dicts. Turning it into
bytes is the CPU half of the asynchronous part: :meth:`KeyedStateSnapshot.serialize_key_group`
is pure and synchronous, one key group per call, so the engine's snapshotter can yield to the
event loop between key groups while records keep flowing. A large key group is serialized in
steps (:meth:`KeyedStateSnapshot.serialize_key_group_steps`), so that the loop may run records
between them too: a million keys make key groups of thousands of entries each.

Byte format of one key group (and, with another magic, of operator state)::

    magic (4 bytes) | header length (uint32, little endian) | header | payload 0 | payload 1 ...

The header is an orjson object. For keyed state it holds ``format`` (1), ``operator_uid``,
``key_group``, ``max_parallelism``, ``states`` (one ``[name, kind, codec, mode]`` per state
that has data in this key group) and ``payload_sizes``. Each payload is one state's table as
written by :func:`streamlet.state.serde.encode_table`. Keeping states in separate payloads lets a
restore hold a state's bytes undecoded until the user registers its descriptor (and its serializer).

Incremental snapshots (a changelog per entry) write format 2: an entry may carry a fifth element,
its operation. ``"put"`` sets the keys of its table to their values, ``"remove"`` removes the keys
of its table (the values are placeholders); an entry without one (``"full"``) replaces the
state's table of the key group. A restore applies the entries of a base and then of each later
change, in order. A full snapshot with nothing but full entries stays format 1, byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from .errors import StateError, StateSerializationError
from .key_groups import KeyGroupRange
from .serde import (
    UnserializableValueError,
    codec_name,
    encode_table,
    encode_table_chunk,
    join_table_chunks,
)
from .table import MISSING, StateTable

__all__ = [
    "KEYED_MAGIC",
    "OPS",
    "STEP_ENTRIES",
    "FrozenState",
    "KeyedStateSnapshot",
    "RawTable",
    "pack_frames",
    "read_key_group",
    "unpack_frames",
]

KEYED_MAGIC = b"SLK1"
#: Entries of one state's table that one step of
#: :meth:`KeyedStateSnapshot.serialize_key_group_steps` encodes: about half a millisecond of
#: CPU for scalar keys and values, so that a step plus the snapshotter's 2 ms between yields
#: stays well below the 5 ms a loop step may take (issue 12).
STEP_ENTRIES = 1024
_FORMAT = 1
#: Format of a key group holding changes ("put"/"remove" entries) as well.
_CHANGES_FORMAT = 2
#: Operations of an entry: replace the table, set some keys, remove some keys.
OPS = ("full", "put", "remove")
_LEN = struct.Struct("<I")


def pack_frames(magic: bytes, header: dict[str, Any], payloads: Sequence[bytes]) -> bytes:
    """Return ``magic``, the header (with ``payload_sizes`` added) and the payloads as bytes."""
    header["payload_sizes"] = [len(p) for p in payloads]
    head = orjson.dumps(header)
    return b"".join([magic, _LEN.pack(len(head)), head, *payloads])


def unpack_frames(magic: bytes, data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Undo :func:`pack_frames`.

    :raises ValueError: if ``data`` does not start with ``magic`` or is truncated or malformed
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"state data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:4] != magic:
        raise ValueError(f"state data does not start with {magic!r} (got {data[:4]!r})")
    if len(data) < 8:
        raise ValueError(f"state data is truncated ({len(data)} bytes)")
    (head_len,) = _LEN.unpack_from(data, 4)
    try:
        header = orjson.loads(data[8 : 8 + head_len])
        sizes = header["payload_sizes"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"state data has a malformed header: {exc}") from exc
    payloads = []
    pos = 8 + head_len
    for size in sizes:
        payloads.append(data[pos : pos + size])
        pos += size
    if pos != len(data):
        raise ValueError(f"state data is {len(data)} bytes but its header describes {pos}")
    return header, payloads


@dataclass(frozen=True, slots=True)
class RawTable:
    """One state's table of one key group as restored, not decoded yet.

    :param kind: the descriptor kind it was written with ("value", "list", ...)
    :param codec: the serializer's name (see :func:`streamlet.state.serde.codec_name`)
    :param mode: the table encoding (see :func:`streamlet.state.serde.encode_table`)
    :param payload: the encoded table
    :param op: ``"full"`` (the table replaces the state's), ``"put"`` (its entries are set)
        or ``"remove"`` (its keys are removed): see the module docstring
    """

    kind: str
    codec: str
    mode: str
    payload: bytes
    op: str = "full"


def read_key_group(data: bytes, key_group: int, max_parallelism: int) -> list[tuple[str, RawTable]]:
    """Return ``(state name, raw table)`` pairs from the bytes of key group ``key_group``.

    :raises ValueError: if ``data`` is malformed, or belongs to another key group or
        max_parallelism
    """
    header, payloads = unpack_frames(KEYED_MAGIC, data)
    if header.get("format") not in (_FORMAT, _CHANGES_FORMAT):
        raise ValueError(f"unknown keyed state format {header.get('format')!r}")
    if header.get("key_group") != key_group:
        raise ValueError(f"the data is for key group {header.get('key_group')!r}")
    if header.get("max_parallelism") != max_parallelism:
        raise ValueError(
            f"the data was written with max_parallelism {header.get('max_parallelism')!r}, "
            f"but this backend has max_parallelism {max_parallelism}; keyed state can only "
            f"be restored with the same max_parallelism"
        )
    states = header.get("states")
    if not isinstance(states, list) or len(states) != len(payloads):
        raise ValueError("the header's states do not match its payloads")
    out: list[tuple[str, RawTable]] = []
    for entry, payload in zip(states, payloads, strict=True):
        if not isinstance(entry, list) or len(entry) not in (4, 5):
            raise ValueError(f"malformed state entry {entry!r}")
        op = entry[4] if len(entry) == 5 else "full"
        if op not in OPS or not all(isinstance(part, str) for part in entry):
            raise ValueError(f"malformed state entry {entry!r}")
        name, kind, codec, mode = entry[:4]
        out.append((name, RawTable(kind, codec, mode, payload, op)))
    return out


@dataclass(slots=True)
class FrozenState:
    """One registered state as captured by a snapshot.

    :param name: state name
    :param kind: descriptor kind
    :param serializer: the descriptor's serializer (``None``: default)
    :param table: the live state table
    :param shadows: per key group index, this snapshot's shadow (see
        :class:`~streamlet.state.table.StateTable`), or ``None`` where the group was empty or is
        already serialized and released
    :param codec: the codec name to record, when not the serializer's own (a state with a
        time-to-live records ``"ttl:" + codec``)
    :param keep_unexpired: for a TTL state cleaned up in full snapshots, a function that
        copies a table without its expired entries (applied as it is serialized)
    :param changed: for an incremental snapshot, per key group index the entries changed
        since the base it extends, as of the snapshot (copied by ``snapshot_sync``, with
        :data:`~streamlet.state.table.MISSING` for a removed key), or ``None`` where none
        changed; only those are written, as "put" and "remove" entries. ``None`` writes the
        whole table (from ``shadows``)
    """

    name: str
    kind: str
    serializer: Any
    table: StateTable
    shadows: list[dict[Any, Any] | None]
    codec: str | None = None
    keep_unexpired: Callable[[dict[Any, Any]], dict[Any, Any]] | None = None
    changed: list[dict[Any, Any] | None] | None = None


@dataclass(slots=True)
class KeyedStateSnapshot:
    """A consistent cut of a keyed backend, frozen by ``snapshot_sync()``.

    It copies nothing: the backend records the old value of each key touched while the
    snapshot is pending (see :class:`~streamlet.state.table.StateTable`). Serialize it key group by
    key group; each serialized group is released at once. Call :meth:`release` when the
    snapshot is abandoned (a cancelled or failed checkpoint), so the backend stops
    recording for it.

    :param operator_uid: uid of the operator that owns the state
    :param key_group_range: the key groups of the backend
    :param max_parallelism: the backend's max parallelism (written into every key group)
    :param states: the registered states
    :param pending: restored states not registered yet: name -> key group index -> raw data,
        a base and changes in order (written back unchanged, so state survives a run that
        never registers it)
    :param incremental: whether this snapshot holds only changes since a base (then
        ``pending`` is empty: what was never registered never changed)
    """

    operator_uid: str
    key_group_range: KeyGroupRange
    max_parallelism: int
    states: list[FrozenState]
    pending: dict[str, dict[int, list[RawTable]]] = field(default_factory=dict)
    incremental: bool = False
    #: Bytes of the key groups serialized so far (a second call returns the same bytes).
    _serialized: dict[int, bytes] = field(default_factory=dict)
    #: Key groups whose serialization in steps is under way, and where it stands.
    _in_progress: dict[int, Generator[None, None, None]] = field(default_factory=dict)
    #: At most this many entries of a table per step of :meth:`serialize_key_group_steps`.
    step_entries: int = STEP_ENTRIES

    def key_groups(self) -> list[int]:
        """Return, in ascending order, the key groups that hold data (others are empty)."""
        used: set[int] = set()
        for state in self.states:
            used.update(i for i, shadow in enumerate(state.shadows) if shadow is not None)
            if state.changed is not None:
                used.update(i for i, entries in enumerate(state.changed) if entries is not None)
        used.update(key_group - self.key_group_range.start for key_group in self._serialized)
        for raws in self.pending.values():
            used.update(raws)
        start = self.key_group_range.start
        return [start + i for i in sorted(used)]

    def serialize_key_group(self, key_group: int) -> bytes:
        """Return the bytes of ``key_group`` (every state of the operator); pure CPU.

        A key group without data gives a valid blob with no states. A key group whose
        serialization :meth:`serialize_key_group_steps` began is finished first.

        :raises StateError: if ``key_group`` is outside the backend's range
        :raises StateSerializationError: if a value cannot be serialized; it names the
            operator uid, the state and the offending type
        """
        for _ in self.serialize_key_group_steps(key_group):
            pass
        return self._serialized[key_group]

    def serialize_key_group_steps(self, key_group: int) -> Iterator[None]:
        """Serialize ``key_group`` one bounded step per ``next()``; then
        :meth:`serialize_key_group` returns its bytes at once.

        A step encodes at most :attr:`step_entries` entries of one state's table when the
        table has a shape that can be encoded in chunks (see
        :func:`~streamlet.state.serde.encode_table_chunk`: scalar or tuple keys and values
        with the default serializer, the common case of keyed state); any other table is
        encoded in one step. The bytes are exactly those of a serialization in one go.

        Records may change the state between two steps; the snapshot stays what it was.
        The key group stays captured until its last step, so every access to one of its
        keys still records the old value in this snapshot's shadow first (see
        :class:`~streamlet.state.table.StateTable`), and each step reads the values of its
        keys as of the snapshot: the shadow's where the key was touched since, else the
        live one, which nothing changed since. The keys themselves are listed at the
        first step, from the snapshot's view.

        Calling it again for a key group under way returns the same iterator (it goes on
        where it stopped); for one already serialized, an exhausted one.

        :raises StateError: if ``key_group`` is outside the backend's range
        :raises StateSerializationError: from ``next()``, as :meth:`serialize_key_group`
        """
        if key_group not in self.key_group_range:
            raise StateError(
                f"key group {key_group} is outside the range {self.key_group_range} of "
                f"operator {self.operator_uid!r}"
            )
        if key_group in self._serialized:
            return iter(())
        steps = self._in_progress.get(key_group)
        if steps is None:
            steps = self._in_progress[key_group] = self._steps(key_group)
        return steps

    def _steps(self, key_group: int) -> Generator[None, None, None]:
        try:
            index = key_group - self.key_group_range.start
            entries: list[list[str]] = []
            payloads: list[bytes] = []
            changes = False
            for state in self.states:
                codec = state.codec or codec_name(state.serializer)
                if state.changed is not None:
                    changed = state.changed[index]
                    if changed is not None:
                        for op, mode, payload in self._encode_changes(state, changed):
                            entries.append([state.name, state.kind, codec, mode, op])
                            payloads.append(payload)
                            changes = True
                        state.changed[index] = None
                    continue
                shadow = state.shadows[index]
                if shadow is None:
                    continue
                mode, payload = yield from self._encode_state(state, index, shadow)
                entries.append([state.name, state.kind, codec, mode])
                payloads.append(payload)
            for name, raws in self.pending.items():
                for raw in raws.get(index, ()):
                    entry = [name, raw.kind, raw.codec, raw.mode]
                    if raw.op != "full":
                        entry.append(raw.op)
                        changes = True
                    entries.append(entry)
                    payloads.append(raw.payload)
            header = {
                "format": _CHANGES_FORMAT if changes else _FORMAT,
                "operator_uid": self.operator_uid,
                "key_group": key_group,
                "max_parallelism": self.max_parallelism,
                "states": entries,
            }
            self._serialized[key_group] = pack_frames(KEYED_MAGIC, header, payloads)
            for state in self.states:
                shadow = state.shadows[index]
                if shadow is not None:
                    state.shadows[index] = None
                    state.table.release(index, shadow)
        finally:
            self._in_progress.pop(key_group, None)

    def _encode_state(
        self, state: FrozenState, index: int, shadow: dict[Any, Any]
    ) -> Generator[None, None, tuple[str, bytes]]:
        """Encode one state's table of key group ``index`` as of the snapshot, in steps."""
        table = state.table
        view = table.view_of(index, shadow)
        keep = state.keep_unexpired
        step = self.step_entries
        if len(view) <= step or state.kind in ("list", "map"):
            # view_of may return the live dict: encode it before anything else runs.
            return self._encode_whole(state, view if keep is None else keep(view))
        keys = list(view)
        del view
        live = table.tables[index]
        yield
        key_chunks: list[bytes] = []
        value_chunks: list[bytes] = []
        mode = None
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            # Invariant: every key listed was in the snapshot, so its shadow entry (if any)
            # is its old value, never MISSING; an untouched key is unchanged in ``live``.
            if shadow:
                values = [shadow[key] if key in shadow else live[key] for key in chunk]
            else:
                values = [live[key] for key in chunk]
            if keep is not None:
                kept = keep(dict(zip(chunk, values, strict=True)))
                if not kept:
                    yield
                    continue
                chunk, values = list(kept), list(kept.values())
            encoded = encode_table_chunk(chunk, values, state.serializer)
            if encoded is None or (mode is not None and encoded[0] != mode):
                break
            mode = encoded[0]
            key_chunks.append(encoded[1])
            value_chunks.append(encoded[2])
            yield
        else:
            if mode is None:  # every entry expired
                return self._encode_whole(state, {})
            return mode, join_table_chunks(key_chunks, value_chunks)
        # A shape chunks do not settle: the whole table in one step, as of the snapshot.
        view = table.view_of(index, shadow)
        return self._encode_whole(state, view if keep is None else keep(view))

    def _encode_changes(
        self, state: FrozenState, changed: dict[Any, Any]
    ) -> list[tuple[str, str, bytes]]:
        """Encode the changed entries of one state's key group: a "put" entry for the keys
        with a value, a "remove" entry for those without."""
        puts = {key: value for key, value in changed.items() if value is not MISSING}
        removed: dict[Any, Any] = {}
        if len(puts) != len(changed):
            removed = {key: 0 for key, value in changed.items() if value is MISSING}
        out = []
        if puts:
            out.append(("put", *self._encode_whole(state, puts)))
        if removed:
            try:
                out.append(("remove", *encode_table(removed, None)))
            except UnserializableValueError as exc:
                raise StateSerializationError(self.operator_uid, state.name, str(exc)) from exc
        return out

    def _encode_whole(self, state: FrozenState, table: dict[Any, Any]) -> tuple[str, bytes]:
        try:
            return encode_table(table, state.serializer, element_wise=state.kind == "list")
        except UnserializableValueError as exc:
            raise StateSerializationError(self.operator_uid, state.name, str(exc)) from exc

    async def serialize_all(self) -> dict[int, bytes]:
        """Return ``{key group: bytes}`` for every key group with data.

        Yields to the event loop between key groups.

        :raises StateSerializationError: as :meth:`serialize_key_group`
        """
        out: dict[int, bytes] = {}
        for key_group in self.key_groups():
            out[key_group] = self.serialize_key_group(key_group)
            await anyio.sleep(0)
        return out

    def release(self) -> None:
        """Give up the snapshot: release every key group not serialized yet, and drop the
        data (it cannot be serialized afterwards). Safe to call more than once."""
        for steps in list(self._in_progress.values()):
            steps.close()
        self._in_progress = {}
        for state in self.states:
            state.changed = None
            for index, shadow in enumerate(state.shadows):
                if shadow is not None:
                    state.shadows[index] = None
                    state.table.release(index, shadow)
        self.states = []
        self.pending = {}
        self._serialized = {}

    def __del__(self) -> None:
        # A snapshot dropped without serializing or releasing must not leave the backend
        # recording old values for it forever.
        self.release()
