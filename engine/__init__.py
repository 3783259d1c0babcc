"""streamlet: an asyncio-native dataflow engine with Flink's model. Import from here.

# General layout:
#   environment.py   StreamExecutionEnvironment: configure, build, execute
#   datastream.py    DataStream / KeyedStream: the PyFlink-style API building the graph
#   graph.py         the logical graph; plan.py: parallelism, validation, chaining
#   partitioners.py  which subtask gets each record; channels.py: channels and input gates
#   subtask.py       the per-batch subtask loop; deploy.py: wiring one attempt
#   runner.py        running a job (failover, restore); client.py: JobClient and results
#   restart.py       restart strategies; testing.py / harness.py: utilities for test suites
#   cli.py           the ``streamlet`` command (run, checkpoints, demo); demo.py: ``make demo``

Everything a job needs is importable from here: the environment and streams, function
types, sources and sinks (``PushSource``, ``FileSink``, ``TwoPhaseCommitSink``), checkpoint
and restart settings, state descriptors (also in :mod:`streamlet.state`) and the errors.
"""

from streamlet.checkpoints.config import CheckpointConfig as CheckpointConfig
from streamlet.checkpoints.config import CheckpointingMode as CheckpointingMode
from streamlet.checkpoints.config import FsStateBackend as FsStateBackend
from streamlet.checkpoints.config import JobManagerCheckpointStorage as JobManagerCheckpointStorage
from streamlet.checkpoints.errors import CheckpointError as CheckpointError
from streamlet.operators.functions import FilterFunction as FilterFunction
from streamlet.operators.functions import FlatMapFunction as FlatMapFunction
from streamlet.operators.functions import KeyedProcessFunction as KeyedProcessFunction
from streamlet.operators.functions import KeySelector as KeySelector
from streamlet.operators.functions import MapFunction as MapFunction
from streamlet.operators.functions import ProcessFunction as ProcessFunction
from streamlet.operators.functions import ReduceFunction as ReduceFunction
from streamlet.operators.functions import RuntimeContext as RuntimeContext
from streamlet.operators.functions import SinkFunction as SinkFunction
from streamlet.operators.sinks.base import Sink as Sink
from streamlet.operators.sinks.base import SinkWriter as SinkWriter
from streamlet.operators.sinks.file import FileSink as FileSink
from streamlet.operators.sinks.file import read_committed as read_committed
from streamlet.operators.sinks.two_phase import TwoPhaseCommitSink as TwoPhaseCommitSink
from streamlet.operators.sources.base import DeliveryGuarantee as DeliveryGuarantee
from streamlet.operators.sources.base import Source as Source
from streamlet.operators.sources.base import SourceReader as SourceReader
from streamlet.operators.sources.push import PushSource as PushSource
from streamlet.state.descriptors import AggregateFunction as AggregateFunction
from streamlet.state.descriptors import AggregatingStateDescriptor as AggregatingStateDescriptor
from streamlet.state.descriptors import ListStateDescriptor as ListStateDescriptor
from streamlet.state.descriptors import MapStateDescriptor as MapStateDescriptor
from streamlet.state.descriptors import ReducingStateDescriptor as ReducingStateDescriptor
from streamlet.state.descriptors import ValueStateDescriptor as ValueStateDescriptor
from streamlet.state.errors import StreamletError as StreamletError

from .client import JobClient as JobClient
from .client import JobExecutionResult as JobExecutionResult
from .client import JobStatus as JobStatus
from .datastream import DataStream as DataStream
from .datastream import DataStreamSink as DataStreamSink
from .datastream import KeyedStream as KeyedStream
from .environment import StreamExecutionEnvironment as StreamExecutionEnvironment
from .errors import JobCancelledError as JobCancelledError
from .errors import JobExecutionError as JobExecutionError
from .errors import JobGraphError as JobGraphError
from .restart import RestartStrategies as RestartStrategies

__all__ = [
    "AggregateFunction",
    "AggregatingStateDescriptor",
    "CheckpointConfig",
    "CheckpointError",
    "CheckpointingMode",
    "DataStream",
    "DataStreamSink",
    "DeliveryGuarantee",
    "FileSink",
    "FilterFunction",
    "FlatMapFunction",
    "FsStateBackend",
    "JobCancelledError",
    "JobClient",
    "JobExecutionError",
    "JobExecutionResult",
    "JobGraphError",
    "JobManagerCheckpointStorage",
    "JobStatus",
    "KeySelector",
    "KeyedProcessFunction",
    "KeyedStream",
    "ListStateDescriptor",
    "MapFunction",
    "MapStateDescriptor",
    "ProcessFunction",
    "PushSource",
    "ReduceFunction",
    "ReducingStateDescriptor",
    "RestartStrategies",
    "RuntimeContext",
    "Sink",
    "SinkFunction",
    "SinkWriter",
    "Source",
    "SourceReader",
    "StreamExecutionEnvironment",
    "StreamletError",
    "TwoPhaseCommitSink",
    "ValueStateDescriptor",
    "read_committed",
]
