"""The Table API's data types and schemas (PyFlink's ``DataTypes`` and ``Schema``).

A :class:`DataType` names a SQL logical type (``INT``, ``VARCHAR(10)``, ``ROW<...>``) and
whether it takes NULL. streamlet has no SQL planner: a table's schema describes the rows a
connector makes and the type information a table turns into on ``to_data_stream``
(:meth:`DataType.to_type_info`), so ``print()`` shows them as Flink does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamlet.operators.typeinfo import TypeInformation, Types

__all__ = ["DataType", "DataTypes", "Schema"]


class DataType:
    """A logical type, its arguments (length, precision, element types) and nullability."""

    __slots__ = ("args", "children", "field_names", "nullable_", "type_name")

    def __init__(
        self,
        type_name: str,
        args: tuple[int, ...] = (),
        *,
        nullable: bool = True,
        children: tuple[DataType, ...] = (),
        field_names: tuple[str, ...] = (),
    ) -> None:
        self.type_name = type_name
        self.args = args
        self.nullable_ = nullable
        self.children = children
        self.field_names = field_names

    def not_null(self) -> DataType:
        """This type without NULL (``INT NOT NULL``)."""
        return self._with_nullable(False)

    def nullable(self) -> DataType:
        return self._with_nullable(True)

    def _with_nullable(self, nullable: bool) -> DataType:
        return DataType(
            self.type_name,
            self.args,
            nullable=nullable,
            children=self.children,
            field_names=self.field_names,
        )

    def to_type_info(self) -> TypeInformation:
        """The DataStream type information of this type (what ``to_data_stream`` carries)."""
        name = self.type_name
        simple = _TYPE_INFO.get(name)
        if simple is not None:
            return simple()
        if name == "ARRAY":
            return Types.OBJECT_ARRAY(self.children[0].to_type_info())
        if name == "MAP":
            return Types.MAP(self.children[0].to_type_info(), self.children[1].to_type_info())
        if name == "ROW":
            return Types.ROW_NAMED(
                list(self.field_names), [c.to_type_info() for c in self.children]
            )
        raise NotImplementedError(f"{self}: no DataStream type for it in streamlet")

    def __str__(self) -> str:
        if self.type_name == "ROW":
            inner = ", ".join(
                f"`{n}` {c}" for n, c in zip(self.field_names, self.children, strict=True)
            )
            text = f"ROW<{inner}>"
        elif self.children:
            text = f"{self.type_name}<{', '.join(str(c) for c in self.children)}>"
        elif self.args:
            text = f"{self.type_name}({', '.join(str(a) for a in self.args)})"
        else:
            text = self.type_name
        return text if self.nullable_ else f"{text} NOT NULL"

    def __repr__(self) -> str:
        return f"DataTypes.{self}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataType) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))


_TYPE_INFO = {
    "TINYINT": Types.BYTE,
    "SMALLINT": Types.SHORT,
    "INT": Types.INT,
    "BIGINT": Types.LONG,
    "BOOLEAN": Types.BOOLEAN,
    "FLOAT": Types.FLOAT,
    "DOUBLE": Types.DOUBLE,
    "STRING": Types.STRING,
    "VARCHAR": Types.STRING,
    "CHAR": Types.STRING,
    "DECIMAL": Types.BIG_DEC,
    "DATE": Types.SQL_DATE,
    "TIME": Types.SQL_TIME,
    "TIMESTAMP": Types.SQL_TIMESTAMP,
    "TIMESTAMP_LTZ": Types.INSTANT,
    "BYTES": Types.PICKLED_BYTE_ARRAY,
}


def _positive(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"DataTypes.{what} needs a non-negative int, got {value!r}")
    return value


def _data_type(value: Any, what: str) -> DataType:
    if not isinstance(value, DataType):
        raise TypeError(f"{what} needs a DataTypes type (DataTypes.INT(), ...), got {value!r}")
    return value


class DataTypes:
    """Factories of logical types, PyFlink's names (``DataTypes.INT()``, ``ROW([...])``)."""

    @staticmethod
    def TINYINT(nullable: bool = True) -> DataType:
        return DataType("TINYINT", nullable=nullable)

    @staticmethod
    def SMALLINT(nullable: bool = True) -> DataType:
        return DataType("SMALLINT", nullable=nullable)

    @staticmethod
    def INT(nullable: bool = True) -> DataType:
        return DataType("INT", nullable=nullable)

    @staticmethod
    def BIGINT(nullable: bool = True) -> DataType:
        return DataType("BIGINT", nullable=nullable)

    @staticmethod
    def BOOLEAN(nullable: bool = True) -> DataType:
        return DataType("BOOLEAN", nullable=nullable)

    @staticmethod
    def FLOAT(nullable: bool = True) -> DataType:
        return DataType("FLOAT", nullable=nullable)

    @staticmethod
    def DOUBLE(nullable: bool = True) -> DataType:
        return DataType("DOUBLE", nullable=nullable)

    @staticmethod
    def STRING(nullable: bool = True) -> DataType:
        return DataType("STRING", nullable=nullable)

    @staticmethod
    def VARCHAR(length: int, nullable: bool = True) -> DataType:
        return DataType("VARCHAR", (_positive(length, "VARCHAR(length)"),), nullable=nullable)

    @staticmethod
    def CHAR(length: int, nullable: bool = True) -> DataType:
        return DataType("CHAR", (_positive(length, "CHAR(length)"),), nullable=nullable)

    @staticmethod
    def BYTES(nullable: bool = True) -> DataType:
        return DataType("BYTES", nullable=nullable)

    @staticmethod
    def DECIMAL(precision: int, scale: int, nullable: bool = True) -> DataType:
        args = (_positive(precision, "DECIMAL(precision)"), _positive(scale, "DECIMAL(scale)"))
        return DataType("DECIMAL", args, nullable=nullable)

    @staticmethod
    def DATE(nullable: bool = True) -> DataType:
        return DataType("DATE", nullable=nullable)

    @staticmethod
    def TIME(precision: int = 0, nullable: bool = True) -> DataType:
        return DataType("TIME", (_positive(precision, "TIME(precision)"),), nullable=nullable)

    @staticmethod
    def TIMESTAMP(precision: int = 6, nullable: bool = True) -> DataType:
        args = (_positive(precision, "TIMESTAMP(precision)"),)
        return DataType("TIMESTAMP", args, nullable=nullable)

    @staticmethod
    def TIMESTAMP_LTZ(precision: int = 6, nullable: bool = True) -> DataType:
        args = (_positive(precision, "TIMESTAMP_LTZ(precision)"),)
        return DataType("TIMESTAMP_LTZ", args, nullable=nullable)

    @staticmethod
    def ARRAY(element_type: DataType, nullable: bool = True) -> DataType:
        child = _data_type(element_type, "DataTypes.ARRAY()")
        return DataType("ARRAY", nullable=nullable, children=(child,))

    @staticmethod
    def MAP(key_type: DataType, value_type: DataType, nullable: bool = True) -> DataType:
        children = (
            _data_type(key_type, "DataTypes.MAP(key_type)"),
            _data_type(value_type, "DataTypes.MAP(value_type)"),
        )
        return DataType("MAP", nullable=nullable, children=children)

    @staticmethod
    def FIELD(name: str, data_type: DataType, description: str | None = None) -> _Field:
        if not isinstance(name, str) or not name:
            raise ValueError(f"DataTypes.FIELD() needs a non-empty str name, got {name!r}")
        return _Field(name, _data_type(data_type, f"DataTypes.FIELD({name!r})"))

    @staticmethod
    def ROW(row_fields: Sequence[_Field] = (), nullable: bool = True) -> DataType:
        fields = list(row_fields)
        for f in fields:
            if not isinstance(f, _Field):
                raise TypeError(f"DataTypes.ROW() takes DataTypes.FIELD(...) items, got {f!r}")
        _check_unique([f.name for f in fields], "DataTypes.ROW()")
        return DataType(
            "ROW",
            nullable=nullable,
            children=tuple(f.data_type for f in fields),
            field_names=tuple(f.name for f in fields),
        )


