"""``make demo`` / ``streamlet demo``: the seed's socket word count, surviving a failure.

A local text server (started here) streams lines; the job reads them with
``socket_text_stream`` (with its write-ahead log, so the socket is replayable),
``flat_map``s them to upper-case words, keys by word and keeps a running count, at
parallelism 4 with EXACTLY_ONCE checkpoints every 500 ms, into an exactly-once file sink.
A failure is injected into one counting subtask at its second checkpoint, so the first one
has completed: the job restores it and goes on. At the end the demo prints the top words,
the checkpoint table, and checks every word's final count against the text the server sent,
that the restart restored, and that no line was committed twice.

With ``--host/--port`` it reads from your own server instead (``nc -lk 9999``); stop it
with Ctrl-C: it then cancels the job, prints the word counts so far and exits with status 130.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from streamlet.api.environment import StreamExecutionEnvironment
from streamlet.checkpoints.config import CheckpointingMode
from streamlet.job.client import JobClient
from streamlet.job.restart import RestartStrategies
from streamlet.operators.sinks.file import FileSink, read_committed
from streamlet.testing import FaultInjector, inject_faults

__all__ = ["main", "run_demo"]

_WORDS = (
    "stream state barrier checkpoint key group operator chain channel snapshot savepoint "
    "restore replay window source sink flink python async exactly once record batch"
).split()


def demo_text(lines: int, seed: int = 7) -> list[str]:
    """Deterministic lines of 3-9 words each (Zipf-ish, so there are clear top words)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(_WORDS))]
    return [" ".join(rng.choices(_WORDS, weights, k=rng.randint(3, 9))) for _ in range(lines)]


async def _serve_text(
    listener: anyio.abc.Listener[anyio.abc.SocketStream],
    lines: list[str],
    rate: float,
    started: anyio.Event,
) -> None:
    """Send ``lines`` to the first client at ``rate`` lines/s, then close the connection."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            started.set()
            chunk = max(1, int(rate / 50))
            for start in range(0, len(lines), chunk):
                block = lines[start : start + chunk]
                await stream.send(("\n".join(block) + "\n").encode())
                await anyio.sleep(chunk / rate)

    async with listener:
        await listener.serve(handle)


def _format_status(client: JobClient, live: _LiveCounts, started: float) -> str:
    stats = client.statistics()
    elapsed = max(time.monotonic() - started, 1e-9)
    completed = [s for s in client.checkpoint_stats() if s.status.value == "completed"]
    last = max(completed, key=lambda s: s.checkpoint_id, default=None)
    checkpoint = (
        f"chk {last.checkpoint_id} in {last.end_to_end_duration_ms:.0f} ms"
        if last is not None
        else "no checkpoint yet"
    )
    return (
        f"{stats['status']:<10} {stats['records_in'] / elapsed:>9,.0f} records/s | "
        f"last {checkpoint} | restarts {stats['restart_count']} | {live.words:,} words counted"
    )


async def _status_line(client: JobClient, live: _LiveCounts, started: float, out: Any) -> None:
    interactive = out.isatty()
    last_print = 0.0
    while not client.done:
        line = _format_status(client, live, started)
        if interactive:
            out.write("\r" + line.ljust(120))
            out.flush()
        elif time.monotonic() - last_print >= 2:
            out.write(line + "\n")
            last_print = time.monotonic()
        await anyio.sleep(0.25)
    if interactive:
        out.write("\n")


def _read_counts(output_dir: Path) -> dict[str, int]:
    """Each word's newest running count in the sink's committed output."""
    counts: dict[str, int] = {}
    for line in read_committed(output_dir) if output_dir.exists() else []:
        word, _, n = line.rpartition(",")
        counts[word] = max(counts.get(word, 0), int(n))
    return counts


def _top_words(counts: dict[str, int], out: Any) -> None:
    out.write("\ntop words:\n")
    for word, total in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]:
        out.write(f"  {word:<12} {total:>8,}\n")


class _LiveCounts:
    """The newest running count of each word, as the job emits them (a second sink).

    The exactly-once file sink shows only what completed checkpoints committed; this shows
    the counts up to now, for the status line and the report on Ctrl-C.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def update(self, pair: tuple[str, int]) -> None:
        word, count = pair
        # max: after a restart the replayed counts climb back to those already seen.
        if count > self.counts.get(word, 0):
            self.counts[word] = count

    @property
    def words(self) -> int:
        return sum(self.counts.values())


