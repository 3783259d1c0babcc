from __future__ import annotations

from pathlib import Path

import pytest

from streamlet.checkpoints import (
    CheckpointConfig,
    CheckpointingMode,
    FsStateBackend,
    JobManagerCheckpointStorage,
    MemoryCheckpointStorage,
)
from streamlet.checkpoints.config import parse_storage_uri


def test_defaults_match_flink():
    cfg = CheckpointConfig()
    assert cfg.get_checkpoint_interval() == -1
    assert not cfg.is_checkpointing_enabled()
    assert cfg.get_checkpointing_mode() is CheckpointingMode.EXACTLY_ONCE
    assert cfg.get_checkpoint_timeout() == 600_000
    assert cfg.get_max_concurrent_checkpoints() == 1
    assert cfg.get_min_pause_between_checkpoints() == 0
    assert cfg.get_tolerable_checkpoint_failure_number() == 0
    assert cfg.get_max_retained_checkpoints() == 1
    assert cfg.get_checkpoint_storage() == JobManagerCheckpointStorage()
    assert cfg.get_checkpoint_storage_dir() is None


def test_setters_chain_and_enable():
    cfg = (
        CheckpointConfig()
        .set_checkpoint_interval(10_000)
        .set_checkpointing_mode(CheckpointingMode.AT_LEAST_ONCE)
        .set_checkpoint_timeout(60_000)
        .set_max_concurrent_checkpoints(2)
        .set_tolerable_checkpoint_failure_number(3)
        .set_max_retained_checkpoints(5)
    )
    assert cfg.is_checkpointing_enabled()
    assert (cfg.interval_ms, cfg.mode, cfg.timeout_ms) == (
        10_000,
        CheckpointingMode.AT_LEAST_ONCE,
        60_000,
    )
    assert (cfg.max_concurrent_checkpoints, cfg.tolerable_failed_checkpoints) == (2, 3)
    assert cfg.max_retained_checkpoints == 5
    cfg.set_checkpoint_interval(None)
    assert not cfg.is_checkpointing_enabled()


@pytest.mark.parametrize(
    ("setter", "value", "message"),
    [
        ("set_checkpoint_interval", 5, r"^checkpoint interval must be >= 10 ms, got 5$"),
        ("set_checkpoint_timeout", 0, r"^checkpoint timeout must be >= 10 ms, got 0$"),
        ("set_max_concurrent_checkpoints", 0, r"^max concurrent checkpoints must be >= 1, got 0$"),
        (
            "set_min_pause_between_checkpoints",
            -1,
            r"^min pause between checkpoints must be >= 0 ms, got -1$",
        ),
        (
            "set_tolerable_checkpoint_failure_number",
            -1,
            r"^tolerable checkpoint failure number must be >= 0, got -1$",
        ),
        ("set_max_retained_checkpoints", 0, r"^max retained checkpoints must be >= 1, got 0$"),
    ],
)
def test_invalid_values_name_option_and_value(setter, value, message):
    cfg = CheckpointConfig()
    with pytest.raises(ValueError, match=message):
        getattr(cfg, setter)(value)


def test_constructor_validates_too():
    with pytest.raises(ValueError, match=r"^checkpoint timeout must be >= 10 ms, got 0$"):
        CheckpointConfig(timeout_ms=0)


def test_wrong_types_are_type_errors():
    expected = r"must be an int of milliseconds, a Duration, Time or timedelta, got "
    with pytest.raises(TypeError, match=rf"^checkpoint interval {expected}'5'$"):
        CheckpointConfig().set_checkpoint_interval("5")
    with pytest.raises(TypeError, match=rf"^checkpoint timeout {expected}True$"):
        CheckpointConfig().set_checkpoint_timeout(True)
    with pytest.raises(TypeError, match=r"^checkpointing mode must be a CheckpointingMode"):
        CheckpointConfig().set_checkpointing_mode("EXACTLY_ONCE")  # type: ignore[arg-type]


