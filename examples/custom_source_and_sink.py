"""Write your own source and exactly-once sink: a partitioned order log into SQLite.

    python examples/custom_source_and_sink.py [--orders 2000] [--workdir orders-demo]

**The source** (:class:`OrderLog`) reads a partitioned, replayable log, the way a Kafka
topic is read: each partition is a *split*, a reader reads one split, and its *position* is
the offset of the next record. A checkpoint stores every split's position; a restore builds
readers at those positions, so no order is read twice or skipped. Here the log is generated
from the offset (so it can be "re-read" for free); a real one would seek a file or a broker.

**The sink** (:class:`SqliteOrdersSink`) is a :class:`~streamlet.TwoPhaseCommitSink` writing to
a database that has ordinary transactions but no prepared ones. The classic recipe:

1. ``write``: insert the rows into a *staging* table, tagged with the sink's transaction
   (durable at once, but invisible to readers of ``orders``);
2. ``pre_commit`` (at a checkpoint barrier): make the transaction durable; here the rows
   already are, so there is nothing left to do;
3. ``commit`` (when the checkpoint completed): in one database transaction, move the rows
   of that transaction from staging into ``orders``. Run twice, the second run finds nothing
   to move: idempotent, as a commit repeated after a restore must be;
4. ``abort``: delete the staged rows of that transaction.

The job then crashes once, right after its first commit (:class:`CrashAfterFirstCommit`),
as if the process died before it could note that the commit happened. It restarts from the
last completed checkpoint, where that transaction is still pending, so the restore commits
it a second time (which must change nothing: commits are idempotent), aborts the
transactions begun after the checkpoint, and the source re-reads from its positions. The
script then checks the ``orders`` table: every order exactly once. (Rows a writer staged
before the job's *first* checkpoint would stay in staging, invisible, if it crashed then: no
checkpoint names them. The report counts them.)
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from streamlet import (
    RestartStrategies,
    Source,
    SourceReader,
    StreamExecutionEnvironment,
    TwoPhaseCommitSink,
)

JOB_NAME = "orders-to-sqlite"

# --- the source ---


def order_at(partition: int, offset: int) -> dict[str, Any]:
    """The order stored at ``offset`` of ``partition`` (deterministic: the log is replayable)."""
    return {
        "id": f"{partition}-{offset}",
        "customer": f"customer-{(partition * 7 + offset) % 10}",
        "amount": offset % 13 + 1,
    }


class OrderLog(Source[dict[str, Any]]):
    """``partitions`` partitions of ``per_partition`` orders each; bounded and replayable.

    Splits are ``{"partition": p}`` (JSON-able: they are stored in checkpoints). Splits are
    dealt round-robin to the subtasks, so up to ``partitions`` subtasks read in parallel.
    """

    name = "Order Log"

    def __init__(self, partitions: int = 4, per_partition: int = 500) -> None:
        self.partitions = partitions
        self.per_partition = per_partition

    def create_splits(self, parallelism: int) -> list[Any]:
        return [{"partition": p} for p in range(self.partitions)]

    def create_reader(self, split: Any, position: Any | None) -> SourceReader[dict[str, Any]]:
        # Everything the reader needs comes from the split and the restored position.
        start = 0 if position is None else int(position)
        return OrderLogReader(split["partition"], start, self.per_partition)


class OrderLogReader(SourceReader[dict[str, Any]]):
    """Reads one partition from ``offset`` on.

    Resume contract: :meth:`position` is the offset of the next order to read; a reader
    built with it starts exactly there.
    """

    def __init__(self, partition: int, offset: int, end: int) -> None:
        self.partition = partition
        self.offset = offset
        self.end = end

    async def read_batch(self, max_records: int) -> list[dict[str, Any]] | None:
        if self.offset >= self.end:
            return None  # bounded: the partition is exhausted
        await anyio.sleep(0.002)  # a real log waits for the network or the disk here
        stop = min(self.offset + min(max_records, 25), self.end)
        batch = [order_at(self.partition, o) for o in range(self.offset, stop)]
        self.offset = stop
        return batch

    def position(self) -> int:
        return self.offset


# --- the sink ---

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (id TEXT, customer TEXT, amount INTEGER);
CREATE TABLE IF NOT EXISTS staging (
    writer TEXT, seq INTEGER, id TEXT, customer TEXT, amount INTEGER
);
CREATE INDEX IF NOT EXISTS staging_txn ON staging (writer, seq);
"""


def create_database(path: str | Path) -> None:
    db = sqlite3.connect(path)
    try:
        # Write-ahead journaling (persistent): readers never block the writers.
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
    finally:
        db.close()