async def _stop_and_report(client: JobClient, live: _LiveCounts, started: float, out: Any) -> None:
    """Cancel a job that was interrupted (Ctrl-C) and print what it counted."""
    if not client.done:
        with anyio.move_on_after(10):
            await client.cancel()
    out.write(
        f"\nstopped after {time.monotonic() - started:.1f} s: counted {live.words:,} words "
        f"({len(live.counts)} distinct), {client.restart_count} restart(s); the output "
        f"committed up to the last checkpoint is in the job's output directory\n"
    )
    _top_words(live.counts, out)
    out.write("\ncheckpoints:\n" + _checkpoint_table(client) + "\n")
    if hasattr(out, "flush"):
        out.flush()


def _checkpoint_table(client: JobClient) -> str:
    rows = [("id", "status", "duration ms", "size B", "subtasks", "max align ms", "reason")]
    for s in sorted(client.checkpoint_stats(), key=lambda s: s.checkpoint_id):
        align = max((sub.alignment_duration_ms for sub in s.subtasks), default=0.0)
        duration = "-" if s.end_to_end_duration_ms is None else f"{s.end_to_end_duration_ms:.0f}"
        rows.append(
            (
                str(s.checkpoint_id),
                s.status.value,
                duration,
                str(s.state_size or 0),
                f"{s.num_acknowledged_subtasks}/{s.num_subtasks}",
                f"{align:.1f}",
                "" if s.failure_reason is None else s.failure_reason.name,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )


async def run_demo(
    *,
    lines: int = 20_000,
    rate: float = 4_000,
    parallelism: int = 4,
    workdir: Path = Path("checkpoints-demo"),
    host: str | None = None,
    port: int | None = None,
    inject_failure: bool = True,
    out: Any = None,
    web_ui: str | int | None = None,
    keep_ui_s: float = 0.0,
) -> bool:
    """Run the demo; return True when every count matched (or, reading an external server,
    when the job ended cleanly). It prints to ``out`` (default: the current stdout).

    :param web_ui: serve the dashboard at ``[HOST:]PORT`` while the job runs (a taken port
        falls back to a free one); the URL is printed
    :param keep_ui_s: keep serving it this long after the job ended (``inf``: until Ctrl-C)
    """
    out = sys.stdout if out is None else out
    if web_ui is None:
        return await _run_demo(
            lines, rate, parallelism, workdir, host, port, inject_failure, out, None
        )
    from streamlet.web import create_app, serve_web_ui
    from streamlet.web.app import JobRegistry

    jobs = JobRegistry()
    async with anyio.create_task_group() as ui:
        try:
            url = await ui.start(serve_web_ui, create_app(jobs), web_ui)
        except RuntimeError as exc:
            out.write(f"streamlet demo: {exc}; serving the web UI on a free port instead\n")
            url = await ui.start(serve_web_ui, create_app(jobs), "127.0.0.1:0")
        out.write(f"streamlet demo: dashboard at {url}\n")
        out.flush()
        ok = await _run_demo(
            lines, rate, parallelism, workdir, host, port, inject_failure, out, jobs
        )
        if keep_ui_s > 0:
            until = "until Ctrl-C" if keep_ui_s == float("inf") else f"for {keep_ui_s:.0f} s"
            out.write(f"\nthe dashboard stays up at {url} {until}\n")
            out.flush()
            with anyio.move_on_after(keep_ui_s):
                await anyio.sleep_forever()
        ui.cancel_scope.cancel()
    return ok


async def _run_demo(
    lines: int,
    rate: float,
    parallelism: int,
    workdir: Path,
    host: str | None,
    port: int | None,
    inject_failure: bool,
    out: Any,
    jobs: Any,
) -> bool:
    if workdir.exists():
        shutil.rmtree(workdir)
    output_dir = workdir / "out"
    text = demo_text(lines) if host is None else []
    expected = Counter(word.upper() for line in text for word in line.split())

    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    env.enable_checkpointing(500, CheckpointingMode.EXACTLY_ONCE)
    env.get_checkpoint_config().set_checkpoint_storage_dir(workdir / "checkpoints")
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 200))
    if inject_failure and host is None:
        # Fail one counting subtask at its second snapshot: the first checkpoint completed
        # (one at a time), so the restart must restore it, and the check below can tell.
        inject_faults(env, FaultInjector().fail_snapshot("word-count", 2, subtask=1))

    async with anyio.create_task_group() as tg:
        server_host, server_port = host or "127.0.0.1", port or 0
        if host is None:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            server_port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(_serve_text, listener, text, rate, anyio.Event())
        live = _LiveCounts()
        counts_stream = (
            env.socket_text_stream(server_host, server_port, write_ahead_log=True)
            .uid("socket")
            .flat_map(lambda line: [word.upper() for word in line.split()])
            .uid("split")
            .key_by(lambda word: word)
            .map(lambda word: (word, 1))
            .key_by(lambda pair: pair[0])
            .reduce(lambda a, b: (a[0], a[1] + b[1]))
            .uid("word-count")
        )
        counts_stream.sink_to(FileSink(output_dir, encoder=lambda p: f"{p[0]},{p[1]}")).uid(
            "counts"
        )
        counts_stream.add_sink(live.update).uid("live-counts")
        where = "a local text server" if host is None else f"{server_host}:{server_port}"
        out.write(
            f"streamlet demo: word count over {where}, parallelism {parallelism}, "
            f"EXACTLY_ONCE checkpoints every 500 ms\n"
        )
        started = time.monotonic()
        client = await env.execute_async("streamlet-demo")
        if jobs is not None:
            jobs.add(client)
        tg.start_soon(_status_line, client, live, started, out)
        try:
            result = await client.wait()
        except anyio.get_cancelled_exc_class():
            # Ctrl-C (or the caller cancelled us): report what was counted, then go on
            # cancelling. Shielded: the savepoint and the report must not be cut short.
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await _stop_and_report(client, live, started, out)
            raise
        except BaseException:
            tg.cancel_scope.cancel()
            raise
        tg.cancel_scope.cancel()

    committed = read_committed(output_dir)
    counts = _read_counts(output_dir)
    # Final counts come out right after a restart from scratch too; a line committed twice
    # ("WORD,7" before the failure and again after it) shows that the restart did not
    # restore the checkpoint the sink had committed.
    repeated = sorted(line for line, n in Counter(committed).items() if n > 1)
    out.write(f"\nfinished in {result.net_runtime_ms / 1000:.1f} s, ")
    out.write(f"{result.restart_count} restart(s), {result.checkpoints_completed} checkpoints")
    restored = result.restored_from
    out.write(f", last restored from {restored}\n" if restored else "\n")
    _top_words(counts, out)
    out.write("\ncheckpoints:\n" + _checkpoint_table(client) + "\n")
    if host is not None:
        return True
    wrong = {w: (counts.get(w, 0), n) for w, n in expected.items() if counts.get(w, 0) != n}
    extra = set(counts) - set(expected)
    if wrong or extra:
        out.write(f"\nFAILED: {len(wrong)} word counts differ, e.g. {list(wrong.items())[:3]}\n")
        return False
    if inject_failure and result.restart_count and result.restored_from is None:
        out.write("\nFAILED: the job restarted without restoring a checkpoint\n")
        return False
    if repeated:
        out.write(
            f"\nFAILED: {len(repeated)} lines committed twice (not restored), e.g. {repeated[:3]}\n"
        )
        return False
    out.write(
        f"\ncheck: all {len(expected)} word counts equal the text sent "
        f"({sum(expected.values()):,} words, exactly once, across "
        f"{result.restart_count} failure(s)) - OK\n"
    )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="streamlet demo", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--lines", type=int, default=20_000, help="lines the local server sends")
    parser.add_argument("--rate", type=float, default=4_000, help="lines per second it sends")
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("checkpoints-demo"))
    parser.add_argument(
        "--host",
        help="read from this server instead (e.g. nc -lk 9999); Ctrl-C stops the job and "
        "prints the word counts so far",
    )
    parser.add_argument("--port", type=int, help="port of --host")
    parser.add_argument("--no-failure", action="store_true", help="do not inject a failure")
    parser.add_argument(
        "--web-ui",
        metavar="[HOST:]PORT",
        default="8081",
        help="serve the dashboard here while the demo runs (default 8081 on 127.0.0.1)",
    )
    parser.add_argument("--no-web-ui", action="store_true", help="do not serve the dashboard")
    parser.add_argument(
        "--keep-ui",
        action="store_true",
        help="keep serving the dashboard after the demo ended, until Ctrl-C (else 5 s)",
    )
    args = parser.parse_args(argv)
    web_ui = None if args.no_web_ui else args.web_ui
    if web_ui is not None:
        try:
            from streamlet.web import parse_address
        except ImportError as exc:
            print(f"streamlet demo: no dashboard: {exc}", file=sys.stderr)
            web_ui = None
        else:
            try:
                parse_address(web_ui)
            except ValueError as exc:
                parser.error(f"--web-ui: {exc}")
    if (args.host is None) != (args.port is None):
        parser.error("--host and --port go together")
    try:
        ok = anyio.run(
            lambda: run_demo(
                lines=args.lines,
                rate=args.rate,
                parallelism=args.parallelism,
                workdir=args.workdir,
                host=args.host,
                port=args.port,
                inject_failure=not args.no_failure,
                web_ui=web_ui,
                keep_ui_s=float("inf") if args.keep_ui else 5.0,
            )
        )
    except KeyboardInterrupt:
        # run_demo printed what it counted before the interrupt got here.
        print("streamlet demo: interrupted (Ctrl-C)", flush=True)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
