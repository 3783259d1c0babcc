"""streamlet: an asyncio-native dataflow engine with Flink's model. Import from here.

The package in layers (each may import only those below it; tests/test_layering.py):

    cli/       the ``streamlet`` command (run, checkpoints, demo) and ``make demo``
    testing/   test support: TestingSource/TestingSink, harnesses, fault injection, pytest plugin
    api/       StreamExecutionEnvironment, DataStream / KeyedStream: building the logical graph
    job/       a job from start to end: runner (failover, restore), restart, recovery, client
    runtime/   one attempt: channels and input gates, the subtask loop, checkpointing, deploy
    graph/     the logical graph, the execution plan (parallelism, chaining), partitioners
    errors.py  the job's errors, for every layer above
    operators/, checkpoints/, state/ (``streamlet.operators`` ...): the lower layers

Everything a job needs is importable from here: the environment and streams, function
types, time (``Duration``, ``Time``, ``WatermarkStrategy``, timers, ``OutputTag``), windows
(assigners, triggers, evictors, window functions), sources
and sinks (``PushSource``, ``FileSink``, ``TwoPhaseCommitSink``), checkpoint
and restart settings, state descriptors (also in :mod:`streamlet.state`) and the errors.
"""

from streamlet.api.broadcast import BroadcastConnectedStream as BroadcastConnectedStream
from streamlet.api.broadcast import BroadcastStream as BroadcastStream
from streamlet.api.configuration import Configuration as Configuration
from streamlet.api.connected import ConnectedStreams as ConnectedStreams
from streamlet.api.datastream import DataStream as DataStream
from streamlet.api.datastream import DataStreamSink as DataStreamSink
from streamlet.api.datastream import KeyedStream as KeyedStream

