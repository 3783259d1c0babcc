"""``python -m streamlet.checkpoints``: list, show and validate checkpoint directories.

Exit status: 0 when everything inspected is valid (``list`` always exits 0 once it could
look), 1 when a checkpoint is incomplete or corrupt, 2 for a usage mistake (a missing
directory, nothing to inspect). ``--json`` prints one JSON document instead of tables.
The engine's ``streamlet checkpoints ...`` wraps :func:`main`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from .channel_state import CHANNEL_STATE_KEY, parse_channel_state
from .metadata import METADATA_FILE_NAME, SHARED_DIR_NAME, shared_location
from .state_file import read_state_file_from, read_state_header_from
from .validation import CheckpointReport, Validity, find_checkpoint_dirs, inspect_checkpoint_dir

__all__ = ["main"]


class _UsageError(Exception):
    """A mistake on the command line: reported in one line, exit status 2."""


def _build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Inspect streamlet checkpoint and savepoint directories.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_list = sub.add_parser(
        "list",
        help="list checkpoints and savepoints with their status",
        description="List checkpoints under DIR (a job directory <base>/<job>, a base "
        "directory holding job directories, or one checkpoint directory). Status checks "
        "_metadata and every state file's size and CRC-32, as a restore does, so a "
        "damaged checkpoint is never listed as valid.",
    )
    p_list.add_argument("dir", metavar="DIR", type=Path)
    p_show = sub.add_parser(
        "show",
        help="show one checkpoint's metadata and files",
        description="Show the metadata of one checkpoint (DIR/chk-N, a savepoint directory, "
        "or its _metadata file) and a table of its state files.",
    )
    p_show.add_argument("dir", metavar="CHECKPOINT", type=Path)
    p_validate = sub.add_parser(
        "validate",
        help="check checksums and completeness; exit 1 if anything is wrong",
        description="Check every checkpoint under DIR (or one checkpoint): _metadata "
        "checksum, every listed state file present, of the recorded size and CRC-32, with a "
        "readable header. Prints one line per problem naming the file and the reason.",
    )
    p_validate.add_argument("dir", metavar="DIR", type=Path)
    p_validate.add_argument(
        "--quick", action="store_true", help="check presence and sizes only, not contents"
    )
    for p in (p_list, p_show, p_validate):
        p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    prog: str = "python -m streamlet.checkpoints",
) -> int:
    """Run the command line; return the exit status.

    :param argv: arguments without the program name (``sys.argv[1:]`` if ``None``)
    :param out: where to print results (stdout if ``None``); errors go to stderr
    :param prog: the program name shown in usage lines (``streamlet checkpoints`` there)
    """
    out = out or sys.stdout
    parser = _build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argparse usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "list":
            return _cmd_list(args.dir, args.json, out)
        if args.command == "show":
            return _cmd_show(args.dir, args.json, out)
        return _cmd_validate(args.dir, args.json, not args.quick, out)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# --- commands ---


def _reports(path: Path, deep: bool) -> list[CheckpointReport]:
    try:
        dirs = find_checkpoint_dirs(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise _UsageError(str(exc)) from None
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror}") from None
    return [inspect_checkpoint_dir(d, deep=deep) for d in dirs]


def _cmd_list(path: Path, as_json: bool, out: TextIO) -> int:
    # Deep: "valid" must mean what a restore means by it (a flipped bit is not valid).
    reports = _reports(path, deep=True)
    if as_json:
        _print_json([r.to_dict() for r in reports], out)
        return 0
    if not reports:
        print(f"no checkpoints in {path}", file=out)
        return 0
    jobs = {Path(r.path).parent for r in reports}
    headers = ["JOB"] if len(jobs) > 1 else []
    headers += ["NAME", "KIND", "ID", "STATUS", "TIME", "SIZE", "FILES"]
    rows = []
    for r in reports:
        row = [Path(r.path).parent.name] if len(jobs) > 1 else []
        row += [
            r.name,
            r.kind,
            "-" if r.checkpoint_id is None else str(r.checkpoint_id),
            r.validity.value,
            _format_time(r.timestamp_ms),
            _format_size(r.size),
            str(r.file_count),
        ]
        rows.append(row)
    print(_table(headers, rows, right={"ID", "SIZE", "FILES"}), file=out)
    return 0


def _cmd_show(path: Path, as_json: bool, out: TextIO) -> int:
    if path.name == METADATA_FILE_NAME:
        path = path.parent
    if not path.is_dir():
        raise _UsageError(f"no such directory: {path}")
    report = inspect_checkpoint_dir(path, deep=True)
    files = _file_rows(path, report)
    if as_json:
        doc = report.to_dict()
        doc["metadata"] = None if report.metadata is None else report.metadata.to_dict()
        doc["files"] = files
        _print_json(doc, out)
        return 0 if report.validity is Validity.VALID else 1
    meta = report.metadata
    lines = [
        ("path", report.path),
        ("status", report.validity.value),
        ("kind", report.kind),
        ("checkpoint id", "-" if report.checkpoint_id is None else str(report.checkpoint_id)),
    ]
    if meta is not None:
        lines += [
            ("job", meta.job_name),
            ("triggered", _format_time(meta.trigger_timestamp_ms)),
            ("completed", _format_time(meta.completion_timestamp_ms)),
            ("max parallelism", "-" if meta.max_parallelism is None else str(meta.max_parallelism)),
            (
                "operators",
                ", ".join(f"{uid} (p={op.parallelism})" for uid, op in meta.operators.items())
                or "-",
            ),
            ("state size", f"{_format_size(meta.state_size)} ({meta.state_size} bytes)"),
        ]
        if meta.pieces:
            # Flink's UI: the full size above, and what this checkpoint itself wrote.
            size = meta.checkpointed_size
            lines.append(("checkpointed size", f"{_format_size(size)} ({size} bytes)"))
            lines.append(("shared pieces", str(len(meta.pieces))))
        if meta.extra:
            lines.append(("extra", orjson.dumps(meta.extra).decode()))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key + ':':<{width + 1}} {value}", file=out)
    print(file=out)
    headers = ["OPERATOR", "SUBTASK", "FILE", "SIZE", "CRC32", "KEY GROUPS", "IN-FLIGHT", "STATUS"]
    rows = [
        [
            f["operator_uid"],
            str(f["subtask_index"]),
            f["file"],
            str(f["size"]),
            f["checksum"],
            f["key_groups"],
            f["in_flight"],
            f["status"],
        ]
        for f in files
    ]
    print(
        _table(headers, rows, right={"SUBTASK", "SIZE"}) if rows else "(no state files)", file=out
    )
    for problem in report.problems:
        print(f"{problem.file}: {problem.reason}", file=out)
    return 0 if report.validity is Validity.VALID else 1


def _cmd_validate(path: Path, as_json: bool, deep: bool, out: TextIO) -> int:
    reports = _reports(path, deep=deep)
    if not reports:
        raise _UsageError(f"no checkpoints to validate in {path}")
    ok = all(r.validity is Validity.VALID for r in reports)
    if as_json:
        _print_json({"valid": ok, "checkpoints": [r.to_dict() for r in reports]}, out)
        return 0 if ok else 1
    for r in reports:
        if not r.problems:
            print(f"{r.path}: valid", file=out)
        for problem in r.problems:
            print(f"{r.path}: {r.validity.value}: {problem.file}: {problem.reason}", file=out)
    bad = sum(r.validity is not Validity.VALID for r in reports)
    print(f"{len(reports)} checked, {len(reports) - bad} valid, {bad} invalid", file=out)
    return 0 if ok else 1


# --- helpers ---


def _file_rows(path: Path, report: CheckpointReport) -> list[dict[str, Any]]:
    if report.metadata is None:
        return []
    problems = {p.file: p.reason for p in report.problems}
    rows = []
    shared = Path(shared_location(str(path)))
    for h in report.metadata.states:
        # The state file, then the shared pieces it references (base first); channel
        # state is in the state file only.
        files = [(path / h.file_name, h.file_name, h.size, h.checksum)]
        files += [
            (shared / p.file_name, f"{SHARED_DIR_NAME}/{p.file_name}", p.size, p.checksum)
            for p in h.pieces
        ]
        for n, (file_path, shown, size, checksum) in enumerate(files):
            key_groups = "-"
            in_flight = "-"
            try:
                with open(file_path, "rb") as f:
                    header = read_state_header_from(f, str(file_path))
                kgs = sorted(header.keyed)
                if kgs:
                    key_groups = f"{kgs[0]}-{kgs[-1]} ({len(kgs)})"
                if n == 0:
                    in_flight = _in_flight(file_path, h.size)
            except Exception:  # a damaged or missing file: its problem is reported already
                pass
            rows.append(
                {
                    "operator_uid": h.operator_uid,
                    "subtask_index": h.subtask_index,
                    "file": shown,
                    "size": size,
                    "checksum": f"{checksum:08x}",
                    "key_groups": key_groups,
                    "in_flight": in_flight,
                    "status": problems.get(str(file_path), "ok"),
                }
            )
    return rows


def _in_flight(file_path: Path, size: int) -> str:
    """The channel state a file holds (an unaligned checkpoint's in-flight records), as
    "<records> rec in <channels> ch", or "-"."""
    with open(file_path, "rb") as f:
        contents = read_state_file_from(f, size, str(file_path))
    raw = contents.extra.get(CHANNEL_STATE_KEY) if contents.extra else None
    if raw is None:
        return "-"
    entries = parse_channel_state(raw, str(file_path))
    records = sum(e.num_records for e in entries)
    return f"{records} rec in {len(entries)} ch"


def _table(headers: list[str], rows: list[list[str]], right: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if h in right else c.ljust(w)
            for c, w, h in zip(cells, widths, headers, strict=True)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def _format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _format_time(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return "-"
    moment = _dt.datetime.fromtimestamp(timestamp_ms / 1000).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _print_json(doc: Any, out: TextIO) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode(), file=out)
