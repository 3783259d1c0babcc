from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from streamlet.checkpoints import CheckpointKind, CheckpointMetadata, FileCheckpointStorage
from streamlet.checkpoints.cli import main
from tests.checkpoints.ckpt_testing import state_bytes


async def _write(
    storage: FileCheckpointStorage,
    checkpoint_id: int,
    *,
    complete=True,
    kind=CheckpointKind.CHECKPOINT,
    target=None,
) -> Path:
    location = storage.begin_checkpoint(checkpoint_id, kind, target)
    handles = []
    for subtask in (0, 1):
        data = state_bytes("counter", subtask, keyed={subtask * 4 + k: b"v" for k in range(4)})
        handles.append(await storage.write_state_file(checkpoint_id, "counter", subtask, data))
    if complete:
        meta = CheckpointMetadata.from_handles(
            checkpoint_id=checkpoint_id,
            kind=kind,
            job_name=storage.job_name,
            trigger_timestamp_ms=1_700_000_000_000,
            completion_timestamp_ms=1_700_000_000_500,
            handles=handles,
            max_parallelism=8,
        )
        await storage.write_metadata(checkpoint_id, meta)
    return Path(location)


@pytest.fixture
def job_dir(tmp_path):
    """<base>/job with chk-1 and chk-2 valid."""
    storage = FileCheckpointStorage(tmp_path / "base", "job")

    async def build():
        await _write(storage, 1)
        await _write(storage, 2)

    anyio.run(build)
    return tmp_path / "base" / "job"


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_job_dir(job_dir, capsys):
    code, out, err = run(capsys, "list", str(job_dir))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "ID", "STATUS", "TIME", "SIZE", "FILES"]
    assert lines[1].split()[:4] == ["chk-1", "checkpoint", "1", "valid"]
    assert lines[1].split()[-1] == "3"
    assert len(lines) == 3


def test_list_does_not_call_a_flipped_state_bit_valid(job_dir, capsys):
    state_file = next(p for p in sorted((job_dir / "chk-2").iterdir()) if p.suffix == ".state")
    flip_byte(state_file)
    code, out, _ = run(capsys, "list", str(job_dir))
    assert code == 0
    statuses = {line.split()[0]: line.split()[3] for line in out.splitlines()[1:]}
    assert statuses == {"chk-1": "valid", "chk-2": "corrupt"}


def test_list_base_dir_with_several_jobs(job_dir, capsys):
    other = FileCheckpointStorage(job_dir.parent, "other")
    anyio.run(lambda: _write(other, 1, complete=False))
    code, out, _ = run(capsys, "list", str(job_dir.parent))
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][0] == "JOB"
    assert ["job", "chk-2"] == rows[2][:2]
    assert rows[3][:5] == ["other", "chk-1", "checkpoint", "1", "incomplete"]


