"""A stateful job writing files exactly once, through a crash and a restore.

    python examples/exactly_once_files.py [--events 20000] [--workdir exactly-once-demo]

The job reads a sequence of numbered deposits (``from_sequence``, which rewinds exactly),
keys them by account and keeps each account's balance and deposit count in keyed state.
For every deposit it writes one line ``account,count,balance`` to a :class:`~streamlet.FileSink`,
which commits part files only when a checkpoint completes (two-phase commit).

Midway one subtask of the balance operator crashes (an injected fault). The job restarts
from its latest completed checkpoint: the state goes back to that checkpoint, the sources
rewind to its positions, and the part files written since then are discarded, never
committed. So the committed output is exact: for every account the counts in its lines are
1, 2, 3, ... with no gap and no repeat, and the last balance is the sum of its deposits. The
script checks exactly that and prints the result.

Compare with an at-least-once sink (``print`` or ``add_sink``): after the restore the lines
since the checkpoint would appear twice.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import anyio

from streamlet import (
    CheckpointingMode,
    FileSink,
    KeyedProcessFunction,
    RestartStrategies,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
    read_committed,
)
from streamlet.testing import FaultInjector, inject_faults

JOB_NAME = "exactly-once-files"
ACCOUNTS = 16


def account_of(n: int) -> str:
    return f"acct-{n % ACCOUNTS:02d}"


async def pace(n: int) -> int:
    """Slow the input down a little so that checkpoints complete before the crash.

    A real source is slower than ``from_sequence``, which otherwise finishes in moments.
    """
    if n % 20 == 0:
        await anyio.sleep(0.001)
    return n


class Balance(KeyedProcessFunction):
    """Keeps ``{"count", "balance"}`` per account; emits one line per deposit."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("account"))

    def process_element(self, value: tuple[str, int], ctx: KeyedProcessFunction.Context):
        account, amount = value
        current = self.state.value() or {"count": 0, "balance": 0}
        current = {"count": current["count"] + 1, "balance": current["balance"] + amount}
        self.state.update(current)
        yield f"{account},{current['count']},{current['balance']}"


def build_job(
    env: StreamExecutionEnvironment, output_dir: str | Path, events: int = 20_000
) -> None:
    """deposits 1..events -> (account, amount) -> key by account -> Balance -> FileSink."""
    env.enable_checkpointing(50, CheckpointingMode.EXACTLY_ONCE)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 100))
    (
        env.from_sequence(1, events)
        .uid("deposits")
        .map(pace)
        .uid("pace")
        .map(lambda n: (account_of(n), n))
        .uid("to-account")
        .key_by(lambda deposit: deposit[0])
        .process(Balance())
        .uid("balance")
        .sink_to(FileSink(output_dir))
        .uid("files")
    )


@dataclass(frozen=True)
class Report:
    """What a run did and what the check found (``problems`` empty: exactly once)."""

    lines: int
    restarts: int
    checkpoints: int
    problems: list[str]


def check_output(output_dir: str | Path, events: int) -> list[str]:
    """Compare the committed lines with what exactly-once processing must give."""
    expected_count: dict[str, int] = defaultdict(int)
    expected_balance: dict[str, int] = defaultdict(int)
    for n in range(1, events + 1):
        expected_count[account_of(n)] += 1
        expected_balance[account_of(n)] += n
    counts: dict[str, list[int]] = defaultdict(list)
    last_balance: dict[str, int] = {}
    for line in read_committed(output_dir):
        account, count, balance = line.split(",")
        counts[account].append(int(count))
        if int(count) == expected_count[account]:
            last_balance[account] = int(balance)
    problems = []
    for account, n in sorted(expected_count.items()):
        if sorted(counts[account]) != list(range(1, n + 1)):
            seen = sorted(counts[account])
            duplicated = len(seen) - len(set(seen))
            missing = n - len(set(seen))
            problems.append(f"{account}: {duplicated} line(s) twice, {missing} missing")
        elif last_balance.get(account) != expected_balance[account]:
            problems.append(
                f"{account}: balance {last_balance.get(account)}, "
                f"expected {expected_balance[account]}"
            )
    return problems


async def run(workdir: str | Path, events: int = 20_000, parallelism: int = 4) -> Report:
    """Run the job once, crashing a balance subtask midway; check the committed files."""
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    output_dir = workdir / "out"
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.get_checkpoint_config().set_checkpoint_storage_dir(workdir / "checkpoints")
    build_job(env, output_dir, events)
    # Crash subtask 1 of the balance operator halfway through its share of the deposits.
    inject_faults(env, FaultInjector().fail_record("balance", at=events // parallelism // 2))
    result = await env.execute(JOB_NAME)
    return Report(
        lines=len(read_committed(output_dir)),
        restarts=result.restart_count,
        checkpoints=result.checkpoints_completed,
        problems=check_output(output_dir, events),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--workdir", default="exactly-once-demo")
    args = parser.parse_args()
    report = anyio.run(run, args.workdir, args.events, args.parallelism)
    print(
        f"{report.lines} lines committed to {args.workdir}/out, "
        f"{report.restarts} restart(s), {report.checkpoints} checkpoint(s)"
    )
    if report.problems:
        print("NOT exactly once:\n  " + "\n  ".join(report.problems))
        return 1
    print(
        f"exactly once: every account's lines are numbered 1, 2, 3, ... once ({ACCOUNTS} accounts)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
