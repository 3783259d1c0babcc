"""Golden tests: checked-in checkpoint files of the current formats decode to exact contents.

The fixtures under ``fixtures/chk/`` are a real final checkpoint of a tiny job, made once
by ``fixtures/generate.py`` (its docstring says how to regenerate them). If a change to
``_metadata``, the state file, the key-group frames or the table encoding makes these
fail, the change breaks reading checkpoints written before it: make that a decision (bump
the version, keep a reader for the old one), then regenerate and update the values here.
"""

from __future__ import annotations

from pathlib import Path

from streamlet.checkpoints.events import CheckpointKind
from streamlet.checkpoints.metadata import OperatorInfo, StateHandle, decode_metadata
from streamlet.checkpoints.state_file import FORMAT_VERSION, STATE_FILE_MAGIC, decode_state_file
from streamlet.state.key_groups import KeyGroupRange
from streamlet.state.operator_state import OPERATOR_MAGIC
from streamlet.state.serde import decode_table
from streamlet.state.snapshot import KEYED_MAGIC, read_key_group, unpack_frames

CHK = Path(__file__).resolve().parent / "fixtures" / "chk"
MAX_PARALLELISM = 4


def test_metadata_decodes_to_the_exact_checkpoint() -> None:
    meta = decode_metadata((CHK / "_metadata").read_bytes(), str(CHK / "_metadata"))
    assert meta.checkpoint_id == 1
    assert meta.kind is CheckpointKind.CHECKPOINT
    assert meta.job_name == "golden"
    assert meta.trigger_timestamp_ms == 1796168396562
    assert meta.completion_timestamp_ms == 1796168396571
    assert meta.max_parallelism == MAX_PARALLELISM
    assert dict(meta.operators) == {
        "sums": OperatorInfo(parallelism=1, max_parallelism=4),
        "words": OperatorInfo(parallelism=1, max_parallelism=4),
    }
    assert meta.states == (
        StateHandle("sums", 0, "op-sums-0.state", 619, 284081856, 1, 4),
        StateHandle("words", 0, "op-words-0.state", 298, 3747302121, 1, 4),
    )
    assert dict(meta.extra) == {}
    for handle in meta.states:
        assert (CHK / handle.file_name).stat().st_size == handle.size


def test_state_file_header_and_sections() -> None:
    data = (CHK / "op-sums-0.state").read_bytes()
    assert data[:8] == STATE_FILE_MAGIC == b"STLSTATE"
    assert int.from_bytes(data[8:10], "little") == FORMAT_VERSION == 1
    contents = decode_state_file(data, path="op-sums-0.state")
    assert (contents.operator_uid, contents.subtask_index) == ("sums", 0)
    assert (contents.parallelism, contents.max_parallelism) == (1, MAX_PARALLELISM)
    assert contents.operator is None
    assert contents.extra == {}
    assert sorted(contents.keyed) == [0, 2]
    # A key-group filter reads only the wanted sections.
    only_two = decode_state_file(data, KeyGroupRange(2, 3))
    assert sorted(only_two.keyed) == [2]
    assert only_two.keyed[2] == contents.keyed[2]


def test_key_group_frames_decode_to_the_exact_tables() -> None:
    keyed = decode_state_file((CHK / "op-sums-0.state").read_bytes()).keyed
    decoded: dict[int, dict[str, tuple[str, str, str, object]]] = {}
    for key_group, blob in sorted(keyed.items()):
        assert blob[:4] == KEYED_MAGIC == b"SLK1"
        decoded[key_group] = {
            name: (
                raw.kind,
                raw.codec,
                raw.mode,
                decode_table(raw.mode, raw.payload, None, element_wise=raw.kind == "list"),
            )
            for name, raw in read_key_group(blob, key_group, MAX_PARALLELISM)
        }
    assert decoded == {
        0: {
            "total": ("value", "json", "pp", {"apple": 4, "pear": 7}),
            "seen": ("list", "json", "pp", {"apple": [1, 3], "pear": [2, 5]}),
        },
        2: {
            "total": ("value", "json", "pp", {"fig": 4}),
            "seen": ("list", "json", "pp", {"fig": [4]}),
        },
    }
    raw = dict(read_key_group(keyed[0], 0, MAX_PARALLELISM))
    assert raw["total"].payload == b'[["apple","pear"],[4,7]]'


def test_operator_state_frame_holds_the_source_position() -> None:
    contents = decode_state_file((CHK / "op-words-0.state").read_bytes())
    assert contents.keyed == {}
    assert contents.operator is not None
    header, payloads = unpack_frames(OPERATOR_MAGIC, contents.operator)
    assert header == {
        "format": 1,
        "operator_uid": "words",
        "states": [["source-splits", "split", "json"]],
        "payload_sizes": [22],
    }
    assert payloads == [b'[[{"collection":0},5]]']  # the one split, read to its end
