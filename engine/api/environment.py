"""``StreamExecutionEnvironment``: where a job is configured, built and executed."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from streamlet.api.configuration import Configuration, apply_configuration
from streamlet.api.datastream import DataStream
from streamlet.api.execution_config import ExecutionConfig, RuntimeExecutionMode
from streamlet.checkpoints.config import (
    CheckpointConfig,
    CheckpointingMode,
    FsStateBackend,
    HashMapStateBackend,
)
from streamlet.graph.partitioners import ForwardPartitioner
from streamlet.graph.plan import build_plan
from streamlet.graph.stream_graph import StreamGraph, StreamNode
from streamlet.job.background import event_loop_running, start_background
from streamlet.job.client import JobClient
from streamlet.job.restart import RestartStrategy
from streamlet.job.runner import JobConfig, JobRunner
from streamlet.job.threaded import ThreadedJobClient
from streamlet.operators.operations import OPERATIONS
from streamlet.operators.processing_time import ProcessingTimeClock
from streamlet.operators.sources.base import Source
from streamlet.operators.sources.collection import CollectionSource, SequenceSource
from streamlet.operators.time import to_millis
from streamlet.operators.typeinfo import check_type_info, conform_collection
from streamlet.operators.watermarks import WatermarkStrategy
from streamlet.state.key_groups import DEFAULT_MAX_PARALLELISM, check_parallelism

__all__ = ["StreamExecutionEnvironment"]

_DEFAULT_BATCH_SIZE = 512
logger = logging.getLogger("streamlet.api")

_DEFAULT_BUFFER_TIMEOUT_MS = 100.0
_DEFAULT_CHANNEL_CAPACITY = 4


class StreamExecutionEnvironment:
    """Configures and runs jobs (PyFlink's entry point, in snake_case).

    Build the job with the source methods and the returned streams, then
    ``await env.execute("name")``. After a job is started the environment's graph is
    cleared (as in Flink), so the same environment can build and run another job.
    """

    def __init__(self) -> None:
        self._graph = StreamGraph()
        self._parallelism = 1
        self._max_parallelism = DEFAULT_MAX_PARALLELISM
        self._batch_size = _DEFAULT_BATCH_SIZE
        self._buffer_timeout_ms = _DEFAULT_BUFFER_TIMEOUT_MS
        self._channel_capacity = _DEFAULT_CHANNEL_CAPACITY
        self._checkpoint_config = CheckpointConfig()
        self._restart_strategy: RestartStrategy | None = None
        self._config = ExecutionConfig()
        self._clock: ProcessingTimeClock | None = None
        self._runtime_mode = RuntimeExecutionMode.STREAMING
        self._chaining = True
        #: Flink's task I/O metrics (configuration key ``metrics.enabled``).
        self._metrics_enabled = True
        #: Test hook (engine.testing.inject_faults): wraps chosen operators at deploy time.
        self._operator_wrapper: Any = None

    @staticmethod
    def get_execution_environment(
        configuration: Configuration | None = None,
    ) -> StreamExecutionEnvironment:
        """Return a new environment with default settings (parallelism 1), then
        ``configuration`` applied (Flink's keys, see :meth:`configure`)."""
        env = StreamExecutionEnvironment()
        if configuration is not None:
            env.configure(configuration)
        return env

    def configure(self, configuration: Configuration) -> StreamExecutionEnvironment:
        """Apply Flink configuration keys (``parallelism.default``,
        ``execution.checkpointing.interval``, ``restart-strategy.type``, ...: the README's
        configuration reference lists them). Keys streamlet does not read are ignored with a
        warning, as Flink ignores keys nothing reads.

        :raises ValueError: naming the key, for a value it cannot take
        """
        apply_configuration(self, configuration)
        return self

    def set_runtime_mode(self, execution_mode: RuntimeExecutionMode) -> StreamExecutionEnvironment:
        """Run jobs in ``RuntimeExecutionMode.STREAMING`` (the default), ``BATCH`` (bounded
        inputs; final values only for rolling aggregations; no checkpoints) or
        ``AUTOMATIC`` (BATCH when every source is bounded), as Flink does.

        :raises TypeError: if ``execution_mode`` is not a RuntimeExecutionMode (or its name)
        """
        if isinstance(execution_mode, str):
            try:
                execution_mode = RuntimeExecutionMode[execution_mode.strip().upper()]
            except KeyError:
                pass
        if not isinstance(execution_mode, RuntimeExecutionMode):
            raise TypeError(
                f"set_runtime_mode() needs RuntimeExecutionMode.STREAMING, BATCH or AUTOMATIC, "
                f"got {execution_mode!r}"
            )
        self._runtime_mode = execution_mode
        return self

    def disable_operator_chaining(self) -> StreamExecutionEnvironment:
        """Run every operator in a subtask of its own (for debugging; slower)."""
        self._chaining = False
        return self

    def is_chaining_enabled(self) -> bool:
        return self._chaining

    # --- configuration ---

    def _check_parallelism(self, parallelism: int, what: str) -> None:
        try:
            check_parallelism(parallelism, self._max_parallelism)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{what}: {exc}") from None

    def _check_forward_edges(self, node: StreamNode) -> None:
        p = self._parallelism
        for edge in [*node.inputs, *node.outputs]:
            if isinstance(edge.partitioner, ForwardPartitioner):
                up = edge.upstream.resolved_parallelism(p)
                down = edge.downstream.resolved_parallelism(p)
                if up != down:
                    raise ValueError(
                        f"forward edge from {edge.upstream.name!r} (parallelism {up}) to "
                        f"{edge.downstream.name!r} (parallelism {down}) needs equal "
                        f"parallelism; use rebalance() or another partitioner"
                    )

    def set_parallelism(self, parallelism: int) -> StreamExecutionEnvironment:
        """Set the default number of subtasks per operator.

        :raises ValueError: if < 1 or greater than the max parallelism
        """
        self._check_parallelism(parallelism, "set_parallelism")
        self._parallelism = parallelism
        return self

    def get_parallelism(self) -> int:
        return self._parallelism

    def set_max_parallelism(self, max_parallelism: int) -> StreamExecutionEnvironment:
        """Set the number of key groups (the upper bound for rescaling keyed state).

        :raises ValueError: if outside [1, 32768] or below the current parallelism
        """
        check_parallelism(1, max_parallelism)
        if max_parallelism < self._parallelism:
            raise ValueError(
                f"max_parallelism {max_parallelism} is below the parallelism {self._parallelism}"
            )
        self._max_parallelism = max_parallelism
        return self

    def get_max_parallelism(self) -> int:
        return self._max_parallelism

    def set_buffer_timeout(self, timeout_ms: Any) -> StreamExecutionEnvironment:
        """Flush partially filled output buffers at least this often (ms, or a
        ``Duration`` / ``Time`` / ``timedelta``) under load; ``-1``: only when full (and
        when a subtask is idle, which streamlet always flushes at), as Flink's -1."""
        if isinstance(timeout_ms, float) and not isinstance(timeout_ms, bool):
            if not (timeout_ms >= 0 or timeout_ms == -1):
                raise ValueError(f"buffer timeout must be >= 0 ms or -1, got {timeout_ms!r}")
            self._buffer_timeout_ms = timeout_ms
            return self
        try:
            ms = to_millis(timeout_ms, "buffer timeout", minimum=-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        self._buffer_timeout_ms = float(ms)
        return self

    def get_buffer_timeout(self) -> float:
        return self._buffer_timeout_ms

    def set_batch_size(self, batch_size: int) -> StreamExecutionEnvironment:
        """Set how many records a channel buffer holds at most (default 512)."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch size must be an int >= 1, got {batch_size!r}")
        self._batch_size = batch_size
        return self

    def set_channel_capacity(self, buffers: int) -> StreamExecutionEnvironment:
        """Set how many buffers a channel holds before its producer waits (default 4)."""
        if not isinstance(buffers, int) or isinstance(buffers, bool) or buffers < 1:
            raise ValueError(f"channel capacity must be an int >= 1, got {buffers!r}")
        self._channel_capacity = buffers
        return self

    def get_config(self) -> ExecutionConfig:
        """The execution settings of jobs started from this environment (mutable), e.g.
        ``env.get_config().set_auto_watermark_interval(100)``."""
        return self._config

    def set_processing_time_clock(
        self, clock: ProcessingTimeClock | None
    ) -> StreamExecutionEnvironment:
        """Read processing time from ``clock`` (None: the system clock). Beyond PyFlink: a
        :class:`~streamlet.testing.ManualClock` makes processing-time timers and periodic
        watermarks move only when a test moves the clock.

        :raises TypeError: if ``clock`` is not a ProcessingTimeClock
        """
        if clock is not None and not isinstance(clock, ProcessingTimeClock):
            raise TypeError(
                f"set_processing_time_clock() needs a ProcessingTimeClock (e.g. ManualClock()) "
                f"or None, got {clock!r}"
            )
        self._clock = clock
        return self

    # --- checkpointing ---

    def enable_checkpointing(
        self, interval: Any, mode: CheckpointingMode | None = None
    ) -> StreamExecutionEnvironment:
        """Checkpoint every ``interval`` ms (or ``Duration`` / ``Time`` / ``timedelta``),
        EXACTLY_ONCE unless ``mode`` says otherwise.

        :raises ValueError: if the interval is below 10 ms
        """
        self._checkpoint_config.set_checkpoint_interval(interval)
        if mode is not None:
            self._checkpoint_config.set_checkpointing_mode(mode)
        return self

    def get_checkpoint_config(self) -> CheckpointConfig:
        """The checkpoint options of jobs started from this environment (mutable)."""
        return self._checkpoint_config

    def get_checkpoint_interval(self) -> int:
        """The checkpoint interval in ms, -1 when checkpointing is off (as PyFlink)."""
        return self._checkpoint_config.get_checkpoint_interval()

    def get_checkpointing_mode(self) -> CheckpointingMode:
        return self._checkpoint_config.get_checkpointing_mode()

    def set_state_backend(
        self, state_backend: FsStateBackend | HashMapStateBackend
    ) -> StreamExecutionEnvironment:
        """Accepted as in Flink: ``HashMapStateBackend()`` (state on the heap, which is how
        streamlet keeps state: nothing changes), ``FsStateBackend(uri)`` (also sets the
        checkpoint directory).

        :raises TypeError: for another backend (``EmbeddedRocksDBStateBackend`` does not
            exist here)
        """
        if isinstance(state_backend, HashMapStateBackend):
            return self
        if not isinstance(state_backend, FsStateBackend):
            raise TypeError(
                f"set_state_backend() needs a HashMapStateBackend or an FsStateBackend, got "
                f"{state_backend!r} (streamlet keeps state on the heap; see the README's "
                f'"How it maps to Flink" table)'
            )
        self._checkpoint_config.set_checkpoint_storage(state_backend)
        return self

    def set_default_savepoint_directory(self, directory: str | None) -> StreamExecutionEnvironment:
        """Where ``trigger_savepoint()`` / ``stop_with_savepoint()`` write when given no
        directory (Flink's ``execution.checkpointing.savepoint-dir``)."""
        self._checkpoint_config.set_default_savepoint_directory(directory)
        return self

    def get_default_savepoint_directory(self) -> str | None:
        return self._checkpoint_config.get_default_savepoint_directory()

    # --- PyFlink's remaining checkpoint and slot names (issue 16) ---

    def get_checkpointing_consistency_mode(self) -> CheckpointingMode:
        """PyFlink 2's name of :meth:`get_checkpointing_mode`."""
        return self._checkpoint_config.get_checkpointing_mode()

    def enable_changelog_state_backend(self, enabled: bool) -> StreamExecutionEnvironment:
        """Only ``False`` is accepted: changelog (incremental) checkpoints are not built.

        :raises NotImplementedError: for ``True``
        """
        if enabled:
            raise NotImplementedError(
                "the changelog state backend is not supported: every streamlet checkpoint "
                'is a full snapshot (see the README\'s "How it maps to Flink" table)'
            )
        return self

    def is_changelog_state_backend_enabled(self) -> bool:
        return False

    def is_unaligned_checkpoints_enabled(self) -> bool:
        return self._checkpoint_config.is_unaligned_checkpoints_enabled()

    def is_force_unaligned_checkpoints(self) -> bool:
        return self._checkpoint_config.is_force_unaligned_checkpoints()

    def register_slot_sharing_group(self, slot_sharing_group: Any) -> StreamExecutionEnvironment:
        """Accepted, without effect (one process, no task slots; see
        ``DataStream.slot_sharing_group``)."""
        if not hasattr(slot_sharing_group, "get_name"):
            raise TypeError(
                f"register_slot_sharing_group() needs a SlotSharingGroup, got "
                f"{slot_sharing_group!r}"
            )
        return self

    def set_restart_strategy(
        self, restart_strategy: RestartStrategy | None
    ) -> StreamExecutionEnvironment:
        """Choose what happens after a failure (see :class:`RestartStrategies`).

        ``None`` (or ``RestartStrategies.fall_back_restart()``) means Flink's default: no
        restart without checkpointing, exponential delay with it.
        """
        if restart_strategy is not None and not isinstance(restart_strategy, RestartStrategy):
            raise TypeError(
                f"set_restart_strategy() needs a RestartStrategies.* strategy, got "
                f"{restart_strategy!r}"
            )
        self._restart_strategy = restart_strategy
        return self

    def get_restart_strategy(self) -> RestartStrategy | None:
        return self._restart_strategy

    # --- sources ---

    def from_source(
        self,
        source: Source[Any],
        watermark_strategy: WatermarkStrategy | None = None,
        source_name: str | None = None,
        type_info: Any = None,
    ) -> DataStream:
        """Read from a :class:`~streamlet.operators.sources.base.Source` (user-written or
        built in), PyFlink's signature.

        ``watermark_strategy`` assigns timestamps and makes watermarks right at the source
        (as ``assign_timestamps_and_watermarks`` right after it would); ``None`` or
        ``WatermarkStrategy.no_watermarks()`` without an assigner adds nothing, and records
        keep the timestamps their reader attached (a reader may return a
        :class:`~streamlet.operators.records.TimestampedBatch`).

        :raises TypeError: if ``source`` is not a Source or ``watermark_strategy`` not a
            WatermarkStrategy
        """
        if not isinstance(source, Source):
            raise TypeError(f"from_source() needs a Source instance, got {source!r}")
        if type_info is not None:
            check_type_info(type_info, "from_source(type_info)")
        if isinstance(watermark_strategy, str):
            raise TypeError(
                f"from_source(source, watermark_strategy, source_name): the second argument "
                f"is a WatermarkStrategy, got the str {watermark_strategy!r}; pass the name as "
                f"source_name={watermark_strategy!r}"
            )
        if watermark_strategy is not None and not isinstance(watermark_strategy, WatermarkStrategy):
            raise TypeError(
                f"from_source() needs a WatermarkStrategy or None as watermark_strategy, got "
                f"{watermark_strategy!r}"
            )
        node = self._graph.add_node(
            OPERATIONS["source"],
            source_name or source.name,
            args=(source,),
            parallelism_limit=source.max_parallelism,
            output_type=type_info,  # how print() shows the records
        )
        stream = DataStream(self, [(node, None, None)], node)
        if watermark_strategy is None or watermark_strategy.is_no_op():
            return stream
        assigner = stream.assign_timestamps_and_watermarks(watermark_strategy)
        watermarks = assigner._own_node("from_source")
        watermarks.name = f"{node.name}: Timestamps/Watermarks"
        # The watermark operator is part of the source: it runs at the source's parallelism
        # (fused with it), and the stream's settings (parallelism, uid, name) are the source's.
        watermarks.parallelism_of = node
        return DataStream(self, [(watermarks, None, None)], node)

    def add_source(
        self, source_func: Source[Any], source_name: str = "Custom Source", type_info: Any = None
    ) -> DataStream:
        """Read from ``source_func`` (PyFlink's legacy entry point; here it takes the same
        :class:`~streamlet.operators.sources.base.Source` as :meth:`from_source`).

        :raises TypeError: if ``source_func`` is not a Source (PyFlink's ``SourceFunction``
            wraps Java sources, which do not exist here)
        """
        if not isinstance(source_func, Source):
            raise TypeError(
                f"add_source() needs a streamlet Source, got {source_func!r}; PyFlink's "
                f"SourceFunction wraps a Java source, which streamlet cannot run: write a "
                f"Source (see the README) or use from_collection / read_text_file / "
                f"socket_text_stream"
            )
        return self.from_source(source_func, None, source_name, type_info)

    def from_collection(self, collection: Any, type_info: Any = None) -> DataStream:
        """Emit the elements of ``collection`` in order (non-parallel, replayable).

        With ``type_info`` (``Types.TUPLE([...])``, ``Types.ROW_NAMED([...], [...])``, ...)
        every element is checked against it now, and converted as PyFlink does: tuples
        become :class:`~streamlet.Row` objects for a ROW type, lists tuples for a TUPLE.

        :raises TypeError: naming the first element that does not fit ``type_info``
        """
        if type_info is not None:
            collection = conform_collection(list(collection), type_info)
        return self.from_source(CollectionSource(collection), type_info=type_info)

    def from_sequence(self, start: int, end: int) -> DataStream:
        """Emit the integers ``start..end`` inclusive, split over the subtasks (replayable)."""
        return self.from_source(SequenceSource(start, end))

    def read_text_file(self, file_path: str, charset_name: str = "UTF-8") -> DataStream:
        """Emit the lines of a text file (replayable: restores rewind by byte offset)."""
        from streamlet.operators.sources.text_file import TextFileSource

        return self.from_source(TextFileSource(file_path, encoding=charset_name))

    def socket_text_stream(
        self,
        hostname: str,
        port: int,
        delimiter: str = "\n",
        max_retry: int = 0,
        *,
        retry_delay_ms: int = 500,
        max_line_length: int = 1_048_576,
        encoding: str = "utf-8",
        errors: str = "strict",
        write_ahead_log: bool = False,
        max_buffered: int = 262_144,
        max_buffered_chars: int = 16 * 1024 * 1024,
    ) -> DataStream:
        """Read delimited text from a TCP server, connecting as a client (Flink's
        ``socketTextStream(hostname, port, delimiter, maxRetry)``; the options after those
        are keyword-only). At-most-once unless ``write_ahead_log=True``; see
        :class:`~streamlet.operators.sources.socket.SocketTextStreamSource` for the details.

        :param hostname: server host name or address
        :param port: server port, 0..65535
        :param delimiter: the line delimiter, a non-empty string; with ``"\\n"`` a trailing
            ``"\\r"`` is dropped too
        :param max_retry: reconnect attempts after the connection closes or fails to
            connect; 0 ends with the first connection, -1 retries forever
        :param retry_delay_ms: wait between reconnect attempts, in milliseconds
        :param max_line_length: longest accepted line in bytes (delimiter excluded); a
            longer one fails the job
        :param encoding: an ASCII-compatible text encoding
        :param errors: ``"strict"`` (undecodable bytes fail the job) or ``"replace"``
        :param write_ahead_log: log every line before the job sees it and replay it after a
            restore: exactly-once (the job needs a checkpoint directory)
        :param max_buffered: lines buffered before the source stops reading the socket
            (TCP backpressure on the server)
        :param max_buffered_chars: characters buffered before it stops reading
        :raises ValueError: if a parameter is out of range (the message names it)
        """
        from streamlet.operators.sources.socket import SocketTextStreamSource

        return self.from_source(
            SocketTextStreamSource(
                hostname,
                port,
                delimiter,
                max_retry,
                retry_delay_ms=retry_delay_ms,
                max_line_length=max_line_length,
                encoding=encoding,
                errors=errors,
                write_ahead_log=write_ahead_log,
                max_buffered=max_buffered,
                max_buffered_chars=max_buffered_chars,
            )
        )

    # --- execution ---

    def _batch_execution(self) -> bool:
        """Whether the job about to start runs in BATCH mode (see set_runtime_mode).

        :raises ValueError: for BATCH with an unbounded source, as Flink refuses it
        """
        mode = self._runtime_mode
        if mode is RuntimeExecutionMode.STREAMING:
            return False
        unbounded = [
            node.name
            for node in self._graph.nodes
            if node.source is not None and not node.source.bounded
        ]
        if mode is RuntimeExecutionMode.AUTOMATIC:
            return not unbounded
        if unbounded:
            raise ValueError(
                f"the job has unbounded sources ({', '.join(map(repr, unbounded))}) and the "
                f"runtime mode is BATCH, which needs bounded inputs: set the runtime mode to "
                f"STREAMING or AUTOMATIC"
            )
        return True

    def _apply_chaining(self) -> None:
        if not self._chaining:
            for node in self._graph.nodes:
                node.chaining = False

    def _job_config(self) -> JobConfig:
        batch = self._batch_execution()
        checkpoint_config = copy.copy(self._checkpoint_config)
        if batch and checkpoint_config.is_checkpointing_enabled():
            logger.warning(
                "BATCH execution takes no checkpoints (a failure restarts the job from its "
                "start): checkpointing is off for this job"
            )
            checkpoint_config.set_checkpoint_interval(None)
        self._apply_chaining()
        return JobConfig(
            parallelism=self._parallelism,
            max_parallelism=self._max_parallelism,
            batch_size=self._batch_size,
            buffer_timeout_ms=math.inf if self._buffer_timeout_ms < 0 else self._buffer_timeout_ms,
            channel_capacity=self._channel_capacity,
            checkpoint_config=checkpoint_config,
            restart_strategy=self._restart_strategy,
            operator_wrapper=self._operator_wrapper,
            clock=self._clock,
            auto_watermark_interval_ms=self._config.get_auto_watermark_interval(),
            batch_execution=batch,
            job_parameters=self._config.get_global_job_parameters(),
            metrics_enabled=self._metrics_enabled,
        )

    def _take_runner(
        self, job_name: str, restore: str | None, allow_non_restored_state: bool
    ) -> JobRunner:
        if not isinstance(job_name, str) or not job_name:
            raise ValueError(f"job name must be a non-empty string, got {job_name!r}")
        if restore is not None and (not isinstance(restore, str | os.PathLike) or not restore):
            raise ValueError(
                f'restore must be None, "latest" or the path of a checkpoint or savepoint, '
                f"got {restore!r}"
            )
        runner = JobRunner(
            self._graph,
            self._job_config(),
            job_name,
            restore=None if restore is None else os.fspath(restore),
            allow_non_restored_state=allow_non_restored_state,
        )
        self._graph = StreamGraph()
        return runner

    def execute(
        self,
        job_name: str = "Streamlet Job",
        *,
        restore: str | None = None,
        allow_non_restored_state: bool = False,
        web_ui: str | int | None = None,
        web_ui_token: str | None = None,
        web_ui_linger_s: float = 0.0,
        runner: str = "local",
        flink_address: str | None = None,
    ) -> Any:
        """Run the job until it ends; return its :class:`JobExecutionResult`.

        Which form runs where:

        * called where no event loop runs (a plain script, PyFlink's
          ``env.execute("job")``), it runs the job to completion in a new asyncio event loop
          (``anyio.run``) and returns the result;
        * called inside a running event loop (asyncio or trio), it returns an awaitable:
          ``result = await env.execute("job")`` runs the job in the calling task.

        Cancelling the calling task cancels the job cleanly.

        :param restore: ``None`` (fresh start), ``"latest"`` (the newest valid completed
            checkpoint of this job name, or a fresh start if there is none) or the path of
            a checkpoint (``.../chk-N``) or savepoint to restore
        :param allow_non_restored_state: drop state of operator uids the job no longer has
        :param web_ui: serve the dashboard, Flink's REST API and Prometheus metrics at
            ``[HOST:]PORT`` while the job runs (the host defaults to 127.0.0.1; needs the
            ``streamlet[web]`` extra and asyncio); the URL is printed to stderr
        :param web_ui_token: with ``web_ui``, actions (savepoint, stop, cancel) need
            ``Authorization: Bearer <token>``
        :param web_ui_linger_s: with ``web_ui``, keep serving this long after the job ended
        :param runner: ``"local"`` (streamlet's runtime) or ``"flink"``: translate the job
            and run it on Apache Flink (needs the ``streamlet[flink]`` extra and Java); it
            returns a :class:`~streamlet.flink.translate.FlinkJobResult`
        :param flink_address: with ``runner="flink"``, the ``host:port`` of a remote
            cluster's REST endpoint (default: Flink's local mini-cluster)
        :raises JobExecutionError: if a subtask failed beyond the restart strategy;
            ``__cause__`` is the user's error
        :raises ImportError: for ``web_ui`` without the ``web`` extra installed
        :raises FlinkTranslationError: with ``runner="flink"``, before any JVM starts, for
            a job with parts that do not translate (all listed)
        """
        if runner != "local" or flink_address is not None:
            return self._execute_on_flink(
                job_name,
                runner,
                flink_address,
                restore,
                web_ui,
                allow_non_restored_state=allow_non_restored_state,
            )
        if web_ui is None:
            if web_ui_token is not None:
                raise ValueError("web_ui_token needs web_ui (the address to serve it at)")
            job_runner = self._take_runner(job_name, restore, allow_non_restored_state)
            if event_loop_running():
                return job_runner.run()
            return anyio.run(job_runner.run)
        from streamlet.web import parse_address, run_with_web_ui

        parse_address(web_ui)  # a bad address fails before the job starts
        job_runner = self._take_runner(job_name, restore, allow_non_restored_state)
        run = partial(
            run_with_web_ui, job_runner, web_ui, token=web_ui_token, linger_s=web_ui_linger_s
        )
        if event_loop_running():
            return run()
        return anyio.run(run)

    def _execute_on_flink(
        self,
        job_name: str,
        runner: str,
        flink_address: str | None,
        restore: str | None = None,
        web_ui: str | int | None = None,
        *,
        allow_non_restored_state: bool = False,
        detached: bool = False,
    ) -> Any:
        """``execute(runner="flink")``: the sync form runs the job; inside an event loop, an
        awaitable that runs it in a worker thread (the JVM calls block). ``restore`` is
        the path of a Flink savepoint or retained checkpoint; ``detached`` returns the
        job's :class:`~streamlet.flink.cluster.FlinkJobClient` once it is submitted."""
        if runner != "flink":
            raise ValueError(f'runner must be "local" or "flink", got {runner!r}')
        if web_ui is not None:
            raise ValueError(
                "runner='flink' does not take web_ui= (not translated): watch the job in "
                "Flink's web UI"
            )
        if restore is not None and (
            not isinstance(restore, str | os.PathLike) or restore in ("", "latest")
        ):
            raise ValueError(
                "runner='flink' restores from the path of a Flink savepoint or retained "
                f"checkpoint (what trigger_savepoint returned), got {restore!r}: Flink keeps "
                f"no list of a job's checkpoints by name for 'latest'"
            )
        if not isinstance(job_name, str) or not job_name:
            raise ValueError(f"job name must be a non-empty string, got {job_name!r}")
        from streamlet.flink import check_translatable, run_on_flink
        from streamlet.flink.refusal import FAULT_INJECTION

        self._apply_chaining()
        graph, self._graph = self._graph, StreamGraph()
        # Refused here, before the JVM starts.
        check_translatable(graph, [FAULT_INJECTION] if self._operator_wrapper else [])
        interval = self._checkpoint_config.get_checkpoint_interval()
        run = partial(
            run_on_flink,
            graph,
            job_name,
            parallelism=self._parallelism,
            max_parallelism=self._max_parallelism,
            checkpoint_interval_ms=None if interval < 0 else interval,
            restart_strategy=self._restart_strategy,
            address=flink_address,
            restore=None if restore is None else os.fspath(restore),
            allow_non_restored_state=allow_non_restored_state,
            detached=detached,
            savepoint_directory=self._checkpoint_config.get_default_savepoint_directory(),
        )
        if event_loop_running():
            return anyio.to_thread.run_sync(run)
        return run()

    def execute_async(
        self,
        job_name: str = "Streamlet Job",
        *,
        restore: str | None = None,
        allow_non_restored_state: bool = False,
        task_group: Any = None,
        runner: str = "local",
        flink_address: str | None = None,
    ) -> Any:
        """Start the job in the background and return its client.

        Which form runs where:

        * inside a running event loop (asyncio or trio) it returns an awaitable:
          ``client = await env.execute_async("job")`` gives a :class:`JobClient` whose job
          runs on that loop (in ``task_group`` if given);
        * where no event loop runs (a plain script, PyFlink's form) it returns at once a
          :class:`~streamlet.job.threaded.ThreadedJobClient`: the job runs on an event loop
          of its own in a background (daemon) thread, and the client's methods block and
          may be called from any thread (``wait()``, ``cancel()``, ``get_job_status()``).

        With ``runner="flink"`` and ``flink_address`` the job is submitted to that Flink
        cluster and the client is a :class:`~streamlet.flink.cluster.FlinkJobClient`, which
        controls it through Flink's REST API (its methods block; inside an event loop the
        awaitable gives it once the job is submitted). ``restore`` is then the path of a
        Flink savepoint.

        :param task_group: run the job in this anyio task group (async form only)
        """
        if runner != "local" or flink_address is not None:
            if flink_address is None:
                raise ValueError(
                    "execute_async(runner='flink') needs flink_address, the REST address "
                    "of a Flink cluster; on Flink's local mini-cluster use execute()"
                )
            return self._execute_on_flink(
                job_name,
                runner,
                flink_address,
                restore,
                allow_non_restored_state=allow_non_restored_state,
                detached=True,
            )
        job_runner = self._take_runner(job_name, restore, allow_non_restored_state)
        if not event_loop_running():
            if task_group is not None:
                raise ValueError(
                    "execute_async(task_group=...) needs a running event loop (the group's); "
                    "await it inside an async program"
                )
            return ThreadedJobClient(job_runner)
        return _started(JobClient(job_runner), task_group)

    def get_execution_plan(self) -> str:
        """Describe the chains, parallelisms and edges the job would run with, as JSON."""
        self._apply_chaining()
        plan = build_plan(self._graph, self._parallelism, self._max_parallelism)
        chains = []
        for chain in plan.chains:
            chains.append(
                {
                    "chain": chain.index,
                    "name": chain.name,
                    "parallelism": chain.parallelism,
                    "operators": [_plan_operator(n) for n in chain.nodes],
                    "inputs": [
                        {
                            "from": edge.upstream.name,
                            "partitioner": plan.partitioner(edge).name,
                        }
                        for edge in chain.input_edges
                    ],
                }
            )
        return json.dumps({"chains": chains}, indent=2)


def _plan_operator(node: StreamNode) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": node.name, "uid": node.operator_uid}
    if node.description is not None:
        entry["description"] = node.description
    return entry


async def _started(client: JobClient, task_group: Any) -> JobClient:
    start_background(client._main, task_group)
    return client
