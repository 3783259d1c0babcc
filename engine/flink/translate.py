"""Translate a streamlet logical graph into a PyFlink DataStream job and run it.

Only :func:`run_on_flink` touches PyFlink, and it imports it on call: importing
``streamlet`` (or this module) never loads ``pyflink``. The job is checked by
:func:`~streamlet.flink.refusal.check_translatable` first, so an untranslatable job is
refused before a JVM starts.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from streamlet.errors import JobExecutionError
from streamlet.flink.refusal import check_translatable
from streamlet.flink.result import FlinkJobResult
from streamlet.graph.partitioners import (
    BroadcastPartitioner,
    CustomPartitioner,
    ForwardPartitioner,
    GlobalPartitioner,
    KeyGroupPartitioner,
    Partitioner,
    RebalancePartitioner,
    RescalePartitioner,
    ShufflePartitioner,
)
from streamlet.graph.stream_graph import StreamGraph, StreamNode
from streamlet.job.restart import (
    ExponentialDelayRestartStrategy,
    FailureRateRestartStrategy,
    FixedDelayRestartStrategy,
    NoRestartStrategy,
    RestartStrategy,
)
from streamlet.operators.connected import KeySelectors
from streamlet.operators.derived import fresh_copy
from streamlet.operators.functions import FUNCTION_METHODS, FunctionAdapter
from streamlet.operators.sinks.file import FileSink as StreamletFileSink
from streamlet.operators.sinks.file_config import DefaultRollingPolicy
from streamlet.operators.sources.collection import CollectionSource, SequenceSource
from streamlet.operators.sources.file_source import FileSource as StreamletFileSource
from streamlet.operators.sources.socket import SocketTextStreamSource
from streamlet.operators.sources.text_file import TextFileSource

__all__ = ["FlinkJobResult", "flink_configuration", "run_on_flink"]


def _ms(value: float) -> str:
    return f"{int(value)} ms"


def _restart_keys(restart: RestartStrategy | None) -> dict[str, str]:
    """Flink's ``restart-strategy.*`` keys for one of streamlet's restart strategies."""
    if restart is None or isinstance(restart, NoRestartStrategy):
        return {}
    if isinstance(restart, FixedDelayRestartStrategy):
        return {
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": str(restart.restart_attempts),
            "restart-strategy.fixed-delay.delay": _ms(restart.delay_ms),
        }
    if isinstance(restart, ExponentialDelayRestartStrategy):
        prefix = "restart-strategy.exponential-delay."
        keys = {
            "restart-strategy.type": "exponential-delay",
            prefix + "initial-backoff": _ms(restart.initial_backoff_ms),
            prefix + "max-backoff": _ms(restart.max_backoff_ms),
            prefix + "backoff-multiplier": str(restart.backoff_multiplier),
            prefix + "reset-backoff-threshold": _ms(restart.reset_backoff_threshold_ms),
            prefix + "jitter-factor": str(restart.jitter_factor),
        }
        attempts = restart.attempts_before_reset_backoff
        if math.isfinite(attempts):  # unbounded is Flink's default (Integer.MAX_VALUE)
            keys[prefix + "attempts-before-reset-backoff"] = str(int(attempts))
        return keys
    if isinstance(restart, FailureRateRestartStrategy):
        prefix = "restart-strategy.failure-rate."
        return {
            "restart-strategy.type": "failure-rate",
            prefix + "max-failures-per-interval": str(restart.max_failures_per_interval),
            prefix + "failure-rate-interval": _ms(restart.failure_rate_interval_ms),
            prefix + "delay": _ms(restart.delay_ms),
        }
    raise ValueError(
        f"the Flink runner cannot pass on the restart strategy {type(restart).__name__}: "
        "use one of RestartStrategies' (no_restart, fixed_delay_restart, "
        "exponential_delay_restart, failure_rate_restart)"
    )


def flink_configuration(
    parallelism: int,
    max_parallelism: int,
    checkpoint_interval_ms: int | None,
    restart: RestartStrategy | None,
    address: str | None,
) -> dict[str, str]:
    """Flink configuration keys for the job's settings.

    Restart strategies default to ``none`` so a task failure reaches the caller rather than
    restarting forever; each of streamlet's strategies maps to Flink's of the same name.
    """
    conf = {
        "parallelism.default": str(parallelism),
        "pipeline.max-parallelism": str(max_parallelism),
        # The Python workers must run this interpreter (with streamlet installed).
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "restart-strategy.type": "none",
    }
    if checkpoint_interval_ms is not None:
        conf["execution.checkpointing.interval"] = f"{checkpoint_interval_ms} ms"
    conf.update(_restart_keys(restart))
    if address is not None:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f'flink_address must be "host:port", got {address!r}')
        conf["execution.target"] = "remote"
        conf["rest.address"] = host
        conf["rest.port"] = port
    else:
        # A local job's workers run in processes of their own (see _environment): they
        # import the job's modules from this interpreter's import path.
        conf["python.pythonpath"] = local_python_path()
    return conf


def local_python_path() -> str:
    """This interpreter's import path, for the Python workers of a local job: every module
    the caller imports by name (its script's directory, the current directory, an
    editable install) is found by the workers too."""
    entries = [os.path.abspath(entry or os.curdir) for entry in sys.path]
    return os.pathsep.join(dict.fromkeys(e for e in entries if os.path.exists(e)))


def _partition(ds: Any, partitioner: Partitioner | None) -> Any:
    """Apply the edge's partitioner to the upstream PyFlink stream."""
    if isinstance(partitioner, KeyGroupPartitioner):
        return ds  # key_by: the keyed node applies Flink's key_by itself
    if partitioner is None or isinstance(partitioner, ForwardPartitioner):
        return ds if partitioner is None else ds.forward()
    methods: list[tuple[type[Partitioner], str]] = [
        (RebalancePartitioner, "rebalance"),
        (RescalePartitioner, "rescale"),
        (ShufflePartitioner, "shuffle"),
        (BroadcastPartitioner, "broadcast"),
        (GlobalPartitioner, "global"),
    ]
    for cls, method in methods:
        if isinstance(partitioner, cls):
            return getattr(ds, method)()
    if isinstance(partitioner, CustomPartitioner):
        # PyFlink's own: the user's partition(key, n) and key selector, called in Python.
        return ds.partition_custom(partitioner.partition, partitioner.key_selector)
    raise ValueError(f"the Flink runner cannot translate the partitioner {partitioner!r}")


