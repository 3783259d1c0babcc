"""Translate a streamlet logical graph into a PyFlink DataStream job and run it.

Only :func:`run_on_flink` touches PyFlink, and it imports it on call: importing
``streamlet`` (or this module) never loads ``pyflink``. The job is checked by
:func:`~streamlet.flink.refusal.check_translatable` first, so an untranslatable job is
refused before a JVM starts.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any

from streamlet.flink.refusal import check_translatable
from streamlet.flink.result import FlinkJobResult
from streamlet.graph.partitioners import (
    BroadcastPartitioner,
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
from streamlet.operators.sources.collection import CollectionSource, SequenceSource
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
    return conf


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
    raise ValueError(f"the Flink runner cannot translate the partitioner {partitioner!r}")


def _named(ds: Any, node: StreamNode) -> Any:
    ds = ds.name(node.name).uid(node.operator_uid)
    if node.parallelism is not None:
        ds = ds.set_parallelism(node.parallelism)
    return ds


def _environment(env_class: Any, configuration: Any, *, remote: bool) -> Any:
    """PyFlink's environment for ``configuration``.

    Not ``get_execution_environment`` for a remote cluster: outside ``flink run`` it always
    builds a local environment, which sets ``execution.target`` back to local and starts a
    mini-cluster on the cluster's REST port. Java's constructor keeps the configured target.
    """
    if not remote:
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
    for node in graph.nodes:
        api = node.operation.api
        if node.kind == "source":
            source = node.source
            if isinstance(source, CollectionSource | SequenceSource):
                # Not PyFlink's from_collection: it re-reads from the start after a
                # failover. A sequence source checkpoints its position; a collection is
                # read by index from that sequence.
                if isinstance(source, SequenceSource):
                    seq = NumberSequenceSource(source.start, source.end)
                    ds = env.from_source(seq, WatermarkStrategy.no_watermarks(), node.name)
                    ds = ds.map(int, output_type=pickled)
                else:
                    data = list(source._data)
                    seq = NumberSequenceSource(0, len(data) - 1) if data else None
                    if seq is None:
                        raise ValueError(
                            f"{node.name!r}: the Flink runner cannot read an empty collection"
                        )
                    ds = env.from_source(seq, WatermarkStrategy.no_watermarks(), node.name)
                    ds = ds.map(fns.ByIndex(data), output_type=pickled)
            else:
                assert isinstance(source, TextFileSource)
                fmt = StreamFormat.text_line_format(source.encoding)
                file_source = FileSource.for_record_stream_format(fmt, source.path).build()
                ds = env.from_source(file_source, WatermarkStrategy.no_watermarks(), node.name)
            streams[node.id] = ds.uid(node.operator_uid)
            continue
        inputs = []
        for edge in node.inputs:
            upstream = streams[edge.upstream.id]
            if edge.output_tag is not None:
                tag = fns.FlinkOutputTag(edge.output_tag, pickled)
                upstream = upstream.get_side_output(tag)
            inputs.append(_partition(upstream, edge.partitioner))
        # A node with several inputs is fed by their union (streamlet has no union node).
        upstream = inputs[0].union(*inputs[1:]) if len(inputs) > 1 else inputs[0]
        if node.keyed:
            upstream = upstream.key_by(fns.NormalisedKey(node.key_selector), key_type=pickled)
        if api == "print":
            sink = upstream.print()
            sink.name(node.name).uid(node.operator_uid)
            continue
        if api == "execute_and_collect":
            # Not PyFlink's execute_and_collect(), which runs only this sink: collect
            # asynchronously and run the whole job, so the job's other sinks run too.
            collects.append(upstream)
            continue
        streams[node.id] = _named(_translate(upstream, node, fns, pickled), node)

    iterators = [fns.collect_async(ds, pickled) for ds in collects]
    if address is not None:
        from streamlet.flink.cluster import run_remote

        try:
            ran = run_remote(
                env,
                job_name,
                address,
                iterators,
                detached=detached,
                savepoint_directory=savepoint_directory,
            )
        except BaseException:
            for it in iterators:  # a fetcher whose job never started fails to close
                with contextlib.suppress(Exception):
                    it.close()
            raise
        for it in iterators:
            it.close()
        return ran
    try:
        if iterators:
            client = env.execute_async(job_name)
            collected = [list(it) for it in iterators]
            result = client.get_job_execution_result().result()
        else:
            result = env.execute(job_name)
            collected = []
        job_id = str(result.get_job_id())
        # Flink's net runtime (as a cluster's REST duration): without the mini-cluster's
        # start, which the wall time of this call includes.
        runtime_ms = float(result.get_net_runtime())
    except Exception as exc:
        raise RuntimeError(f"the Flink job {job_name!r} failed: {exc}") from exc
    finally:
        for it in iterators:
            it.close()
    return FlinkJobResult(job_id, job_name, runtime_ms, collected)


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
        tags = sorted({e.output_tag for e in node.outputs if e.output_tag is not None})
        process = fns.KeyedProcess(fn, tags) if node.keyed else fns.Process(fn, tags)
        return upstream.process(process, output_type=pickled)
    if api == "reduce":
        return upstream.process(fns.Reduce(fn, f"{node.operator_uid}-reduce"), output_type=pickled)
    if api in ("sum", "min", "max"):
        reduce = fns.field_reduce(api, node.args[0])
        return upstream.process(
            fns.Reduce(reduce, f"{node.operator_uid}-{api}"), output_type=pickled
        )
    raise AssertionError(f"untranslated operation {api!r} passed check_translatable")
