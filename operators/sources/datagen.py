"""Generated rows: Flink's ``datagen`` connector as a replayable source.

Each field has a generator: *random* (a uniform value between ``min`` and ``max``, a random
string of ``length`` characters, a random bool) or *sequence* (``start, start+1, ..., end``,
the range cut into one part per split). The source is bounded when ``number_of_rows`` is set
or a field is a sequence (it ends at the first exhausted sequence), unbounded otherwise, and
paced to ``rows_per_second`` in all (each split takes its share).

Beyond Flink, the random values replay exactly after a restore, so a job reading them is
exactly-once end to end: row ``k`` of a split is a pure function of the split's seed and
``k``. Rows are made in blocks of :data:`BLOCK_ROWS`, each from a ``random.Random`` seeded
with (seed, split, block), and a reader's position is the number of rows it has emitted. The
seed is drawn once, when the job first starts, and travels with the split in checkpoints.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass
from typing import Any

import anyio

from streamlet.state.row import Row, RowKind

from .base import Source, SourceReader

__all__ = ["BLOCK_ROWS", "DataGenField", "DataGenSource"]

#: Rows made from one seeded generator (a restore regenerates at most one block).
BLOCK_ROWS = 1024

_INT_BITS = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "BIGINT": 64}
_FLOAT_RANGE = {
    # Flink's defaults: the type's smallest positive value to its largest.
    "FLOAT": (1.401298464324817e-45, 3.4028234663852886e38),
    "DOUBLE": (5e-324, 1.7976931348623157e308),
}
_STRING_TYPES = ("STRING", "VARCHAR", "CHAR")
#: The field types datagen can generate here.
GENERATED_TYPES = (*_INT_BITS, *_FLOAT_RANGE, "BOOLEAN", *_STRING_TYPES)


@dataclass(frozen=True, slots=True)
class DataGenField:
    """One generated column.

    :param name: the column's name
    :param type_name: its logical type: one of :data:`GENERATED_TYPES`
    :param kind: ``"random"`` or ``"sequence"``
    :param min: smallest random value (numeric types; default: the type's)
    :param max: largest random value (numeric types; default: the type's)
    :param length: random string length (string types; default 100)
    :param var_len: random string lengths 1..length instead of exactly ``length``
    :param start: first value of a sequence (numeric and string types: a string sequence
        is the numbers as strings, as in Flink)
    :param end: last value of a sequence (inclusive)
    :param null_rate: share of nulls among random values, 0.0 to 1.0
    """

    name: str
    type_name: str
    kind: str = "random"
    min: float | None = None
    max: float | None = None
    length: int = 100
    var_len: bool = False
    start: int | None = None
    end: int | None = None
    null_rate: float = 0.0

    def __post_init__(self) -> None:
        where = f"datagen field {self.name!r} ({self.type_name})"
        if self.type_name not in GENERATED_TYPES:
            raise NotImplementedError(
                f"{where}: datagen generates only {', '.join(GENERATED_TYPES)} here"
            )
        if self.kind not in ("random", "sequence"):
            raise ValueError(f"{where}: kind must be 'random' or 'sequence', got {self.kind!r}")
        if not 0.0 <= self.null_rate <= 1.0:
            raise ValueError(f"{where}: null-rate must be in [0, 1], got {self.null_rate}")
        if self.kind == "sequence":
            self._check_sequence(where)
        else:
            self._check_random(where)

    def _check_sequence(self, where: str) -> None:
        if self.type_name in ("BOOLEAN", *_FLOAT_RANGE):
            raise ValueError(f"{where}: a sequence needs an integer or string type")
        if self.start is None or self.end is None:
            raise ValueError(f"{where}: a sequence needs both 'start' and 'end'")
        if self.end < self.start:
            raise ValueError(f"{where}: 'end' ({self.end}) is below 'start' ({self.start})")
        self._check_in_type(where, self.start, self.end)

    def _check_random(self, where: str) -> None:
        if self.type_name in _STRING_TYPES:
            if self.length < 1:
                raise ValueError(f"{where}: 'length' must be at least 1, got {self.length}")
            return
        low, high = self.bounds()
        if high < low:
            raise ValueError(f"{where}: 'max' ({high}) is below 'min' ({low})")
        self._check_in_type(where, low, high)

    def _check_in_type(self, where: str, low: float, high: float) -> None:
        bits = _INT_BITS.get(self.type_name)
        if bits is not None and not (-(1 << (bits - 1)) <= low and high < 1 << (bits - 1)):
            raise ValueError(f"{where}: {low}..{high} does not fit a {bits}-bit integer")

    def bounds(self) -> tuple[float, float]:
        """The random range, with the type's defaults filled in."""
        bits = _INT_BITS.get(self.type_name)
        low: float
        high: float
        if bits is not None:
            low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            low, high = _FLOAT_RANGE.get(self.type_name, (0, 1))
        return (
            low if self.min is None else self.min,
            high if self.max is None else self.max,
        )


class DataGenSource(Source[Row]):
    """Rows of generated fields (Flink's ``datagen`` table connector; see the module doc).

    :param fields: the columns, in order
    :param rows_per_second: the total rate (Flink's default: 10,000); 0 or less is refused
    :param number_of_rows: rows in all, or ``None`` for no limit
    :param seed: the random seed; ``None`` draws one when the job first starts
    """

    name = "DataGen Source"

    def __init__(
        self,
        fields: list[DataGenField],
        *,
        rows_per_second: float = 10_000,
        number_of_rows: int | None = None,
        seed: int | None = None,
    ) -> None:
        if not fields:
            raise ValueError("datagen needs at least one column in its schema")
        if not rows_per_second > 0:
            raise ValueError(f"datagen 'rows-per-second' must be positive, got {rows_per_second}")
        if number_of_rows is not None and number_of_rows < 0:
            raise ValueError(f"datagen 'number-of-rows' must be >= 0, got {number_of_rows}")
        self.fields = list(fields)
        self.rows_per_second = float(rows_per_second)
        self.number_of_rows = number_of_rows
        self.seed = seed
        sequences = [f for f in fields if f.kind == "sequence"]
        self.bounded = number_of_rows is not None or bool(sequences)

    def create_splits(self, parallelism: int) -> list[Any]:
        seed = random.SystemRandom().getrandbits(62) if self.seed is None else self.seed
        parts = max(1, parallelism)
        splits = []
        for i in range(parts):
            rows = None
            if self.number_of_rows is not None:
                rows = _share(self.number_of_rows, i, parts)
            starts = []
            for f in self.fields:
                if f.kind != "sequence":
                    continue
                assert f.start is not None and f.end is not None  # checked by DataGenField
                total = f.end - f.start + 1
                lo = f.start + (total * i) // parts
                hi = f.start + (total * (i + 1)) // parts - 1
                starts.append(lo)
                length = hi - lo + 1
                rows = length if rows is None else min(rows, length)
            splits.append({"index": i, "of": parts, "seed": seed, "rows": rows, "starts": starts})
        return splits

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[Row]:
        index, parts, seed, rows, starts = _checked_split(split, len(self._sequences()))
        emitted = 0 if position is None else position
        if not isinstance(emitted, int) or isinstance(emitted, bool) or emitted < 0:
            raise ValueError(f"datagen split {index}: bad position {position!r} in the checkpoint")
        # Each split keeps the share of the rate it had when the splits were made, so the
        # total stays rows_per_second after a restore at any parallelism.
        rate = self.rows_per_second / parts
        return _DataGenReader(self, index, seed, rows, starts, emitted, rate)

    def _sequences(self) -> list[DataGenField]:
        return [f for f in self.fields if f.kind == "sequence"]


def _share(total: int, i: int, parts: int) -> int:
    return (total * (i + 1)) // parts - (total * i) // parts


def _checked_split(split: Any, sequences: int) -> tuple[int, int, int, int | None, list[int]]:
    """A split read back from a checkpoint, validated before it sizes anything."""
    if not isinstance(split, dict):
        raise ValueError(f"datagen: bad split {split!r} in the checkpoint")
    index, parts, seed, rows, starts = (
        split.get(k) for k in ("index", "of", "seed", "rows", "starts")
    )
    ok = (
        isinstance(index, int)
        and isinstance(parts, int)
        and 0 <= index < parts
        and isinstance(seed, int)
        and (rows is None or (isinstance(rows, int) and rows >= 0))
        and isinstance(starts, list)
        and len(starts) == sequences
        and all(isinstance(s, int) and not isinstance(s, bool) for s in starts)
    )
    if not ok:
        raise ValueError(
            f"datagen: split {split!r} in the checkpoint does not fit this source "
            f"({sequences} sequence fields); was the table's schema changed?"
        )
    assert isinstance(index, int) and isinstance(parts, int) and isinstance(seed, int)
    assert isinstance(starts, list)
    return index, parts, seed, rows, starts


class _DataGenReader(SourceReader[Row]):
    def __init__(
        self,
        source: DataGenSource,
        index: int,
        seed: int,
        rows: int | None,
        starts: list[int],
        emitted: int,
        rate: float,
    ) -> None:
        self._fields = source.fields
        self._names = [f.name for f in source.fields]
        self._index = index
        self._seed = seed
        self._rows = rows
        self._starts = starts
        self._next = emitted
        self._rate = rate
        self._t0: float | None = None
        self._since_open = 0
        self._block_index = -1
        self._block: list[Row] = []

    async def read_batch(self, max_records: int) -> list[Row] | None:
        if self._rows is not None and self._next >= self._rows:
            return None
        now = anyio.current_time()
        if self._t0 is None:
            self._t0 = now
        due = math.floor((now - self._t0) * self._rate) + 1 - self._since_open
        if due <= 0:
            await anyio.sleep(self._since_open / self._rate - (now - self._t0))
            due = 1
        count = min(due, max_records)
        if self._rows is not None:
            count = min(count, self._rows - self._next)
        out: list[Row] = []
        while len(out) < count:
            block, offset = divmod(self._next, BLOCK_ROWS)
            if block != self._block_index:
                self._block = self._make_block(block)
                self._block_index = block
            take = min(count - len(out), BLOCK_ROWS - offset)
            out.extend(self._block[offset : offset + take])
            self._next += take
        self._since_open += count
        return out

    def position(self) -> int:
        return self._next

    def _make_block(self, block: int) -> list[Row]:
        """Rows ``block * BLOCK_ROWS`` onwards: a pure function of seed, split and block."""
        rnd = random.Random((self._seed << 80) | (self._index << 40) | block)
        first = block * BLOCK_ROWS
        columns: list[list[Any]] = []
        seq = iter(self._starts)
        for field in self._fields:
            if field.kind == "sequence":
                start = next(seq) + first
                values: list[Any] = list(range(start, start + BLOCK_ROWS))
                if field.type_name in _STRING_TYPES:
                    values = [str(v) for v in values]
            else:
                values = _random_column(field, rnd)
            columns.append(values)
        names, insert, make = self._names, RowKind.INSERT, Row._make
        return [make(names, list(values), insert) for values in zip(*columns, strict=True)]


def _random_column(field: DataGenField, rnd: random.Random) -> list[Any]:
    n = BLOCK_ROWS
    name = field.type_name
    values: list[Any]
    if name == "BOOLEAN":
        values = [rnd.random() < 0.5 for _ in range(n)]
    elif name in _STRING_TYPES:
        length = field.length
        if field.var_len:
            lengths = [rnd.randint(1, length) for _ in range(n)]
        else:
            lengths = [length] * n
        values = [format(rnd.getrandbits(4 * k), f"0{k}x") for k in lengths]
    elif name in _INT_BITS:
        low, high = field.bounds()
        values = [rnd.randint(int(low), int(high)) for _ in range(n)]
    else:
        low, high = field.bounds()
        values = [rnd.uniform(low, high) for _ in range(n)]
        if name == "FLOAT":  # a Java float: the value rounded to 32 bits
            values = [struct.unpack("f", struct.pack("f", v))[0] for v in values]
    if field.null_rate > 0.0:
        rate = field.null_rate
        values = [None if rnd.random() < rate else v for v in values]
    return values