def test_min_pause_with_concurrency_refused_by_the_setter_creating_it():
    cfg = CheckpointConfig().set_min_pause_between_checkpoints(500)
    with pytest.raises(
        ValueError,
        match=r"^max concurrent checkpoints must be 1 when a min pause between checkpoints "
        r"is set \(500 ms\), got 2$",
    ):
        cfg.set_max_concurrent_checkpoints(2)
    assert cfg.max_concurrent_checkpoints == 1

    cfg = CheckpointConfig().set_max_concurrent_checkpoints(3)
    with pytest.raises(
        ValueError,
        match=r"^min pause between checkpoints must be 0 when max concurrent checkpoints "
        r"is 3, got 500$",
    ):
        cfg.set_min_pause_between_checkpoints(500)
    assert cfg.min_pause_between_checkpoints_ms == 0


def test_validate_catches_direct_assignment():
    cfg = CheckpointConfig()
    cfg.timeout_ms = 1
    with pytest.raises(ValueError, match=r"^checkpoint timeout must be >= 10 ms, got 1$"):
        cfg.validate()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("file:///tmp/x", Path("/tmp/x")),
        ("file:/tmp/x", Path("/tmp/x")),
        ("file://localhost/tmp/x", Path("/tmp/x")),
        ("file:///tmp/with%20space", Path("/tmp/with space")),
        ("/tmp/plain", Path("/tmp/plain")),
        (Path("/tmp/pathobj"), Path("/tmp/pathobj")),
    ],
)
def test_storage_dir_forms(given, expected):
    assert CheckpointConfig().set_checkpoint_storage_dir(given).get_checkpoint_storage_dir() == (
        expected
    )


def test_relative_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_storage_uri("rel/dir") == tmp_path / "rel" / "dir"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "s3://bucket/x",
            r"^unsupported checkpoint storage scheme 's3' in 's3://bucket/x': only file:// URIs "
            r"and plain paths are supported$",
        ),
        (
            "file://otherhost/x",
            r"^checkpoint storage URI must name a local path, got host 'otherhost' in "
            r"'file://otherhost/x'$",
        ),
        ("", r"^checkpoint storage directory must not be empty, got ''$"),
    ],
)
def test_bad_storage_uris(uri, message):
    with pytest.raises(ValueError, match=message):
        CheckpointConfig().set_checkpoint_storage_dir(uri)


def test_fs_state_backend_and_other_storage_choices():
    backend = FsStateBackend("file:///tmp/x")
    assert backend.get_checkpoint_path() == "file:///tmp/x"
    cfg = CheckpointConfig().set_checkpoint_storage(backend)
    assert cfg.get_checkpoint_storage_dir() == Path("/tmp/x")
    cfg.set_checkpoint_storage("file:///tmp/y")
    assert cfg.get_checkpoint_storage_dir() == Path("/tmp/y")
    memory = MemoryCheckpointStorage()
    assert cfg.set_checkpoint_storage(memory).get_checkpoint_storage() is memory
    assert cfg.get_checkpoint_storage_dir() is None
    cfg.set_checkpoint_storage(JobManagerCheckpointStorage())
    assert cfg.get_checkpoint_storage() == JobManagerCheckpointStorage()
    with pytest.raises(TypeError, match=r"^checkpoint storage must be a path"):
        cfg.set_checkpoint_storage(42)
    with pytest.raises(ValueError, match=r"^unsupported checkpoint storage scheme 'hdfs'"):
        FsStateBackend("hdfs://nn/x")


def test_incremental_checkpointing_is_off_by_default_and_takes_a_bool():
    config = CheckpointConfig()
    assert not config.is_incremental_checkpointing_enabled()
    assert config.enable_incremental_checkpointing() is config
    assert config.is_incremental_checkpointing_enabled()
    config.enable_incremental_checkpointing(False)
    assert not config.is_incremental_checkpointing_enabled()
    with pytest.raises(TypeError, match="takes a bool, got 'yes'"):
        config.enable_incremental_checkpointing("yes")  # type: ignore[arg-type]
    config.incremental = 1  # type: ignore[assignment]
    with pytest.raises(TypeError, match="takes a bool"):
        config.validate()