# PyFlink's names and signatures (issue 16: types, rows, backends, metrics)
from streamlet.api.datastream import SlotSharingGroup as SlotSharingGroup
from streamlet.api.environment import StreamExecutionEnvironment as StreamExecutionEnvironment
from streamlet.api.execution_config import ExecutionConfig as ExecutionConfig
from streamlet.api.execution_config import RuntimeExecutionMode as RuntimeExecutionMode
from streamlet.api.joins import CoGroupedStreams as CoGroupedStreams
from streamlet.api.joins import IntervalJoin as IntervalJoin
from streamlet.api.joins import IntervalJoined as IntervalJoined
from streamlet.api.joins import JoinedStreams as JoinedStreams
from streamlet.api.table import EnvironmentSettings as EnvironmentSettings
from streamlet.api.table import StreamTableEnvironment as StreamTableEnvironment
from streamlet.api.table import Table as Table
from streamlet.api.table import TableConfig as TableConfig
from streamlet.api.table import TableDescriptor as TableDescriptor
from streamlet.api.table_types import DataType as DataType
from streamlet.api.table_types import DataTypes as DataTypes
from streamlet.api.table_types import Schema as Schema
from streamlet.api.windowed import AllWindowedStream as AllWindowedStream
from streamlet.api.windowed import WindowedStream as WindowedStream
from streamlet.checkpoints.config import CheckpointConfig as CheckpointConfig
from streamlet.checkpoints.config import CheckpointingMode as CheckpointingMode
from streamlet.checkpoints.config import (
    ExternalizedCheckpointCleanup as ExternalizedCheckpointCleanup,
)
from streamlet.checkpoints.config import (
    ExternalizedCheckpointRetention as ExternalizedCheckpointRetention,
)
from streamlet.checkpoints.config import FileSystemCheckpointStorage as FileSystemCheckpointStorage
from streamlet.checkpoints.config import FsStateBackend as FsStateBackend
from streamlet.checkpoints.config import HashMapStateBackend as HashMapStateBackend
from streamlet.checkpoints.config import JobManagerCheckpointStorage as JobManagerCheckpointStorage
from streamlet.checkpoints.errors import CheckpointError as CheckpointError
from streamlet.errors import JobCancelledError as JobCancelledError
from streamlet.errors import JobExecutionError as JobExecutionError
from streamlet.errors import JobGraphError as JobGraphError
from streamlet.job.client import JobClient as JobClient
from streamlet.job.restart import RestartStrategies as RestartStrategies
from streamlet.job.result import JobExecutionResult as JobExecutionResult
from streamlet.job.result import JobStatus as JobStatus
from streamlet.job.threaded import CompletableFuture as CompletableFuture
from streamlet.operators.broadcast import BroadcastProcessFunction as BroadcastProcessFunction
from streamlet.operators.broadcast import (
    KeyedBroadcastProcessFunction as KeyedBroadcastProcessFunction,
)
from streamlet.operators.functions import CoFlatMapFunction as CoFlatMapFunction
from streamlet.operators.functions import CoMapFunction as CoMapFunction
from streamlet.operators.functions import CoProcessFunction as CoProcessFunction
from streamlet.operators.functions import FilterFunction as FilterFunction
from streamlet.operators.functions import FlatMapFunction as FlatMapFunction
from streamlet.operators.functions import KeyedCoProcessFunction as KeyedCoProcessFunction
from streamlet.operators.functions import KeyedProcessFunction as KeyedProcessFunction
from streamlet.operators.functions import KeySelector as KeySelector
from streamlet.operators.functions import MapFunction as MapFunction
from streamlet.operators.functions import ProcessFunction as ProcessFunction
from streamlet.operators.functions import ReduceFunction as ReduceFunction
from streamlet.operators.functions import RuntimeContext as RuntimeContext
from streamlet.operators.functions import SinkFunction as SinkFunction
from streamlet.operators.functions import TimerService as TimerService
from streamlet.operators.joins import CoGroupFunction as CoGroupFunction
from streamlet.operators.joins import FlatJoinFunction as FlatJoinFunction
from streamlet.operators.joins import JoinFunction as JoinFunction
from streamlet.operators.joins import ProcessJoinFunction as ProcessJoinFunction
from streamlet.operators.metrics import Counter as Counter
from streamlet.operators.metrics import Distribution as Distribution
from streamlet.operators.metrics import Gauge as Gauge
from streamlet.operators.metrics import Meter as Meter
from streamlet.operators.metrics import Metric as Metric
from streamlet.operators.metrics import MetricGroup as MetricGroup
from streamlet.operators.processing_time import ManualClock as ManualClock
from streamlet.operators.processing_time import ProcessingTimeClock as ProcessingTimeClock
from streamlet.operators.processing_time import SystemClock as SystemClock
from streamlet.operators.records import OutputTag as OutputTag
from streamlet.operators.records import StreamRecord as StreamRecord
from streamlet.operators.records import TimestampedBatch as TimestampedBatch
from streamlet.operators.sinks.base import Sink as Sink
from streamlet.operators.sinks.base import SinkWriter as SinkWriter
from streamlet.operators.sinks.file import FileSink as FileSink
from streamlet.operators.sinks.file import StreamingFileSink as StreamingFileSink
from streamlet.operators.sinks.file import read_committed as read_committed
from streamlet.operators.sinks.file_config import BucketAssigner as BucketAssigner
from streamlet.operators.sinks.file_config import DefaultRollingPolicy as DefaultRollingPolicy
from streamlet.operators.sinks.file_config import Encoder as Encoder
from streamlet.operators.sinks.file_config import FileCompactor as FileCompactor
from streamlet.operators.sinks.file_config import FileCompactStrategy as FileCompactStrategy
from streamlet.operators.sinks.file_config import (
    OnCheckpointRollingPolicy as OnCheckpointRollingPolicy,
)
from streamlet.operators.sinks.file_config import OutputFileConfig as OutputFileConfig
from streamlet.operators.sinks.file_config import RollingPolicy as RollingPolicy
from streamlet.operators.sinks.two_phase import TwoPhaseCommitSink as TwoPhaseCommitSink
from streamlet.operators.sources.base import DeliveryGuarantee as DeliveryGuarantee
from streamlet.operators.sources.base import Source as Source
from streamlet.operators.sources.base import SourceReader as SourceReader
from streamlet.operators.sources.collection import SequenceSource as NumberSequenceSource
from streamlet.operators.sources.datagen import DataGenField as DataGenField
from streamlet.operators.sources.datagen import DataGenSource as DataGenSource
from streamlet.operators.sources.file_source import BulkFormat as BulkFormat
from streamlet.operators.sources.file_source import (
    FileEnumeratorProvider as FileEnumeratorProvider,
)
from streamlet.operators.sources.file_source import FileSource as FileSource
from streamlet.operators.sources.file_source import FileSourceBuilder as FileSourceBuilder
from streamlet.operators.sources.file_source import (
    FileSplitAssignerProvider as FileSplitAssignerProvider,
)
from streamlet.operators.sources.file_source import StreamFormat as StreamFormat
from streamlet.operators.sources.push import PushSource as PushSource
from streamlet.operators.time import Duration as Duration
from streamlet.operators.time import Time as Time
from streamlet.operators.time import TimeDomain as TimeDomain
from streamlet.operators.typeinfo import BasicTypeInfo as BasicTypeInfo
from streamlet.operators.typeinfo import RowTypeInfo as RowTypeInfo
from streamlet.operators.typeinfo import TupleTypeInfo as TupleTypeInfo
from streamlet.operators.typeinfo import TypeInformation as TypeInformation
from streamlet.operators.typeinfo import Types as Types
from streamlet.operators.watermarks import TimestampAssigner as TimestampAssigner
from streamlet.operators.watermarks import Watermark as Watermark
from streamlet.operators.watermarks import WatermarkGenerator as WatermarkGenerator
from streamlet.operators.watermarks import WatermarkOutput as WatermarkOutput
from streamlet.operators.watermarks import WatermarkStrategy as WatermarkStrategy
from streamlet.operators.windowing import AllWindowFunction as AllWindowFunction
from streamlet.operators.windowing import ContinuousEventTimeTrigger as ContinuousEventTimeTrigger
from streamlet.operators.windowing import (
    ContinuousProcessingTimeTrigger as ContinuousProcessingTimeTrigger,
)
from streamlet.operators.windowing import CountEvictor as CountEvictor
from streamlet.operators.windowing import CountSlidingWindowAssigner as CountSlidingWindowAssigner
from streamlet.operators.windowing import CountTrigger as CountTrigger
from streamlet.operators.windowing import CountTumblingWindowAssigner as CountTumblingWindowAssigner
from streamlet.operators.windowing import CountWindow as CountWindow
from streamlet.operators.windowing import EventTimeSessionWindows as EventTimeSessionWindows
from streamlet.operators.windowing import EventTimeTrigger as EventTimeTrigger
from streamlet.operators.windowing import Evictor as Evictor
from streamlet.operators.windowing import GlobalWindow as GlobalWindow
from streamlet.operators.windowing import GlobalWindows as GlobalWindows
from streamlet.operators.windowing import ProcessAllWindowFunction as ProcessAllWindowFunction
from streamlet.operators.windowing import (
    ProcessingTimeSessionWindows as ProcessingTimeSessionWindows,
)
from streamlet.operators.windowing import ProcessingTimeTrigger as ProcessingTimeTrigger
from streamlet.operators.windowing import ProcessWindowFunction as ProcessWindowFunction
from streamlet.operators.windowing import PurgingTrigger as PurgingTrigger
from streamlet.operators.windowing import SlidingEventTimeWindows as SlidingEventTimeWindows
from streamlet.operators.windowing import (
    SlidingProcessingTimeWindows as SlidingProcessingTimeWindows,
)
from streamlet.operators.windowing import TimeEvictor as TimeEvictor
from streamlet.operators.windowing import TimestampedValue as TimestampedValue
from streamlet.operators.windowing import TimeWindow as TimeWindow
from streamlet.operators.windowing import Trigger as Trigger
from streamlet.operators.windowing import TriggerResult as TriggerResult
from streamlet.operators.windowing import TumblingEventTimeWindows as TumblingEventTimeWindows
from streamlet.operators.windowing import (
    TumblingProcessingTimeWindows as TumblingProcessingTimeWindows,
)
from streamlet.operators.windowing import WindowAssigner as WindowAssigner
from streamlet.operators.windowing import WindowFunction as WindowFunction
from streamlet.operators.windowing.assigners import (
    SessionWindowTimeGapExtractor as SessionWindowTimeGapExtractor,
)
from streamlet.state.descriptors import AggregateFunction as AggregateFunction
from streamlet.state.descriptors import AggregatingStateDescriptor as AggregatingStateDescriptor
from streamlet.state.descriptors import ListStateDescriptor as ListStateDescriptor
from streamlet.state.descriptors import MapStateDescriptor as MapStateDescriptor
from streamlet.state.descriptors import ReducingStateDescriptor as ReducingStateDescriptor
from streamlet.state.descriptors import ValueStateDescriptor as ValueStateDescriptor
from streamlet.state.errors import StreamletError as StreamletError
from streamlet.state.row import Row as Row
from streamlet.state.row import RowKind as RowKind
from streamlet.state.ttl_config import StateTtlConfig as StateTtlConfig

