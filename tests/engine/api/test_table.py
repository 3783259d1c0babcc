"""The Table API bridge: connector tables and views in, DataStreams of Rows out (issue 16)."""

from __future__ import annotations

import pytest

from streamlet import (
    DataTypes,
    EnvironmentSettings,
    RowKind,
    RuntimeExecutionMode,
    Schema,
    StreamExecutionEnvironment,
    StreamTableEnvironment,
    TableDescriptor,
    Types,
)


def _t_env(parallelism: int = 1) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env, StreamTableEnvironment.create(stream_execution_environment=env)


def _datagen(**options: object) -> TableDescriptor:
    builder = TableDescriptor.for_connector("datagen").schema(
        Schema.new_builder()
        .column("id", DataTypes.BIGINT())
        .column("word", DataTypes.STRING())
        .build()
    )
    for key, value in {"rows-per-second": "100000", **options}.items():
        builder.option(key, value)
    return builder.build()


def test_a_datagen_table_reads_as_a_stream_of_rows_with_the_schemas_names() -> None:
    _, t_env = _t_env(parallelism=2)
    t_env.create_temporary_table(
        "source",
        _datagen(
            **{
                "fields.id.kind": "sequence",
                "fields.id.start": "1",
                "fields.id.end": "50",
                "fields.word.length": "3",
            }
        ),
    )
    assert t_env.list_tables() == ["source"]
    rows = t_env.to_data_stream(t_env.from_path("source")).execute_and_collect(limit=100)
    assert sorted(row["id"] for row in rows) == list(range(1, 51))
    assert all(len(row["word"]) == 3 for row in rows)
    assert rows[0].get_row_kind() is RowKind.INSERT


def test_scan_parallelism_sets_the_sources_parallelism() -> None:
    _, t_env = _t_env(parallelism=4)
    stream = t_env.to_data_stream(t_env.from_descriptor(_datagen(**{"scan.parallelism": "2"})))
    assert stream.get_parallelism() == 2
    with pytest.raises(ValueError, match=r"'scan\.parallelism' = '0'"):
        t_env.from_descriptor(_datagen(**{"scan.parallelism": "0"}))


def test_an_unknown_or_malformed_option_is_refused_when_the_table_is_created() -> None:
    _, t_env = _t_env()
    with pytest.raises(ValueError, match=r"unsupported options.*rows-per-secnd.*supported"):
        t_env.create_temporary_table("t", _datagen(**{"rows-per-secnd": "5"}))
    with pytest.raises(ValueError, match=r"fields\.nope\.kind"):
        t_env.create_temporary_table("t", _datagen(**{"fields.nope.kind": "random"}))
    with pytest.raises(ValueError, match="'number-of-rows' = 'ten' is not a int"):
        t_env.create_temporary_table("t", _datagen(**{"number-of-rows": "ten"}))
    with pytest.raises(ValueError, match="is not true or false"):
        t_env.create_temporary_table("t", _datagen(**{"fields.word.var-len": "yes"}))
    assert t_env.list_tables() == []  # nothing half-registered


def test_a_connector_or_type_streamlet_lacks_says_so_at_build_time() -> None:
    _, t_env = _t_env()
    kafka = TableDescriptor.for_connector("kafka").schema(
        Schema.new_builder().column("a", DataTypes.INT()).build()
    )
    with pytest.raises(NotImplementedError, match=r"'kafka' table connector.*from_data_stream"):
        t_env.create_temporary_table("k", kafka.build())
    dates = TableDescriptor.for_connector("datagen").schema(
        Schema.new_builder().column("d", DataTypes.DATE()).build()
    )
    with pytest.raises(NotImplementedError, match="column 'd': datagen generates"):
        t_env.create_temporary_table("d", dates.build())
    with pytest.raises(NotImplementedError, match="formats"):
        TableDescriptor.for_connector("datagen").format("csv")


def test_relational_operations_and_sql_name_themselves_and_the_way_out() -> None:
    _, t_env = _t_env()
    table = t_env.from_descriptor(_datagen())
    with pytest.raises(NotImplementedError, match=r"^Table\.select: .*no SQL planner.*to_data"):
        table.select("id")
    with pytest.raises(NotImplementedError, match=r"^StreamTableEnvironment\.execute_sql: "):
        t_env.execute_sql("SELECT 1")


def test_paths_are_unique_and_droppable() -> None:
    _, t_env = _t_env()
    t_env.create_temporary_table("t", _datagen())
    with pytest.raises(ValueError, match="already exists"):
        t_env.create_temporary_table("t", _datagen())
    t_env.create_temporary_table("t", _datagen(), ignore_if_exists=True)
    with pytest.raises(ValueError, match="no table or view 'u'; registered: \\['t'\\]"):
        t_env.from_path("u")
    assert t_env.drop_temporary_table("t")
    assert t_env.list_tables() == []


def test_a_typed_datastream_becomes_a_table_and_a_view() -> None:
    env, t_env = _t_env()
    named = env.from_collection(
        [("a", 1), ("b", 2)],
        type_info=Types.ROW_NAMED(["name", "n"], [Types.STRING(), Types.INT()]),
    )
    t_env.create_temporary_view("people", named)
    table = t_env.from_path("people")
    assert table.get_schema().field_names() == ["name", "n"]
    assert table.get_schema() == (
        Schema.new_builder().column("name", DataTypes.STRING()).column("n", DataTypes.INT()).build()
    )
    rows = t_env.to_data_stream(table).execute_and_collect(limit=2)
    assert sorted((r["name"], r["n"]) for r in rows) == [("a", 1), ("b", 2)]
    single = t_env.from_data_stream(env.from_collection([1, 2], type_info=Types.INT()))
    assert single.get_schema().field_names() == ["f0"]
    with pytest.raises(TypeError, match="needs to know the stream's columns"):
        t_env.from_data_stream(env.from_collection([1, 2]))


def test_batch_settings_and_table_config_reach_the_stream_environment() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_batch_mode())
    assert env._runtime_mode is RuntimeExecutionMode.BATCH
    t_env.get_config().set("parallelism.default", "3")
    assert env.get_parallelism() == 3
    assert t_env.get_config().get("parallelism.default") == "3"