def _source_parallelism(node: StreamNode, default: int) -> Any:
    """A function that sets a source node's parallelism on a PyFlink stream (the identity
    when the source runs at the job's default)."""
    wanted = node.resolved_parallelism(default)
    if wanted == default and node.parallelism is None:
        return lambda ds: ds
    return lambda ds: ds.set_parallelism(wanted)


def _named(ds: Any, node: StreamNode) -> Any:
    ds = ds.name(node.name).uid(node.operator_uid)
    if node.parallelism is not None:
        ds = ds.set_parallelism(node.parallelism)
    return ds


#: PyFlink's switch between Python workers in this process ('loopback', its default for
#: a local mini-cluster) and workers in processes of their own ('process').
_WORKER_MODE_VARIABLE = "_python_worker_execution_mode"


def use_worker_processes() -> None:
    """Have local PyFlink jobs run their Python workers in processes of their own, unless
    the caller chose PyFlink's mode itself (see :func:`_environment` for why). PyFlink
    reads the switch from the environment when a job starts, so it holds for every local
    job of this process, hand-written PyFlink ones too."""
    os.environ.setdefault(_WORKER_MODE_VARIABLE, "process")


def _environment(env_class: Any, configuration: Any, *, remote: bool) -> Any:
    """PyFlink's environment for ``configuration``.

    Not ``get_execution_environment`` for a remote cluster: outside ``flink run`` it always
    builds a local environment, which sets ``execution.target`` back to local and starts a
    mini-cluster on the cluster's REST port. Java's constructor keeps the configured target.

    A local job's Python workers run in processes of their own, as on a cluster, unless
    the caller chose PyFlink's mode itself. In PyFlink's default loopback mode they run in
    this process, and every job leaves behind threads that never end (each Python operator's
    output stream starts a flusher that wakes every second and is never stopped: ~9
    threads for a two-operator job). After a few dozen jobs the hundreds of threads that
    wake for the GIL slowed the event loop of everything else in the process twenty-fold
    (streamlet's own jobs, the caller's application). A worker process ends with its job.
    """
    if not remote:
        # Loopback mode also changes this process's working directory and environment
        # while a job runs, and removes the root logger's handlers.
        use_worker_processes()
        return env_class.get_execution_environment(configuration)
    from pyflink.java_gateway import get_gateway

    jvm_env = get_gateway().jvm.org.apache.flink.streaming.api.environment
    return env_class(jvm_env.StreamExecutionEnvironment(configuration._j_configuration))