class SqliteOrdersSink(TwoPhaseCommitSink[dict[str, Any], dict[str, Any]]):
    """Exactly-once inserts into ``orders`` through a staging table (see the module doc).

    A transaction handle is ``{"writer": w, "seq": n}``: the writer (one per subtask and
    attempt) and its transaction number. It goes into checkpoints, so it is JSON-able.

    SQLite allows one writing transaction at a time, so no database transaction is held
    open between calls: every ``write`` commits its rows to staging at once (durable and
    still invisible), which leaves ``pre_commit`` nothing to do. The sink object is
    deep-copied for every subtask, so the connection is opened in :meth:`open`, never in
    ``__init__``; blocking SQLite calls run in worker threads.
    """

    name = "SQLite Orders"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = str(path)
        self.db: sqlite3.Connection | None = None

    async def open(self, ctx: Any) -> None:
        await super().open(ctx)
        self.db = await anyio.to_thread.run_sync(self._connect)
        self.writer = f"{ctx.subtask_index}-{uuid.uuid4().hex[:8]}"
        self.seq = 0

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")  # a COMMIT is on disk when it returns
        return db

    async def close(self) -> None:
        if self.db is not None:
            await anyio.to_thread.run_sync(self.db.close)

    async def _transaction(self, *statements: tuple[str, Any]) -> None:
        """Run ``statements`` in one database transaction, in a worker thread."""

        def run() -> None:
            assert self.db is not None
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    if isinstance(params, list):
                        self.db.executemany(sql, params)
                    else:
                        self.db.execute(sql, params)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

        await anyio.to_thread.run_sync(run)

    def begin_transaction(self) -> dict[str, Any]:
        self.seq += 1
        return {"writer": self.writer, "seq": self.seq}

    async def write(self, transaction: dict[str, Any], records: list[dict[str, Any]]) -> None:
        writer, seq = transaction["writer"], transaction["seq"]
        rows = [(writer, seq, r["id"], r["customer"], r["amount"]) for r in records]
        await self._transaction(("INSERT INTO staging VALUES (?, ?, ?, ?, ?)", rows))

    async def pre_commit(self, transaction: dict[str, Any]) -> None:
        """Nothing left to flush: every write already committed its rows to staging."""

    async def commit(self, transaction: dict[str, Any]) -> None:
        """Move the transaction's rows from staging to ``orders``, atomically.

        Idempotent: run again (a restore repeats commits), it finds no rows to move.
        """
        txn = (transaction["writer"], transaction["seq"])
        await self._transaction(
            (
                "INSERT INTO orders SELECT id, customer, amount FROM staging "
                "WHERE writer = ? AND seq = ?",
                txn,
            ),
            ("DELETE FROM staging WHERE writer = ? AND seq = ?", txn),
        )

    async def abort(self, transaction: dict[str, Any]) -> None:
        """Delete the transaction's staged rows."""
        txn = (transaction["writer"], transaction["seq"])
        await self._transaction(("DELETE FROM staging WHERE writer = ? AND seq = ?", txn))

    async def recover_and_abort(self, transaction: dict[str, Any]) -> None:
        """Abort a transaction of a failed attempt, and the ones its writer began later.

        Those later transactions hold rows after the restored checkpoint, which the source
        replays; no restored state names them, so they are found by writer and number.
        """
        txn = (transaction["writer"], transaction["seq"])
        await self._transaction(("DELETE FROM staging WHERE writer = ? AND seq >= ?", txn))


# --- the job ---


class Switch:
    """A flag shared by every copy of the sink (sinks are deep-copied for every subtask)."""

    def __init__(self) -> None:
        self.on = False

    def __deepcopy__(self, memo: dict[int, Any]) -> Switch:
        return self


class CrashAfterFirstCommit(SqliteOrdersSink):
    """The sink above, but the job "crashes" right after the first commit, once.

    A process can die between a commit and the moment it records that it committed; the
    restore then commits the same transaction again. This makes that happen on purpose.
    """

    def __init__(self, path: str | Path, crashed: Switch) -> None:
        super().__init__(path)
        self.crashed = crashed

    async def commit(self, transaction: dict[str, Any]) -> None:
        await super().commit(transaction)
        if not self.crashed.on:
            self.crashed.on = True
            raise RuntimeError(f"simulated crash right after committing {transaction}")


def build_job(
    env: StreamExecutionEnvironment, db_path: str | Path, orders_per_partition: int
) -> None:
    env.enable_checkpointing(20)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 100))
    (
        env.from_source(OrderLog(partitions=4, per_partition=orders_per_partition))
        .uid("orders")
        .filter(lambda order: order["amount"] > 0)
        .uid("valid")
        .sink_to(CrashAfterFirstCommit(db_path, Switch()))
        .uid("orders-db")
    )


@dataclass(frozen=True)
class Report:
    rows: int
    distinct: int
    expected: int
    staged: int  # rows left in staging: invisible (see the module doc)
    restarts: int
    checkpoints: int

    @property
    def exactly_once(self) -> bool:
        """Every order is in ``orders`` once (staged rows are invisible: not counted)."""
        return self.rows == self.distinct == self.expected


async def run(workdir: str | Path, orders: int = 2000, parallelism: int = 2) -> Report:
    """Run the job (it crashes once, midway); count what the database holds."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "orders.sqlite3"
    db_path.unlink(missing_ok=True)
    create_database(db_path)
    per_partition = orders // 4
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_checkpoint_config().set_checkpoint_storage_dir(workdir / "checkpoints")
    build_job(env, db_path, per_partition)
    result = await env.execute(JOB_NAME)
    with sqlite3.connect(db_path) as db:
        rows, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM orders").fetchone()
        (staged,) = db.execute("SELECT COUNT(*) FROM staging").fetchone()
    db.close()
    return Report(
        rows,
        distinct,
        per_partition * 4,
        staged,
        result.restart_count,
        result.checkpoints_completed,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--workdir", default="orders-demo")
    args = parser.parse_args()
    report = anyio.run(run, args.workdir, args.orders)
    print(
        f"orders table: {report.rows} rows, {report.distinct} distinct ids, "
        f"{report.expected} expected; {report.staged} staged rows left; "
        f"{report.restarts} restart(s), {report.checkpoints} checkpoint(s)"
    )
    print("exactly once" if report.exactly_once else "NOT exactly once")
    return 0 if report.exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