def test_list_json(job_dir, capsys):
    flip_byte(job_dir / "chk-2" / "_metadata")
    code, out, _ = run(capsys, "list", str(job_dir), "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert [(d["name"], d["status"]) for d in doc] == [("chk-1", "valid"), ("chk-2", "corrupt")]
    assert doc[0]["file_count"] == 3 and doc[0]["size"] > 0


def test_missing_dir_is_a_usage_error(tmp_path, capsys):
    code, out, err = run(capsys, "list", str(tmp_path / "nope"))
    assert code == 2 and out == ""
    assert err == f"error: no such directory: {tmp_path / 'nope'}\n"
    code, _, err = run(capsys, "show", str(tmp_path / "nope"))
    assert code == 2 and "Traceback" not in err


def test_show(job_dir, capsys):
    code, out, _ = run(capsys, "show", str(job_dir / "chk-1"))
    assert code == 0
    assert "status:          valid" in out
    assert "job:             job" in out
    assert "operators:       counter (p=2)" in out
    table = out.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == [
        "OPERATOR",
        "SUBTASK",
        "FILE",
        "SIZE",
        "CRC32",
        "KEY",
        "GROUPS",
        "IN-FLIGHT",
        "STATUS",
    ]
    assert table[1].split()[:3] == ["counter", "0", "op-counter-0.state"]
    assert table[1].split()[-4:] == ["0-3", "(4)", "-", "ok"]  # no channel state


def test_show_json_of_metadata_file(job_dir, capsys):
    code, out, _ = run(capsys, "show", str(job_dir / "chk-2" / "_metadata"), "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert doc["metadata"]["checkpoint_id"] == 2
    assert [f["status"] for f in doc["files"]] == ["ok", "ok"]


def test_show_corrupt(job_dir, capsys):
    flip_byte(job_dir / "chk-1" / "op-counter-1.state")
    code, out, _ = run(capsys, "show", str(job_dir / "chk-1"))
    assert code == 1
    assert "status:          corrupt" in out
    assert f"{job_dir / 'chk-1' / 'op-counter-1.state'}: checksum mismatch" in out


def test_validate_good(job_dir, capsys):
    code, out, _ = run(capsys, "validate", str(job_dir))
    assert code == 0
    assert out.splitlines() == [
        f"{job_dir / 'chk-1'}: valid",
        f"{job_dir / 'chk-2'}: valid",
        "2 checked, 2 valid, 0 invalid",
    ]


def test_validate_corrupt_state_file(job_dir, capsys):
    bad = job_dir / "chk-2" / "op-counter-0.state"
    flip_byte(bad)
    code, out, _ = run(capsys, "validate", str(job_dir))
    assert code == 1
    assert f"{job_dir / 'chk-2'}: corrupt: {bad}: checksum mismatch: expected crc32 " in out
    assert out.splitlines()[-1] == "2 checked, 1 valid, 1 invalid"
    # A quick check only compares sizes.
    assert run(capsys, "validate", "--quick", str(job_dir))[0] == 0


def test_validate_corrupt_metadata(job_dir, capsys):
    flip_byte(job_dir / "chk-1" / "_metadata")
    code, out, _ = run(capsys, "validate", str(job_dir / "chk-1"))
    assert code == 1
    assert f"corrupt: {job_dir / 'chk-1' / '_metadata'}: checksum mismatch" in out


def test_validate_partial_checkpoints(job_dir, capsys):
    (job_dir / "chk-1" / "_metadata").unlink()
    (job_dir / "chk-2" / "op-counter-1.state").unlink()
    code, out, _ = run(capsys, "validate", str(job_dir))
    assert code == 1
    assert (
        f"{job_dir / 'chk-1'}: incomplete: {job_dir / 'chk-1' / '_metadata'}: missing _metadata: "
        "the checkpoint did not complete"
    ) in out
    assert (
        f"{job_dir / 'chk-2'}: incomplete: {job_dir / 'chk-2' / 'op-counter-1.state'}: "
        "missing state file"
    ) in out


def test_validate_truncated_state_file(job_dir, capsys):
    path = job_dir / "chk-1" / "op-counter-0.state"
    path.write_bytes(path.read_bytes()[:-3])
    code, out, _ = run(capsys, "validate", str(job_dir / "chk-1"), "--json")
    assert code == 1
    doc = orjson.loads(out)
    assert doc["valid"] is False
    (problem,) = doc["checkpoints"][0]["problems"]
    assert problem["file"] == str(path) and problem["reason"].startswith("size mismatch")


def test_validate_empty_dir(tmp_path, capsys):
    code, _, err = run(capsys, "validate", str(tmp_path))
    assert code == 2 and err.startswith("error: no checkpoints to validate in")


def test_validate_savepoint_dir(tmp_path, capsys):
    storage = FileCheckpointStorage(tmp_path / "c", "job")
    location = anyio.run(
        lambda: _write(storage, 9, kind=CheckpointKind.SAVEPOINT, target=str(tmp_path / "sp"))
    )
    code, out, _ = run(capsys, "validate", str(location))
    assert code == 0 and out.startswith(f"{location}: valid")
    code, out, _ = run(capsys, "list", str(tmp_path / "sp"))
    assert out.splitlines()[1].split()[:4] == ["savepoint-job-9", "savepoint", "9", "valid"]


def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    assert "list" in capsys.readouterr().out
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_module_entry_point(job_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "streamlet.checkpoints", "validate", str(job_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 valid" in proc.stdout


@pytest.fixture
def incremental_job_dir(tmp_path):
    """<base>/job with chk-1 (a base) and chk-2 (changes on top of it)."""
    from tests.checkpoints.test_shared_pieces import checkpoint

    storage = FileCheckpointStorage(tmp_path / "base", "job")

    async def build():
        (h1,) = await checkpoint(storage, 1, ())
        await checkpoint(storage, 2, h1.pieces)

    anyio.run(build)
    return tmp_path / "base" / "job"


def test_show_incremental_reports_full_and_checkpointed_size_and_pieces(
    incremental_job_dir, capsys
):
    chk = incremental_job_dir / "chk-2"
    meta = orjson.loads((chk / "_metadata").read_bytes().rpartition(b"\ncrc32:")[0])
    pieces = meta["states"][0]["pieces"]
    code, out, _ = run(capsys, "show", str(chk))
    assert code == 0
    state = meta["states"][0]["size"]
    full = state + sum(p["size"] for p in pieces)
    own = state + pieces[1]["size"]
    assert f"({full} bytes)" in out.split("state size:")[1].splitlines()[0]
    assert f"({own} bytes)" in out.split("checkpointed size:")[1].splitlines()[0]
    for piece in pieces:
        row = next(line for line in out.splitlines() if piece["file"] in line)
        assert row.split()[2] == f"shared/{piece['file']}" and row.split()[-1] == "ok"


def test_validate_reports_a_missing_shared_piece(incremental_job_dir, capsys):
    shared = incremental_job_dir / "shared"
    base = min(shared.iterdir(), key=lambda p: int(p.name.split("-")[0]))
    base.unlink()
    code, out, _ = run(capsys, "validate", str(incremental_job_dir / "chk-2"))
    assert code == 1
    assert f"{base}: missing shared piece (written by checkpoint 1)" in out