def run_on_flink(
    graph: StreamGraph,
    job_name: str,
    *,
    parallelism: int,
    max_parallelism: int,
    checkpoint_interval_ms: int | None = None,
    restart_strategy: Any = None,
    address: str | None = None,
    restore: str | None = None,
    allow_non_restored_state: bool = False,
    detached: bool = False,
    savepoint_directory: str | None = None,
) -> Any:
    """Run ``graph`` on Flink (the local mini-cluster, or the cluster at ``address``);
    return its :class:`FlinkJobResult`, or with ``detached`` (a cluster only) at once its
    :class:`~streamlet.flink.cluster.FlinkJobClient`.

    :param restore: the path of a savepoint or retained checkpoint to start from (Flink's
        ``execution.state-recovery.path``, formerly ``execution.savepoint.path``)
    :param allow_non_restored_state: skip state of operators the job no longer has
    :param savepoint_directory: the client's default savepoint directory
    :raises FlinkTranslationError: before any JVM starts, for nodes that do not translate
    :raises ImportError: without the ``streamlet[flink]`` extra
    :raises RuntimeError: if the Flink job failed (the Java error's message included); on
        a cluster a :class:`~streamlet.flink.cluster.FlinkJobError` with Flink's root
        exception
    """
    check_translatable(graph)
    conf = flink_configuration(
        parallelism, max_parallelism, checkpoint_interval_ms, restart_strategy, address
    )
    if restore is not None:
        conf["execution.state-recovery.path"] = restore
        if allow_non_restored_state:
            conf["execution.state-recovery.ignore-unclaimed-state"] = "true"
    if detached and address is None:
        raise ValueError("a detached Flink job needs flink_address (a cluster's REST address)")
    try:
        from pyflink.common import Configuration, Types
        from pyflink.common.watermark_strategy import WatermarkStrategy
        from pyflink.datastream import StreamExecutionEnvironment
        from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
        from pyflink.datastream.connectors.number_seq import NumberSequenceSource
    except ImportError as exc:
        raise ImportError(
            "runner='flink' needs PyFlink: pip install 'streamlet[flink]' (and Java 11+)"
        ) from exc

    from streamlet.flink import _functions as fns

    if address is not None:
        from streamlet.flink.cluster import python_jar_keys

        conf.update(python_jar_keys(address))
    configuration = Configuration()
    for key, value in conf.items():
        configuration.set_string(key, value)
    env = _environment(StreamExecutionEnvironment, configuration, remote=address is not None)
    pickled = Types.PICKLED_BYTE_ARRAY()
    streams: dict[int, Any] = {}
    collects: list[Any] = []
    callbacks: list[tuple[Any, StreamNode, Callable[[Any], Any]]] = []
    for node in graph.nodes:
        api = node.operation.api
        if node.kind == "source":
            source = node.source
            # The source's own parallelism (set_parallelism, or its limit): records of a
            # one-subtask source keep their order downstream, as on streamlet's runtime.
            sized = _source_parallelism(node, parallelism)
            if isinstance(source, CollectionSource | SequenceSource):
                # Not PyFlink's from_collection: it re-reads from the start after a
                # failover. A sequence source checkpoints its position; a collection is
                # read by index from that sequence.
                if isinstance(source, SequenceSource):
                    seq = NumberSequenceSource(source.start, source.end)
                    ds = sized(env.from_source(seq, WatermarkStrategy.no_watermarks(), node.name))
                    ds = sized(ds.map(int, output_type=pickled))
                else:
                    data = list(source._data)
                    seq = NumberSequenceSource(0, len(data) - 1) if data else None
                    if seq is None:
                        raise ValueError(
                            f"{node.name!r}: the Flink runner cannot read an empty collection"
                        )
                    ds = sized(env.from_source(seq, WatermarkStrategy.no_watermarks(), node.name))
                    ds = sized(ds.map(fns.ByIndex(data), output_type=pickled))
            elif isinstance(source, SocketTextStreamSource):
                ds = _socket_text_stream(env, source, pickled)
            else:
                # read_text_file and FileSource.for_record_stream_format: Flink's FileSource
                # (its enumerator skips hidden files, as streamlet's does).
                if isinstance(source, StreamletFileSource):
                    fmt = StreamFormat.text_line_format(source.stream_format.charset_name)
                    paths = source.paths
                else:
                    assert isinstance(source, TextFileSource)
                    fmt = StreamFormat.text_line_format(source.encoding)
                    paths = [source.path]
                file_source = FileSource.for_record_stream_format(fmt, *paths).build()
                ds = sized(
                    env.from_source(file_source, WatermarkStrategy.no_watermarks(), node.name)
                )
            streams[node.id] = ds.uid(node.operator_uid)
            continue
        if node.operation.inputs == 2:
            first = _input(node, 0, streams, fns, pickled)
            second = _input(node, 1, streams, fns, pickled)
            two = _translate_two_inputs(first, second, node, fns, pickled)
            streams[node.id] = _named(two, node)
            continue
        upstream = _input(node, 0, streams, fns, pickled)
        if node.keyed:
            upstream = upstream.key_by(fns.NormalisedKey(node.key_selector), key_type=pickled)
        if api == "print":
            sink = upstream.print()
            sink.name(node.name).uid(node.operator_uid)
            continue
        if api == "sink_to":
            _file_sink(upstream, node, fns)
            continue
        if api == "execute_and_collect":
            # Not PyFlink's execute_and_collect(), which runs only this sink: collect
            # asynchronously and run the whole job, so the job's other sinks run too.
            collects.append(upstream)
            continue
        if api == "add_sink":
            # PyFlink has no Python sink function: the records are collected to this
            # process and the function is called here, once per record, as they come.
            # Its own copy, as a subtask on streamlet gets (function objects deep-copied).
            fn = fresh_copy(node.function)
            adapter = FunctionAdapter(fn, FUNCTION_METHODS["add_sink"], "add_sink")
            callbacks.append((upstream, node, adapter.call))
            continue
        streams[node.id] = _named(_translate(upstream, node, fns, pickled), node)

    iterators = [fns.collect_async(ds, pickled) for ds in collects]
    sink_iterators = [fns.collect_async(ds, pickled) for ds, _, _ in callbacks]
    sinks = [(it, n, call) for it, (_, n, call) in zip(sink_iterators, callbacks, strict=True)]
    if address is not None:
        from streamlet.flink.cluster import run_remote

        if detached and sinks:
            raise ValueError(
                f"{sinks[0][1].name!r}: an add_sink() function runs in the calling process on "
                f"the records Flink collects to it, so a job with one cannot be submitted "
                f"detached (execute_async); use execute(), or print() or a FileSink"
            )
        try:
            ran = run_remote(
                env,
                job_name,
                address,
                iterators,
                detached=detached,
                savepoint_directory=savepoint_directory,
                drain=lambda client: _consume(job_name, client, iterators, sinks),
            )
        except BaseException:
            for it in iterators + sink_iterators:  # a fetcher whose job never started
                with contextlib.suppress(Exception):  # fails to close
                    it.close()
            raise
        for it in iterators + sink_iterators:
            it.close()
        return ran
    try:
        if iterators or sink_iterators:
            client = env.execute_async(job_name)
            collected = _consume(job_name, client, iterators, sinks)
            result = client.get_job_execution_result().result()
        else:
            result = env.execute(job_name)
            collected = []
        job_id = str(result.get_job_id())
        # Flink's net runtime (as a cluster's REST duration): without the mini-cluster's
        # start, which the wall time of this call includes.
        runtime_ms = float(result.get_net_runtime())
    except JobExecutionError:
        raise  # an add_sink() function failed here: _consume named it
    except Exception as exc:
        raise RuntimeError(f"the Flink job {job_name!r} failed: {exc}") from exc
    finally:
        for it in iterators + sink_iterators:
            try:
                it.close()
            except Exception:  # a job that failed to start has no client to close with
                pass
    return FlinkJobResult(job_id, job_name, runtime_ms, collected)


