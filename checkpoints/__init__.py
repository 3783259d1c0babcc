"""streamlet's checkpoints: asynchronous barrier snapshotting, after Apache Flink.

May import ``state``; never ``operators`` or ``engine`` (DESIGN §1).
"""

# General layout:
#
# Leaves (import no sibling module):
#   errors.py      CheckpointFailureReason and the CheckpointError tree
#   events.py      CheckpointBarrier, CancelCheckpointMarker, EndOfPartition
#   config.py      CheckpointingMode, CheckpointConfig, FsStateBackend
#   layout.py      chk-<n> / savepoint / state file names
#   blob_store.py  the BlobStore protocol (read, write atomically, remove, list, remove tree)
#
# Per subtask (pure, synchronous):
#   barriers.py    Action (what a handler tells the subtask) and the BarrierHandler protocol
#   alignment.py   BarrierAligner (EXACTLY_ONCE)
#   tracking.py    BarrierTracker (AT_LEAST_ONCE)
#   unaligned.py   UnalignedBarrierHandler (unaligned, aligned checkpoint timeout): extends
#                  the aligner
#   handlers.py    create_barrier_handler: which of the three a subtask gets
#
# Formats:
#   state_file.py  one state file per (operator uid, subtask), sections per key group
#   metadata.py    _metadata: the commit record, StateHandle
#   channel_state.py  in-flight records of unaligned checkpoints (in a state file's extra)
#
# Storage:
#   file_blob_store.py, memory_blob_store.py   blobs as files (atomic, fsynced) or in a dict
#   validation.py  is a stored checkpoint valid, incomplete or corrupt
#   storage.py     CheckpointStorage over a blob store, and create_checkpoint_storage
#   latest.py      scan_latest: what restore="latest" finds
#
# Lifecycle (the coordinator's side):
#   pending.py     PendingCheckpoint, AckResult, TaskId
#   completed.py   CompletedCheckpoint, CompletedCheckpointStore (retention)
#   failures.py    FailureTolerance (consecutive failures)
#   stats.py       CheckpointStats and the tracker
#   coordinator.py CheckpointCoordinator and the SubtaskGateway protocol
#
# The asynchronous snapshot part of a subtask:
#   snapshotter.py write_subtask_snapshot
#
# Command line: cli.py, __main__.py (python -m streamlet.checkpoints list|show|validate)

from .alignment import BarrierAligner as BarrierAligner
from .barriers import Action as Action
from .barriers import BarrierHandler as BarrierHandler
from .blob_store import BlobStore as BlobStore
from .completed import CompletedCheckpoint as CompletedCheckpoint
from .completed import CompletedCheckpointStore as CompletedCheckpointStore
from .config import CheckpointConfig as CheckpointConfig
from .config import CheckpointingMode as CheckpointingMode
from .config import FsStateBackend as FsStateBackend
from .config import JobManagerCheckpointStorage as JobManagerCheckpointStorage
from .coordinator import CheckpointCoordinator as CheckpointCoordinator
from .coordinator import SubtaskGateway as SubtaskGateway
from .errors import CheckpointError as CheckpointError
from .errors import CheckpointFailureReason as CheckpointFailureReason
from .errors import CheckpointStorageError as CheckpointStorageError
from .errors import CorruptCheckpointError as CorruptCheckpointError
from .errors import TooManyFailedCheckpointsError as TooManyFailedCheckpointsError
from .events import CancelCheckpointMarker as CancelCheckpointMarker
from .events import CheckpointBarrier as CheckpointBarrier
from .events import CheckpointKind as CheckpointKind
from .events import EndOfPartition as EndOfPartition
from .events import Event as Event
from .failures import FailureTolerance as FailureTolerance
from .file_blob_store import FileBlobStore as FileBlobStore
from .handlers import create_barrier_handler as create_barrier_handler
from .memory_blob_store import MemoryBlobStore as MemoryBlobStore
from .metadata import CheckpointMetadata as CheckpointMetadata
from .metadata import OperatorInfo as OperatorInfo
from .metadata import StateHandle as StateHandle
from .metadata import decode_metadata as decode_metadata
from .metadata import encode_metadata as encode_metadata
from .pending import AckResult as AckResult
from .pending import PendingCheckpoint as PendingCheckpoint
from .pending import TaskId as TaskId
from .snapshotter import KeyedStateSnapshot as KeyedStateSnapshot
from .snapshotter import OperatorSnapshot as OperatorSnapshot
from .snapshotter import OperatorStateSnapshot as OperatorStateSnapshot
from .snapshotter import SnapshotResult as SnapshotResult
from .snapshotter import write_subtask_snapshot as write_subtask_snapshot
from .state_file import StateFileContents as StateFileContents
from .state_file import decode_state_file as decode_state_file
from .state_file import encode_state_file as encode_state_file
from .stats import CheckpointStats as CheckpointStats
from .stats import CheckpointStatsSnapshot as CheckpointStatsSnapshot
from .stats import CheckpointStatsTracker as CheckpointStatsTracker
from .stats import CheckpointStatus as CheckpointStatus
from .stats import SubtaskCheckpointStats as SubtaskCheckpointStats
from .storage import CheckpointStorage as CheckpointStorage
from .storage import FileCheckpointStorage as FileCheckpointStorage
from .storage import MemoryCheckpointStorage as MemoryCheckpointStorage
from .storage import create_checkpoint_storage as create_checkpoint_storage
from .tracking import BarrierTracker as BarrierTracker
from .unaligned import UnalignedBarrierHandler as UnalignedBarrierHandler
from .validation import CheckpointReport as CheckpointReport
from .validation import Validity as Validity

__all__ = [
    "AckResult",
    "Action",
    "BarrierAligner",
    "BarrierHandler",
    "BarrierTracker",
    "BlobStore",
    "CancelCheckpointMarker",
    "CheckpointBarrier",
    "CheckpointConfig",
    "CheckpointCoordinator",
    "CheckpointError",
    "CheckpointFailureReason",
    "CheckpointKind",
    "CheckpointMetadata",
    "CheckpointReport",
    "CheckpointStats",
    "CheckpointStatsSnapshot",
    "CheckpointStatsTracker",
    "CheckpointStatus",
    "CheckpointStorage",
    "CheckpointStorageError",
    "CheckpointingMode",
    "CompletedCheckpoint",
    "CompletedCheckpointStore",
    "CorruptCheckpointError",
    "EndOfPartition",
    "Event",
    "FailureTolerance",
    "FileBlobStore",
    "FileCheckpointStorage",
    "FsStateBackend",
    "JobManagerCheckpointStorage",
    "KeyedStateSnapshot",
    "MemoryBlobStore",
    "MemoryCheckpointStorage",
    "OperatorInfo",
    "OperatorSnapshot",
    "OperatorStateSnapshot",
    "PendingCheckpoint",
    "SnapshotResult",
    "StateFileContents",
    "StateHandle",
    "SubtaskCheckpointStats",
    "SubtaskGateway",
    "TaskId",
    "TooManyFailedCheckpointsError",
    "UnalignedBarrierHandler",
    "Validity",
    "create_barrier_handler",
    "decode_metadata",
    "decode_state_file",
    "encode_metadata",
    "encode_state_file",
    "write_subtask_snapshot",
]
