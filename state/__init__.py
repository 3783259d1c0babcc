"""streamlet's state layer: keyed and operator state, key groups, serializers.

The bottom layer of streamlet: it imports nothing else of ours.
"""

# General layout:
#
# errors.py          the root of streamlet's error tree and the state errors
# key_groups.py      key -> key group -> subtask math with a process-independent hash (pure)
# descriptors.py     state descriptors (name, kind, serializer) and AggregateFunction
# json_codec.py      type-faithful mapping between Python values and JSON-ready values
# serde.py           Serializer protocol, the default orjson serializer, pickle (opt-in),
#                    per-key-group table encoding
# table.py           one keyed state's per-key-group dicts, copy-on-write against snapshots
# keyed.py           ValueState, ListState, MapState, ReducingState, AggregatingState views
# snapshot.py        KeyedStateSnapshot and the byte format of one key group
# heap_backend.py    HeapKeyedStateBackend: current key, registration, snapshot, restore
# ttl_config.py     StateTtlConfig: how long keyed state lives and how it is cleaned up
# ttl.py            the views of keyed state with a time-to-live, their cleanup, serialization
# timers.py          KeyedTimerQueue: keyed timers kept as a map state of the heap backend
# operator_state.py  per-subtask list, union list and broadcast state with redistribution

from .descriptors import AggregateFunction as AggregateFunction
from .descriptors import AggregatingStateDescriptor as AggregatingStateDescriptor
from .descriptors import ListStateDescriptor as ListStateDescriptor
from .descriptors import MapStateDescriptor as MapStateDescriptor
from .descriptors import ReducingStateDescriptor as ReducingStateDescriptor
from .descriptors import StateDescriptor as StateDescriptor
from .descriptors import ValueStateDescriptor as ValueStateDescriptor
from .errors import StateError as StateError
from .errors import StateSerializationError as StateSerializationError
from .errors import StreamletError as StreamletError
from .errors import StreamletInternalError as StreamletInternalError
from .heap_backend import HeapKeyedStateBackend as HeapKeyedStateBackend
from .key_groups import DEFAULT_MAX_PARALLELISM as DEFAULT_MAX_PARALLELISM
from .key_groups import KeyGroupRange as KeyGroupRange
from .key_groups import assign_to_key_group as assign_to_key_group
from .key_groups import check_parallelism as check_parallelism
from .key_groups import key_group_range_for_subtask as key_group_range_for_subtask
from .key_groups import stable_hash as stable_hash
from .key_groups import subtask_for_key_group as subtask_for_key_group
from .keyed import AggregatingState as AggregatingState
from .keyed import KeyedState as KeyedState
from .keyed import ListState as ListState
from .keyed import MapState as MapState
from .keyed import ReducingState as ReducingState
from .keyed import ValueState as ValueState
from .operator_state import BroadcastState as BroadcastState
from .operator_state import OperatorListState as OperatorListState
from .operator_state import OperatorStateBackend as OperatorStateBackend
from .operator_state import OperatorStateSnapshot as OperatorStateSnapshot
from .operator_state import ReadOnlyBroadcastState as ReadOnlyBroadcastState
from .serde import JsonSerializer as JsonSerializer
from .serde import PickleSerializer as PickleSerializer
from .serde import Serializer as Serializer
from .snapshot import KeyedStateSnapshot as KeyedStateSnapshot
from .ttl_config import StateTtlConfig as StateTtlConfig

__all__ = [
    "DEFAULT_MAX_PARALLELISM",
    "AggregateFunction",
    "AggregatingState",
    "AggregatingStateDescriptor",
    "BroadcastState",
    "HeapKeyedStateBackend",
    "JsonSerializer",
    "KeyGroupRange",
    "KeyedState",
    "KeyedStateSnapshot",
    "ListState",
    "ListStateDescriptor",
    "MapState",
    "MapStateDescriptor",
    "OperatorListState",
    "OperatorStateBackend",
    "OperatorStateSnapshot",
    "PickleSerializer",
    "ReadOnlyBroadcastState",
    "ReducingState",
    "ReducingStateDescriptor",
    "Serializer",
    "StateDescriptor",
    "StateError",
    "StateSerializationError",
    "StateTtlConfig",
    "StreamletError",
    "StreamletInternalError",
    "ValueState",
    "ValueStateDescriptor",
    "assign_to_key_group",
    "check_parallelism",
    "key_group_range_for_subtask",
    "stable_hash",
    "subtask_for_key_group",
]