def _consume(
    job_name: str,
    client: Any,
    collects: list[Any],
    sinks: list[tuple[Any, StreamNode, Callable[[Any], Any]]],
) -> list[list[Any]]:
    """Read every collect iterator at once (one thread each: Flink's collect sinks stall
    the job when one of them is not read), into lists for ``execute_and_collect`` and into
    the ``add_sink`` functions; return the lists. A sink function that raises cancels the
    job, and its error is raised here, naming the sink."""
    lists: list[list[Any]] = [[] for _ in collects]
    failures: list[tuple[StreamNode, BaseException]] = []

    read_errors: list[BaseException] = []

    def read_list(iterator: Any, into: list[Any]) -> None:
        try:
            into.extend(iterator)
        except BaseException as exc:  # raised below, as list(iterator) would have
            read_errors.append(exc)

    def read_sink(iterator: Any, node: StreamNode, call: Callable[[Any], Any]) -> None:
        try:
            for record in iterator:
                call(record)
        except BaseException as exc:
            failures.append((node, exc))
            try:
                client.cancel().result()
            except Exception:  # already ending: the sink's error is what is reported
                pass

    threads = [
        threading.Thread(target=read_list, args=(it, into), daemon=True)
        for it, into in zip(collects, lists, strict=True)
    ] + [threading.Thread(target=read_sink, args=sink, daemon=True) for sink in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        node, exc = failures[0]
        raise JobExecutionError(
            node.name,
            node.operator_uid,
            0,
            1,
            job_name=job_name,
            detail=(
                f"its add_sink() function, called in this process on the records of the "
                f"Flink job, raised {type(exc).__name__}: {exc}"
            ),
        ) from exc
    if read_errors:
        raise read_errors[0]
    return lists


def _socket_text_stream(env: Any, source: SocketTextStreamSource, pickled: Any) -> Any:
    """Flink's own ``socketTextStream`` (PyFlink's Python API lacks it): a non-parallel
    source, at-most-once after a failover as in Flink, which ends when the connection
    closes and ``max_retry`` reconnects failed. Its Java strings become pickled ``str``s."""
    from pyflink.datastream.data_stream import DataStream

    j_env = env._j_stream_execution_environment
    j_stream = j_env.socketTextStream(source.host, source.port, source.delimiter, source.max_retry)
    return DataStream(j_stream).map(str, output_type=pickled)


def _input(node: StreamNode, index: int, streams: dict[int, Any], fns: Any, pickled: Any) -> Any:
    """The PyFlink stream of input ``index`` of ``node``: the union of its edges (streamlet
    has no union node), each from its side output if it carries one, partitioned as the
    edge says. A broadcast state's edges are left unpartitioned: the broadcast node
    broadcasts them with its descriptors."""
    inputs = []
    for edge in node.inputs:
        if edge.input_index != index:
            continue
        upstream = streams[edge.upstream.id]
        if edge.output_tag is not None:
            tag = fns.FlinkOutputTag(edge.output_tag, pickled)
            upstream = upstream.get_side_output(tag)
        if node.operation.api == "broadcast_process" and index == 1:
            inputs.append(upstream)
        elif isinstance(edge.partitioner, KeyGroupPartitioner) and node.operation.inputs == 2:
            inputs.append(upstream)  # keyed (or hash-partitioned) by the two-input node
        else:
            inputs.append(_partition(upstream, edge.partitioner))
    return inputs[0].union(*inputs[1:]) if len(inputs) > 1 else inputs[0]


def _side_tags(node: StreamNode) -> list[str]:
    return sorted({e.output_tag for e in node.outputs if e.output_tag is not None})


def _hash_partitioned(ds: Any, node: StreamNode, index: int, fns: Any, pickled: Any) -> Any:
    """Input ``index`` of a two-input node that is not keyed: hash-partitioned by its key
    selector if it was keyed (``a.key_by(k).connect(b)``), else as it is."""
    for edge in node.inputs:
        if edge.input_index == index and isinstance(edge.partitioner, KeyGroupPartitioner):
            # Flink's key_by and a pass-through map at the node's parallelism: the map's
            # subtasks forward to the node's (PyFlink's partition_custom cannot feed a
            # two-input operator: its Python operator configuration fails).
            selector = fns.NormalisedKey(edge.partitioner.key_selector)
            keyed = ds.key_by(selector, key_type=pickled).map(fns.Identity(), output_type=pickled)
            keyed = keyed.name(f"{node.name}: key_by input {index + 1}")
            keyed = keyed.uid(f"{node.operator_uid}-key-by-{index + 1}")
            if node.parallelism is not None:
                keyed = keyed.set_parallelism(node.parallelism)
            return keyed.forward()
    return ds


def _translate_two_inputs(first: Any, second: Any, node: StreamNode, fns: Any, pickled: Any) -> Any:
    """``connect(...).map/flat_map/process`` and the broadcast state pattern, as Flink's
    (keyed) co-process and (keyed) broadcast process functions."""
    api = node.operation.api
    tags = _side_tags(node)
    if api == "broadcast_process":
        names = [d.name for d in node.args[0]]
        descriptors = [fns.broadcast_descriptor(name) for name in names]
        rules = second.broadcast(*descriptors)
        if node.keyed:
            events = first.key_by(fns.NormalisedKey(node.key_selector), key_type=pickled)
            function: Any = fns.KeyedBroadcast(node.function, names, tags)
        else:
            events = first
            function = fns.Broadcast(node.function, names, tags)
        return events.connect(rules).process(function, output_type=pickled)
    if node.keyed:
        selectors = node.key_selector
        assert isinstance(selectors, KeySelectors)
        connected = first.key_by(fns.NormalisedKey(selectors.first), key_type=pickled).connect(
            second.key_by(fns.NormalisedKey(selectors.second), key_type=pickled)
        )
        return connected.process(fns.KeyedCo(node.function, api, tags), output_type=pickled)
    first = _hash_partitioned(first, node, 0, fns, pickled)
    second = _hash_partitioned(second, node, 1, fns, pickled)
    return first.connect(second).process(fns.Co(node.function, api, tags), output_type=pickled)


def _file_sink(upstream: Any, node: StreamNode, fns: Any) -> None:
    """streamlet's FileSink as Flink's row-format FileSink: each record encoded to its line
    by the sink's encoder (in Python), written by Flink's string encoder (in the sink's
    encoding, which Java must know by that name) into part files
    ``<prefix>-<uuid>-<counter><suffix>`` (a uuid per writer) directly in the directory
    (the base path bucket assigner). In-progress and pending files are dot-files until their
    checkpoint commits them, so :func:`~streamlet.read_committed` reads only committed
    data. The rolling policy: streamlet's default policy as Flink's of the same limits;
    otherwise (streamlet rolls at every checkpoint) Flink's on-checkpoint policy."""
    from pyflink.common import Types
    from pyflink.common.serialization import Encoder
    from pyflink.datastream.connectors.file_system import (
        BucketAssigner,
        FileSink,
        OutputFileConfig,
        RollingPolicy,
    )

    sink = node.args[0]
    assert isinstance(sink, StreamletFileSink)
    lines = upstream.map(fns.Encode(sink.encoder), output_type=Types.STRING())
    lines = lines.name(f"{node.name}: encode").uid(f"{node.operator_uid}-encode")
    if node.parallelism is not None:
        lines = lines.set_parallelism(node.parallelism)
    config = (
        OutputFileConfig.builder()
        .with_part_prefix(sink.prefix)
        .with_part_suffix(sink.suffix)
        .build()
    )
    policy = sink.rolling_policy
    if isinstance(policy, DefaultRollingPolicy):
        assert policy.part_size is not None and policy.rollover_interval_ms is not None
        assert policy.inactivity_interval_ms is not None
        rolling: Any = RollingPolicy.default_rolling_policy(
            policy.part_size, policy.rollover_interval_ms, policy.inactivity_interval_ms
        )
    else:
        rolling = RollingPolicy.on_checkpoint_rolling_policy()
    flink_sink = (
        FileSink.for_row_format(str(sink.directory), Encoder.simple_string_encoder(sink.encoding))
        .with_output_file_config(config)
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_rolling_policy(rolling)
        .build()
    )
    _named(lines.sink_to(flink_sink), node)


def _translate(upstream: Any, node: StreamNode, fns: Any, pickled: Any) -> Any:
    api = node.operation.api
    fn = node.function
    if api == "map":
        return upstream.map(fns.Map(fn), output_type=pickled)
    if api == "flat_map":
        return upstream.flat_map(fns.FlatMap(fn), output_type=pickled)
    if api == "filter":
        return upstream.filter(fns.Filter(fn))
    if api == "assign_timestamps_and_watermarks":
        return upstream.assign_timestamps_and_watermarks(fns.watermark_strategy(node.args[0]))
    if api == "process":
        tags = _side_tags(node)
        process = fns.KeyedProcess(fn, tags) if node.keyed else fns.Process(fn, tags)
        return upstream.process(process, output_type=pickled)
    if api == "reduce":
        return upstream.process(fns.Reduce(fn, f"{node.operator_uid}-reduce"), output_type=pickled)
    if api in ("sum", "min", "max", "min_by", "max_by"):
        reduce = fns.field_reduce(api, node.args[0])
        return upstream.process(
            fns.Reduce(reduce, f"{node.operator_uid}-{api}"), output_type=pickled
        )
    if api == "window":
        return fns.windowed(upstream, node.args[0], pickled)
    raise AssertionError(f"untranslated operation {api!r} passed check_translatable")