class _Field:
    """A named field of a ROW type (``DataTypes.FIELD(name, type)``)."""

    __slots__ = ("data_type", "name")

    def __init__(self, name: str, data_type: DataType) -> None:
        self.name = name
        self.data_type = data_type


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: the column name {name!r} appears twice")
        seen.add(name)


class Schema:
    """The columns of a table (PyFlink's ``Schema``): ``Schema.new_builder().column(name,
    type)...build()``. Computed columns, metadata columns and watermark expressions need
    SQL, which streamlet does not have: their builder methods raise NotImplementedError."""

    def __init__(self, columns: list[tuple[str, DataType]], primary_key: list[str]) -> None:
        self.columns = columns
        self.primary_key = primary_key

    @staticmethod
    def new_builder() -> Schema.Builder:
        return Schema.Builder()

    def field_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def to_row_data_type(self) -> DataType:
        return DataTypes.ROW([DataTypes.FIELD(n, t) for n, t in self.columns])

    def __str__(self) -> str:
        lines = [f"  `{name}` {data_type}" for name, data_type in self.columns]
        if self.primary_key:
            keys = ", ".join(f"`{k}`" for k in self.primary_key)
            lines.append(f"  PRIMARY KEY ({keys}) NOT ENFORCED")
        return "(\n" + ",\n".join(lines) + "\n)"

    def __repr__(self) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    class Builder:
        """Builds a :class:`Schema` column by column."""

        def __init__(self) -> None:
            self._columns: list[tuple[str, DataType]] = []
            self._primary_key: list[str] = []

        def column(self, column_name: str, data_type: DataType | str) -> Schema.Builder:
            """Add a physical column. ``data_type`` is a DataTypes type (a SQL type string
            needs the SQL parser streamlet lacks)."""
            if not isinstance(column_name, str) or not column_name:
                raise ValueError(f"Schema column names are non-empty strs, got {column_name!r}")
            if isinstance(data_type, str):
                raise NotImplementedError(
                    f"Schema column {column_name!r}: a SQL type string ({data_type!r}) needs "
                    f"Flink's SQL parser, which streamlet does not have; pass a DataTypes "
                    f"type such as DataTypes.INT()"
                )
            _data_type(data_type, f"Schema column {column_name!r}")
            _check_unique([*(n for n, _ in self._columns), column_name], "Schema")
            self._columns.append((column_name, data_type))
            return self

        def from_fields(
            self, field_names: Sequence[str], field_data_types: Sequence[DataType]
        ) -> Schema.Builder:
            if len(field_names) != len(field_data_types):
                raise ValueError(
                    f"Schema.from_fields() needs as many types as names, got "
                    f"{len(field_names)} names and {len(field_data_types)} types"
                )
            for name, data_type in zip(field_names, field_data_types, strict=True):
                self.column(name, data_type)
            return self

        def from_row_data_type(self, data_type: DataType) -> Schema.Builder:
            if not isinstance(data_type, DataType) or data_type.type_name != "ROW":
                raise TypeError(f"from_row_data_type() needs a DataTypes.ROW, got {data_type!r}")
            return self.from_fields(list(data_type.field_names), list(data_type.children))

        def from_schema(self, unresolved_schema: Schema) -> Schema.Builder:
            for name, data_type in unresolved_schema.columns:
                self.column(name, data_type)
            self._primary_key = list(unresolved_schema.primary_key)
            return self

        def primary_key(self, *column_names: str) -> Schema.Builder:
            known = {n for n, _ in self._columns}
            for name in column_names:
                if name not in known:
                    raise ValueError(
                        f"Schema.primary_key(): no column {name!r} (columns: {sorted(known)})"
                    )
            self._primary_key = list(column_names)
            return self

        def column_by_expression(self, column_name: str, expr: Any) -> Schema.Builder:
            raise _needs_sql(f"Schema.column_by_expression({column_name!r})")

        def column_by_metadata(self, column_name: str, *args: Any, **kwargs: Any) -> Schema.Builder:
            raise _needs_sql(f"Schema.column_by_metadata({column_name!r})")

        def watermark(self, column_name: str, watermark_expr: Any) -> Schema.Builder:
            raise _needs_sql(
                f"Schema.watermark({column_name!r})",
                "convert the table with to_data_stream() and call "
                "assign_timestamps_and_watermarks on the stream",
            )

        def build(self) -> Schema:
            return Schema(list(self._columns), list(self._primary_key))


def _needs_sql(what: str, instead: str = "") -> NotImplementedError:
    hint = f"; {instead}" if instead else ""
    return NotImplementedError(
        f"{what} needs Flink's SQL expressions, which streamlet does not have{hint} (the "
        f"README's table 'How it maps to Flink' lists what the Table API has here)"
    )