__all__ = [
    "AggregateFunction",
    "AggregatingStateDescriptor",
    "AllWindowFunction",
    "AllWindowedStream",
    "BasicTypeInfo",
    "BroadcastConnectedStream",
    "BroadcastProcessFunction",
    "BroadcastStream",
    "BucketAssigner",
    "BulkFormat",
    "CheckpointConfig",
    "CheckpointError",
    "CheckpointingMode",
    "CoFlatMapFunction",
    "CoGroupFunction",
    "CoGroupedStreams",
    "CoMapFunction",
    "CoProcessFunction",
    "CompletableFuture",
    "Configuration",
    "ConnectedStreams",
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountEvictor",
    "CountSlidingWindowAssigner",
    "CountTrigger",
    "CountTumblingWindowAssigner",
    "CountWindow",
    "Counter",
    "DataGenField",
    "DataGenSource",
    "DataStream",
    "DataStreamSink",
    "DataType",
    "DataTypes",
    "DefaultRollingPolicy",
    "DeliveryGuarantee",
    "Distribution",
    "Duration",
    "Encoder",
    "EnvironmentSettings",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "Evictor",
    "ExecutionConfig",
    "ExternalizedCheckpointCleanup",
    "ExternalizedCheckpointRetention",
    "FileCompactStrategy",
    "FileCompactor",
    "FileEnumeratorProvider",
    "FileSink",
    "FileSource",
    "FileSourceBuilder",
    "FileSplitAssignerProvider",
    "FileSystemCheckpointStorage",
    "FilterFunction",
    "FlatJoinFunction",
    "FlatMapFunction",
    "FsStateBackend",
    "Gauge",
    "GlobalWindow",
    "GlobalWindows",
    "HashMapStateBackend",
    "IntervalJoin",
    "IntervalJoined",
    "JobCancelledError",
    "JobClient",
    "JobExecutionError",
    "JobExecutionResult",
    "JobGraphError",
    "JobManagerCheckpointStorage",
    "JobStatus",
    "JoinFunction",
    "JoinedStreams",
    "KeySelector",
    "KeyedBroadcastProcessFunction",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "KeyedStream",
    "ListStateDescriptor",
    "ManualClock",
    "MapFunction",
    "MapStateDescriptor",
    "Meter",
    "Metric",
    "MetricGroup",
    "NumberSequenceSource",
    "OnCheckpointRollingPolicy",
    "OutputFileConfig",
    "OutputTag",
    "ProcessAllWindowFunction",
    "ProcessFunction",
    "ProcessJoinFunction",
    "ProcessWindowFunction",
    "ProcessingTimeClock",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "PushSource",
    "ReduceFunction",
    "ReducingStateDescriptor",
    "RestartStrategies",
    "RollingPolicy",
    "Row",
    "RowKind",
    "RowTypeInfo",
    "RuntimeContext",
    "RuntimeExecutionMode",
    "Schema",
    "SessionWindowTimeGapExtractor",
    "Sink",
    "SinkFunction",
    "SinkWriter",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "SlotSharingGroup",
    "Source",
    "SourceReader",
    "StateTtlConfig",
    "StreamExecutionEnvironment",
    "StreamFormat",
    "StreamRecord",
    "StreamTableEnvironment",
    "StreamingFileSink",
    "StreamletError",
    "SystemClock",
    "Table",
    "TableConfig",
    "TableDescriptor",
    "Time",
    "TimeDomain",
    "TimeEvictor",
    "TimeWindow",
    "TimerService",
    "TimestampAssigner",
    "TimestampedBatch",
    "TimestampedValue",
    "Trigger",
    "TriggerResult",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "TupleTypeInfo",
    "TwoPhaseCommitSink",
    "TypeInformation",
    "Types",
    "ValueStateDescriptor",
    "Watermark",
    "WatermarkGenerator",
    "WatermarkOutput",
    "WatermarkStrategy",
    "WindowAssigner",
    "WindowFunction",
    "WindowedStream",
    "read_committed",
]


def __getattr__(name: str) -> object:
    """A PyFlink name streamlet lacks raises NotImplementedError naming the feature (at
    import time, so at build time), not an ImportError that looks like a typo."""
    from streamlet.api.unsupported import unsupported

    error = unsupported(name)
    if error is not None:
        raise error
    raise AttributeError(f"module 'streamlet' has no attribute {name!r}")
