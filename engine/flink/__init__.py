"""Run a streamlet job on Apache Flink: translate its logical graph into a PyFlink job.

Nothing here imports ``pyflink`` at module level: :func:`check_translatable` refuses what
cannot run on Flink before any JVM starts, and only :func:`run_on_flink` imports PyFlink
(the ``streamlet[flink]`` extra).
"""

from streamlet.flink.refusal import FlinkTranslationError, check_translatable
from streamlet.flink.translate import run_on_flink

__all__ = ["FlinkTranslationError", "check_translatable", "run_on_flink"]
