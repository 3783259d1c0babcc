"""The seed job: count the words typed into a socket, exactly once, at parallelism 4.

Start a text server in one terminal, the job in another, and type lines into the first::

    nc -lk 9999
    python examples/socket_word_count.py          # or: streamlet run examples/socket_word_count.py

The job prints a running count per word, prefixed by the subtask that counted it
(``3> ('STREAM', 2)``). Words are keyed, so every word is always counted by the same
subtask. Stop it with Ctrl-C, or stop ``nc``: the job ends when the server closes.

Why it is exactly-once although a socket cannot rewind: ``write_ahead_log=True`` makes the
source log every line to disk (under the checkpoint directory) before the job sees it, and
replay the lines after the restored checkpoint when a subtask fails. Without the log it would
be at-most-once, as Flink's socket source is, and the job says so in a warning when it
starts. The print sink itself is at-least-once: after a restore it prints the counts since
the last checkpoint again (the counts themselves are right, they come from restored state).

On Apache Flink (``pip install 'streamlet[flink]'``): ``python examples/socket_word_count.py
--runner flink`` runs the same job on Flink's local mini-cluster, with Flink's own socket
source, which has no write-ahead log (the job is then at-most-once after a failure, as any
Flink socket job). ``streamlet run examples/socket_word_count.py --runner flink`` is refused
before Flink starts, naming the write-ahead log and what to use instead.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from streamlet import (
    CheckpointingMode,
    DataStream,
    JobExecutionError,
    JobExecutionResult,
    RestartStrategies,
    StreamExecutionEnvironment,
)

JOB_NAME = "socket-word-count"


def split_words(line: str) -> list[tuple[str, int]]:
    """One ``(WORD, 1)`` per word of the line, upper-cased."""
    return [(word.upper(), 1) for word in line.split()]


def word_counts(
    env: StreamExecutionEnvironment, host: str, port: int, write_ahead_log: bool = True
) -> DataStream:
    """The job's dataflow: lines from the socket -> ``(WORD, 1)`` -> a running count per
    word."""
    return (
        env.socket_text_stream(host, port, write_ahead_log=write_ahead_log)
        .uid("socket")
        .flat_map(split_words)
        .uid("split")
        .key_by(lambda pair: pair[0])
        .sum(1)
        .uid("count")
    )


def build(
    env: StreamExecutionEnvironment,
    host: str = "localhost",
    port: int = 9999,
    checkpoint_dir: str = "checkpoints-socket-word-count",
    write_ahead_log: bool = True,
) -> None:
    """Build the job on ``env`` (``streamlet run`` calls this with defaults)."""
    env.set_parallelism(4)
    env.enable_checkpointing(500, CheckpointingMode.EXACTLY_ONCE)
    env.get_checkpoint_config().set_checkpoint_storage_dir(checkpoint_dir)
    # A refused connection fails the source at every attempt: give up after three.
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 500))
    word_counts(env, host, port, write_ahead_log).print()


async def run(
    host: str = "localhost",
    port: int = 9999,
    checkpoint_dir: str = "checkpoints-socket-word-count",
    runner: str = "local",
) -> JobExecutionResult:
    """Build and run the job until the server closes the connection. With
    ``runner="flink"`` it runs on Flink's local mini-cluster (``streamlet[flink]``), whose
    socket source has no write-ahead log: at-most-once after a failure there."""
    env = StreamExecutionEnvironment.get_execution_environment()
    build(env, host, port, checkpoint_dir, write_ahead_log=runner != "flink")
    return await env.execute(JOB_NAME, runner=runner)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--checkpoint-dir", default="checkpoints-socket-word-count")
    parser.add_argument(
        "--runner",
        choices=("local", "flink"),
        default="local",
        help="flink: run on Flink's local mini-cluster (at-most-once socket, no log)",
    )
    args = parser.parse_args()
    try:
        anyio.run(run, args.host, args.port, args.checkpoint_dir, args.runner)
    except JobExecutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"(is a server listening? start one with: nc -lk {args.port})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
