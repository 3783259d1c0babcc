"""streamlet: an asyncio-native dataflow engine with Flink's model. Import from here.

# General layout:
#   environment.py   StreamExecutionEnvironment: configure, build, execute
#   datastream.py    DataStream / KeyedStream: the PyFlink-style API building the graph
#   graph.py         the logical graph; plan.py: parallelism, validation, chaining
#   partitioners.py  which subtask gets each record; channels.py: channels and input gates
#   subtask.py       the per-batch subtask loop; deploy.py: wiring one attempt
#   runner.py        running a job (failover, restore); client.py: JobClient and results
"""

from operators.functions import (
    FilterFunction as FilterFunction,
)
from operators.functions import (
    FlatMapFunction as FlatMapFunction,
)
from operators.functions import (
    KeyedProcessFunction as KeyedProcessFunction,
)
from operators.functions import (
    KeySelector as KeySelector,
)
from operators.functions import (
    MapFunction as MapFunction,
)
from operators.functions import (
    ProcessFunction as ProcessFunction,
)
from operators.functions import (
    ReduceFunction as ReduceFunction,
)
from operators.functions import (
    RuntimeContext as RuntimeContext,
)
from operators.functions import (
    SinkFunction as SinkFunction,
)
from operators.sinks.base import Sink as Sink
from operators.sinks.base import SinkWriter as SinkWriter
from operators.sources.base import DeliveryGuarantee as DeliveryGuarantee
from operators.sources.base import Source as Source
from operators.sources.base import SourceReader as SourceReader

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

__all__ = [
    "DataStream",
    "DataStreamSink",
    "DeliveryGuarantee",
    "FilterFunction",
    "FlatMapFunction",
    "JobCancelledError",
    "JobClient",
    "JobExecutionError",
    "JobExecutionResult",
    "JobGraphError",
    "JobStatus",
    "KeySelector",
    "KeyedProcessFunction",
    "KeyedStream",
    "MapFunction",
    "ProcessFunction",
    "ReduceFunction",
    "RuntimeContext",
    "Sink",
    "SinkFunction",
    "SinkWriter",
    "Source",
    "SourceReader",
    "StreamExecutionEnvironment",
]
