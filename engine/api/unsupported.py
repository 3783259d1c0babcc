"""PyFlink names streamlet does not have yet: importing one says so, at build time.

A PyFlink program that imports, say, ``TableEnvironment`` or ``KafkaSource`` from
``streamlet`` (its imports rewritten from ``pyflink...``) gets a ``NotImplementedError``
naming the feature, what to use instead where there is something, and the README's table
of what maps to Flink, rather than an ``ImportError`` that looks like a typo or an
``AttributeError`` at the first record.
"""

from __future__ import annotations

__all__ = ["UNSUPPORTED", "unsupported"]

_TABLE = "SQL and the relational Table API (pyflink.table)"
_KAFKA = "the Kafka connector"
_CONNECTOR = "this connector"
_FORMAT = "Flink's (de)serialization schemas (records here are Python objects, never bytes)"

#: PyFlink name -> (the feature it belongs to, what to use instead or "").
UNSUPPORTED: dict[str, tuple[str, str]] = {
    **{
        name: (
            _TABLE,
            "read tables with StreamTableEnvironment.to_data_stream and go on with the "
            "DataStream API",
        )
        for name in (
            "TableEnvironment",
            "TableResult",
            "TableSchema",
            "FormatDescriptor",
            "ScalarFunction",
            "TableFunction",
            "udf",
            "udtf",
            "udaf",
            "col",
            "lit",
            "call",
        )
    },
    **{
        name: (_KAFKA, "a Source / TwoPhaseCommitSink of your own (see the README)")
        for name in (
            "KafkaSource",
            "KafkaSink",
            "KafkaOffsetsInitializer",
            "KafkaRecordSerializationSchema",
            "FlinkKafkaConsumer",
            "FlinkKafkaProducer",
        )
    },
    **{
        name: (_CONNECTOR, "a Source or Sink of your own (see the README)")
        for name in (
            "JdbcSink",
            "JdbcConnectionOptions",
            "JdbcExecutionOptions",
            "ElasticsearchSink",
            "Elasticsearch7SinkBuilder",
            "PulsarSource",
            "PulsarSink",
            "KinesisStreamsSource",
            "KinesisStreamsSink",
            "FlinkKinesisConsumer",
            "RMQSource",
            "RMQSink",
            "CassandraSink",
            "HybridSource",
        )
    },
    **{
        name: (_FORMAT, "pass Python objects; FileSink writes str(record) per line")
        for name in (
            "SimpleStringSchema",
            "JsonRowSerializationSchema",
            "JsonRowDeserializationSchema",
            "CsvRowSerializationSchema",
            "CsvRowDeserializationSchema",
            "AvroRowSerializationSchema",
            "AvroRowDeserializationSchema",
            "ByteArraySchema",
            "SerializationSchema",
            "DeserializationSchema",
        )
    },
    "EmbeddedRocksDBStateBackend": (
        "the RocksDB state backend",
        "HashMapStateBackend (state on the heap, the one backend streamlet has)",
    ),
    "RocksDBStateBackend": (
        "the RocksDB state backend",
        "HashMapStateBackend (state on the heap, the one backend streamlet has)",
    ),
    "AsyncDataStream": ("AsyncDataStream", "an async def function in map/flat_map/process"),
    "IterativeStream": ("iterations", ""),
    "CheckpointedFunction": (
        "CheckpointedFunction as a base class",
        "define initialize_state(context) and snapshot_state(context) on the function",
    ),
}


def unsupported(name: str) -> NotImplementedError | None:
    """The error for PyFlink name ``name`` if streamlet knows it lacks it, else None."""
    entry = UNSUPPORTED.get(name)
    if entry is None:
        return None
    feature, instead = entry
    hint = f"; {instead}" if instead else ""
    return NotImplementedError(
        f"{name}: {feature} is not supported by streamlet yet{hint} (the README's table "
        f"'How it maps to Flink' lists what is)"
    )
