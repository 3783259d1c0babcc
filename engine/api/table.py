"""The part of PyFlink's Table API that bridges tables and DataStreams.

streamlet has no SQL planner. What it has of the Table API is what a DataStream program
uses to read a connector table and go on with the DataStream API, as PyFlink's
``streaming_word_count.py`` does::

    t_env = StreamTableEnvironment.create(stream_execution_environment=env)
    t_env.create_temporary_table("source", TableDescriptor.for_connector("datagen")
        .schema(Schema.new_builder().column("word_id", DataTypes.INT()).build())
        .option("rows-per-second", "5").build())
    ds = t_env.to_data_stream(t_env.from_path("source"))   # a stream of Rows

- tables: ``create_temporary_table`` / ``create_table`` (from a TableDescriptor),
  ``from_path``, ``from_descriptor``, ``from_data_stream``, ``create_temporary_view``,
  ``to_data_stream``, ``to_append_stream``, ``to_changelog_stream`` (every table here is
  insert-only), the ``list_*`` and ``drop_temporary_*`` catalog calls;
- connectors: ``datagen`` (every option of Flink's, but timestamps' ``max-past``);
- everything relational (``select``, ``where``, ``group_by``, joins, ``execute_sql``,
  ``sql_query``, UDFs) raises NotImplementedError naming it, at build time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamlet.api.configuration import Configuration
from streamlet.api.execution_config import RuntimeExecutionMode
from streamlet.api.table_types import DataType, DataTypes, Schema
from streamlet.operators.sources.datagen import GENERATED_TYPES, DataGenField, DataGenSource
from streamlet.operators.typeinfo import RowTypeInfo, TupleTypeInfo, TypeInformation
from streamlet.operators.watermarks import WatermarkStrategy
from streamlet.state.row import Row, RowKind

if TYPE_CHECKING:
    from streamlet.api.datastream import DataStream
    from streamlet.api.environment import StreamExecutionEnvironment

__all__ = [
    "EnvironmentSettings",
    "StreamTableEnvironment",
    "Table",
    "TableConfig",
    "TableDescriptor",
]

_README = "the README's table 'How it maps to Flink' lists what the Table API has here"


def _needs_planner(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what}: streamlet has no SQL planner, so the Table API's relational operations "
        f"and SQL are not supported; convert with t_env.to_data_stream(table) and use the "
        f"DataStream API ({_README})"
    )


class EnvironmentSettings:
    """Streaming or batch mode for a table environment (PyFlink's EnvironmentSettings)."""

    def __init__(self, streaming: bool = True) -> None:
        self._streaming = streaming

    @staticmethod
    def in_streaming_mode() -> EnvironmentSettings:
        return EnvironmentSettings(True)

    @staticmethod
    def in_batch_mode() -> EnvironmentSettings:
        return EnvironmentSettings(False)

    @staticmethod
    def new_instance() -> EnvironmentSettings.Builder:
        return EnvironmentSettings.Builder()

    def is_streaming_mode(self) -> bool:
        return self._streaming

    class Builder:
        def __init__(self) -> None:
            self._streaming = True

        def in_streaming_mode(self) -> EnvironmentSettings.Builder:
            self._streaming = True
            return self

        def in_batch_mode(self) -> EnvironmentSettings.Builder:
            self._streaming = False
            return self

        def build(self) -> EnvironmentSettings:
            return EnvironmentSettings(self._streaming)


class TableDescriptor:
    """A connector table: connector name, schema and options (PyFlink's TableDescriptor).
    Options are kept as strings, as Flink keeps them."""

    def __init__(
        self,
        connector: str,
        schema: Schema | None,
        options: dict[str, str],
        partition_keys: list[str],
        comment: str | None,
    ) -> None:
        self._connector = connector
        self._schema = schema
        self._options = options
        self._partition_keys = partition_keys
        self._comment = comment

    @staticmethod
    def for_connector(connector: str) -> TableDescriptor.Builder:
        if not isinstance(connector, str) or not connector:
            raise ValueError(f"for_connector() needs a connector name, got {connector!r}")
        return TableDescriptor.Builder(connector)

    def get_schema(self) -> Schema | None:
        return self._schema

    def get_options(self) -> dict[str, str]:
        return {"connector": self._connector, **self._options}

    def get_partition_keys(self) -> list[str]:
        return list(self._partition_keys)

    def get_comment(self) -> str | None:
        return self._comment

    def __str__(self) -> str:
        options = ",\n".join(f"  '{k}' = '{v}'" for k, v in self.get_options().items())
        return f"{self._schema or '()'}\nWITH (\n{options}\n)"

    class Builder:
        def __init__(self, connector: str) -> None:
            self._connector = connector
            self._schema: Schema | None = None
            self._options: dict[str, str] = {}
            self._partition_keys: list[str] = []
            self._comment: str | None = None

        def schema(self, schema: Schema) -> TableDescriptor.Builder:
            if not isinstance(schema, Schema):
                raise TypeError(
                    f"schema() needs a Schema (Schema.new_builder()...), got {schema!r}"
                )
            self._schema = schema
            return self

        def option(self, key: str, value: Any) -> TableDescriptor.Builder:
            if not isinstance(key, str) or not key:
                raise ValueError(f"option() needs a str key, got {key!r}")
            # Flink stores every option as a string; bools as Java writes them.
            self._options[key] = str(value).lower() if isinstance(value, bool) else str(value)
            return self

        def format(self, format: Any, format_prefix: str | None = None) -> TableDescriptor.Builder:
            raise NotImplementedError(
                f"TableDescriptor.format(): formats belong to connectors streamlet does not "
                f"have (its one table connector, 'datagen', takes none) ({_README})"
            )

        def partitioned_by(self, *partition_keys: str) -> TableDescriptor.Builder:
            self._partition_keys = list(partition_keys)
            return self

        def comment(self, comment: str) -> TableDescriptor.Builder:
            self._comment = comment
            return self

        def build(self) -> TableDescriptor:
            return TableDescriptor(
                self._connector,
                self._schema,
                dict(self._options),
                list(self._partition_keys),
                self._comment,
            )


# --- the datagen connector: options -> DataGenSource ---

_DATAGEN_TABLE_OPTIONS = ("rows-per-second", "number-of-rows", "scan.parallelism")
_DATAGEN_FIELD_OPTIONS = ("kind", "min", "max", "length", "var-len", "start", "end", "null-rate")


def _datagen_source(path: str, descriptor: TableDescriptor) -> DataGenSource:
    """The source for a ``datagen`` table, every option checked (Flink's names)."""
    schema = descriptor.get_schema()
    if schema is None or not schema.columns:
        raise ValueError(f"table {path!r}: the datagen connector needs a schema with columns")
    options = dict(descriptor.get_options())
    options.pop("connector")
    columns = {name: data_type for name, data_type in schema.columns}
    unknown = []
    for key in options:
        if key in _DATAGEN_TABLE_OPTIONS:
            continue
        parts = key.split(".")
        if (
            len(parts) == 3
            and parts[0] == "fields"
            and parts[1] in columns
            and parts[2] in _DATAGEN_FIELD_OPTIONS
        ):
            continue
        unknown.append(key)
    if unknown:
        supported = [*_DATAGEN_TABLE_OPTIONS, *(f"fields.#.{o}" for o in _DATAGEN_FIELD_OPTIONS)]
        raise ValueError(
            f"table {path!r}: unsupported options for the 'datagen' connector: "
            f"{', '.join(sorted(unknown))} (a field option names a column of the schema: "
            f"{', '.join(columns)}); supported options: {', '.join(supported)}"
        )

    def number(key: str, parse: Callable[[str], Any]) -> Any:
        text = options.get(key)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError:
            raise ValueError(
                f"table {path!r}: option '{key}' = {text!r} is not a {parse.__name__}"
            ) from None

    def boolean(key: str) -> bool:
        text = options.get(key, "false").lower()
        if text not in ("true", "false"):
            raise ValueError(f"table {path!r}: option '{key}' = {text!r} is not true or false")
        return text == "true"

    fields = []
    for name, data_type in schema.columns:
        prefix = f"fields.{name}."
        if data_type.type_name not in GENERATED_TYPES:
            raise NotImplementedError(
                f"table {path!r}, column {name!r}: datagen generates "
                f"{', '.join(GENERATED_TYPES)} here, not {data_type}"
            )
        integer = data_type.type_name in ("TINYINT", "SMALLINT", "INT", "BIGINT")
        bound = int if integer else float
        length = number(prefix + "length", int)
        fields.append(
            DataGenField(
                name,
                data_type.type_name,
                kind=options.get(prefix + "kind", "random"),
                min=number(prefix + "min", bound),
                max=number(prefix + "max", bound),
                length=100 if length is None else length,
                var_len=boolean(prefix + "var-len"),
                start=number(prefix + "start", int),
                end=number(prefix + "end", int),
                null_rate=number(prefix + "null-rate", float) or 0.0,
            )
        )
    rate = number("rows-per-second", float)
    return DataGenSource(
        fields,
        rows_per_second=10_000 if rate is None else rate,
        number_of_rows=number("number-of-rows", int),
    )


_CONNECTORS: dict[str, Callable[[str, TableDescriptor], DataGenSource]] = {
    "datagen": _datagen_source,
}


def _connector_source(path: str, descriptor: TableDescriptor) -> DataGenSource:
    connector = descriptor.get_options()["connector"]
    make = _CONNECTORS.get(connector)
    if make is None:
        raise NotImplementedError(
            f"table {path!r}: the {connector!r} table connector is not supported by streamlet "
            f"(it has 'datagen'); read the data with a DataStream source (from_source, "
            f"FileSource, socket_text_stream) and t_env.from_data_stream() ({_README})"
        )
    return make(path, descriptor)


def _scan_parallelism(path: str, descriptor: TableDescriptor) -> int | None:
    """Flink's ``scan.parallelism`` option: the source's parallelism, or None for the job's."""
    text = descriptor.get_options().get("scan.parallelism")
    if text is None:
        return None
    try:
        parallelism = int(text)
    except ValueError:
        parallelism = 0
    if parallelism < 1:
        raise ValueError(
            f"table {path!r}: option 'scan.parallelism' = {text!r} is not a positive integer"
        )
    return parallelism


class Table:
    """A table: its schema and how to make its rows as a DataStream. Convert it with
    ``t_env.to_data_stream(table)``; relational operations need the SQL planner streamlet
    lacks and raise NotImplementedError."""

    def __init__(
        self,
        t_env: StreamTableEnvironment,
        schema: Schema,
        make_stream: Callable[[], DataStream],
        description: str,
    ) -> None:
        self._t_env = t_env
        self._schema = schema
        self._make_stream = make_stream
        self._description = description

    def get_schema(self) -> Schema:
        return self._schema

    def get_resolved_schema(self) -> Schema:
        return self._schema

    def print_schema(self) -> None:
        print(self._schema)

    def __str__(self) -> str:
        return self._description

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise _needs_planner(f"Table.{name}")


class TableConfig:
    """Configuration of a table environment; ``set(key, value)`` applies Flink's keys to the
    stream environment underneath (``parallelism.default``, ``execution.checkpointing.*``,
    ...: the README's configuration reference)."""

    def __init__(self, env: StreamExecutionEnvironment) -> None:
        self._env = env
        self._configuration = Configuration()

    def set(self, key: str, value: str) -> TableConfig:
        self._configuration.set_string(key, value)
        self._env.configure(Configuration().set_string(key, value))
        return self

    def get(self, key: str, default_value: Any = None) -> Any:
        return self._configuration.get(key, default_value)

    def get_configuration(self) -> Configuration:
        return Configuration(self._configuration)


class StreamTableEnvironment:
    """Tables over a StreamExecutionEnvironment (PyFlink's StreamTableEnvironment); see the
    module docstring for what it has."""

    def __init__(self, env: StreamExecutionEnvironment) -> None:
        self._env = env
        self._tables: dict[str, TableDescriptor] = {}
        self._views: dict[str, Table] = {}
        self._config = TableConfig(env)

    @staticmethod
    def create(
        stream_execution_environment: StreamExecutionEnvironment | None = None,
        environment_settings: EnvironmentSettings | None = None,
    ) -> StreamTableEnvironment:
        """A table environment over ``stream_execution_environment`` (a new one if None);
        batch settings switch it to ``RuntimeExecutionMode.BATCH``."""
        from streamlet.api.environment import StreamExecutionEnvironment

        env = stream_execution_environment
        if env is None:
            env = StreamExecutionEnvironment.get_execution_environment()
        elif not isinstance(env, StreamExecutionEnvironment):
            raise TypeError(
                f"StreamTableEnvironment.create() needs a StreamExecutionEnvironment, got {env!r}"
            )
        if environment_settings is not None:
            if not isinstance(environment_settings, EnvironmentSettings):
                raise TypeError(
                    f"environment_settings must be EnvironmentSettings, got "
                    f"{environment_settings!r}"
                )
            if not environment_settings.is_streaming_mode():
                env.set_runtime_mode(RuntimeExecutionMode.BATCH)
        return StreamTableEnvironment(env)

    def get_config(self) -> TableConfig:
        return self._config

    # --- the catalog: connector tables and views ---

    def create_temporary_table(
        self, path: str, descriptor: TableDescriptor, ignore_if_exists: bool = False
    ) -> None:
        """Register a connector table under ``path``; its options are checked now.

        :raises ValueError: if ``path`` is taken (unless ``ignore_if_exists``) or an option
            is wrong
        :raises NotImplementedError: for a connector streamlet does not have
        """
        if not isinstance(descriptor, TableDescriptor):
            raise TypeError(f"create_temporary_table() needs a TableDescriptor, got {descriptor!r}")
        if self._taken(path):
            if ignore_if_exists:
                return
            raise ValueError(f"a table or view {path!r} already exists; pick another path")
        _connector_source(path, descriptor)  # check the connector and its options now
        self._tables[path] = descriptor

    def create_table(self, path: str, descriptor: TableDescriptor) -> None:
        """As :meth:`create_temporary_table` (there is one in-memory catalog here)."""
        self.create_temporary_table(path, descriptor)

    def create_temporary_view(
        self, view_path: str, table_or_data_stream: Table | DataStream, *fields: Any
    ) -> None:
        """Register a table, or a DataStream as a table, under ``view_path``."""
        table = (
            table_or_data_stream
            if isinstance(table_or_data_stream, Table)
            else self.from_data_stream(table_or_data_stream, *fields)
        )
        if self._taken(view_path):
            raise ValueError(f"a table or view {view_path!r} already exists; pick another path")
        self._views[view_path] = table

    def _taken(self, path: str) -> bool:
        if not isinstance(path, str) or not path:
            raise ValueError(f"a table path is a non-empty str, got {path!r}")
        return path in self._tables or path in self._views

    def list_tables(self) -> list[str]:
        return sorted([*self._tables, *self._views])

    def list_temporary_tables(self) -> list[str]:
        return sorted(self._tables)

    def list_temporary_views(self) -> list[str]:
        return sorted(self._views)

    def drop_temporary_table(self, table_path: str) -> bool:
        return self._tables.pop(table_path, None) is not None

    def drop_temporary_view(self, view_path: str) -> bool:
        return self._views.pop(view_path, None) is not None

    def from_path(self, path: str) -> Table:
        """The table or view registered under ``path``.

        :raises ValueError: naming the registered paths, if there is none
        """
        view = self._views.get(path)
        if view is not None:
            return view
        descriptor = self._tables.get(path)
        if descriptor is None:
            raise ValueError(
                f"no table or view {path!r}; registered: {self.list_tables() or 'none'} "
                f"(create_temporary_table / create_temporary_view register one)"
            )
        return self._connector_table(path, descriptor)

    def from_descriptor(self, descriptor: TableDescriptor) -> Table:
        """A table straight from a descriptor, without registering it."""
        if not isinstance(descriptor, TableDescriptor):
            raise TypeError(f"from_descriptor() needs a TableDescriptor, got {descriptor!r}")
        return self._connector_table("(anonymous)", descriptor)

    def _connector_table(self, path: str, descriptor: TableDescriptor) -> Table:
        source = _connector_source(path, descriptor)
        schema = descriptor.get_schema()
        assert schema is not None  # the connector checked it
        type_info = schema.to_row_data_type().to_type_info()

        parallelism = _scan_parallelism(path, descriptor)

        def make_stream() -> DataStream:
            stream = self._env.from_source(
                source, WatermarkStrategy.no_watermarks(), f"{path}[datagen]", type_info
            )
            return stream if parallelism is None else stream.set_parallelism(parallelism)

        return Table(self, schema, make_stream, f"Table {path!r} {schema}")

    def from_data_stream(self, data_stream: DataStream, *fields_or_schema: Any) -> Table:
        """A table of ``data_stream``'s records. Its columns come from the stream's type:
        a ROW's names, ``f0, f1, ...`` for a TUPLE, ``f0`` for a single value; or from a
        Schema given here (for a stream of Rows or tuples of that many fields)."""
        from streamlet.api.datastream import DataStream

        if not isinstance(data_stream, DataStream):
            raise TypeError(f"from_data_stream() needs a DataStream, got {data_stream!r}")
        schema = _stream_schema(data_stream, fields_or_schema)
        names = schema.field_names()
        single = _is_single_column(data_stream, schema)
        type_info = schema.to_row_data_type().to_type_info()

        def to_row(value: Any) -> Row:
            values = [value] if single else list(value)
            return Row._make(names, values, RowKind.INSERT)

        def make_stream() -> DataStream:
            return data_stream.map(to_row, output_type=type_info)

        return Table(self, schema, make_stream, f"Table from a DataStream {schema}")

    # --- back to DataStreams ---

    def to_data_stream(self, table: Table) -> DataStream:
        """The table's rows as a DataStream of :class:`~streamlet.Row` (insert rows, typed as
        the table's schema, so ``print()`` shows ``+I[...]`` as Flink does)."""
        return self._table(table, "to_data_stream")._make_stream()

    def to_append_stream(self, table: Table, type_info: TypeInformation) -> DataStream:
        """As :meth:`to_data_stream`, every table here being insert-only."""
        return self._table(table, "to_append_stream")._make_stream()

    def to_changelog_stream(self, table: Table, *args: Any) -> DataStream:
        """As :meth:`to_data_stream`: a table here has only insert rows (``+I``)."""
        return self._table(table, "to_changelog_stream")._make_stream()

    def to_retract_stream(self, table: Table, type_info: TypeInformation) -> DataStream:
        """``(True, row)`` per row: every row of a table here is an insert."""
        stream = self._table(table, "to_retract_stream")._make_stream()
        return stream.map(lambda row: (True, row))

    def _table(self, table: Any, what: str) -> Table:
        if not isinstance(table, Table):
            raise TypeError(f"{what}() needs a Table (t_env.from_path(...)), got {table!r}")
        if table._t_env is not self:
            raise ValueError(f"{what}(): the table belongs to another table environment")
        return table

    # --- what needs the planner ---

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise _needs_planner(f"StreamTableEnvironment.{name}")


def _stream_schema(data_stream: DataStream, fields_or_schema: tuple[Any, ...]) -> Schema:
    if len(fields_or_schema) == 1 and isinstance(fields_or_schema[0], Schema):
        return fields_or_schema[0]
    if fields_or_schema:
        raise _needs_planner("from_data_stream() with field expressions")
    info = data_stream._output_type()
    if isinstance(info, RowTypeInfo) and info.field_names is not None:
        return _schema_of(list(info.field_names), info.field_types)
    if isinstance(info, RowTypeInfo | TupleTypeInfo):
        types = info.field_types
        return _schema_of([f"f{i}" for i in range(len(types))], types)
    if info is not None:
        return _schema_of(["f0"], [info])
    raise TypeError(
        "from_data_stream() needs to know the stream's columns: give the stream a type "
        "(map(..., output_type=Types.ROW_NAMED([...], [...]))) or pass a Schema"
    )


def _schema_of(names: list[str], types: list[TypeInformation]) -> Schema:
    builder = Schema.new_builder()
    for name, info in zip(names, types, strict=True):
        builder.column(name, _data_type_of(info))
    return builder.build()


def _data_type_of(info: TypeInformation) -> DataType:
    by_name = {
        "BYTE": DataTypes.TINYINT,
        "SHORT": DataTypes.SMALLINT,
        "INT": DataTypes.INT,
        "LONG": DataTypes.BIGINT,
        "BOOLEAN": DataTypes.BOOLEAN,
        "FLOAT": DataTypes.FLOAT,
        "DOUBLE": DataTypes.DOUBLE,
        "STRING": DataTypes.STRING,
        "SQL_DATE": DataTypes.DATE,
    }
    make = by_name.get(info.name)
    if make is not None:
        return make()
    if isinstance(info, RowTypeInfo):
        names = info.field_names or [f"f{i}" for i in range(len(info.field_types))]
        return DataTypes.ROW(
            [
                DataTypes.FIELD(n, _data_type_of(t))
                for n, t in zip(names, info.field_types, strict=True)
            ]
        )
    return DataTypes.BYTES()  # any other Python object travels as it is


def _is_single_column(data_stream: DataStream, schema: Schema) -> bool:
    info = data_stream._output_type()
    return len(schema.columns) == 1 and not isinstance(info, RowTypeInfo | TupleTypeInfo)
