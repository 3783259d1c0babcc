"""Windowing building blocks (Flink's model, PyFlink's names): windows, assigners,
triggers, evictors, the merging-window bookkeeping of sessions, and window function types.

The window operator and ``WindowedStream`` use these; users import them from ``streamlet``.
"""

# General layout:
#
# windows.py     TimeWindow, CountWindow, GlobalWindow (namedtuples: keys in keyed state)
# triggers.py    TriggerResult, Trigger and its contexts, the built-in triggers
# evictors.py    TimestampedValue, Evictor and its context, CountEvictor, TimeEvictor
# assigners.py   WindowAssigner, MergingWindowAssigner and the built-in assigners
# merging.py     MergingWindowSet: live session windows -> the windows their state is under
# functions.py   ProcessWindowFunction, WindowFunction and the window_all variants

from .assigners import CountSlidingWindowAssigner as CountSlidingWindowAssigner
from .assigners import CountTumblingWindowAssigner as CountTumblingWindowAssigner
from .assigners import EventTimeSessionWindows as EventTimeSessionWindows
from .assigners import GlobalWindows as GlobalWindows
from .assigners import MergingWindowAssigner as MergingWindowAssigner
from .assigners import ProcessingTimeSessionWindows as ProcessingTimeSessionWindows
from .assigners import SessionWindowTimeGapExtractor as SessionWindowTimeGapExtractor
from .assigners import SlidingEventTimeWindows as SlidingEventTimeWindows
from .assigners import SlidingProcessingTimeWindows as SlidingProcessingTimeWindows
from .assigners import TumblingEventTimeWindows as TumblingEventTimeWindows
from .assigners import TumblingProcessingTimeWindows as TumblingProcessingTimeWindows
from .assigners import WindowAssigner as WindowAssigner
from .assigners import WindowAssignerContext as WindowAssignerContext
from .evictors import CountEvictor as CountEvictor
from .evictors import Evictor as Evictor
from .evictors import EvictorContext as EvictorContext
from .evictors import TimeEvictor as TimeEvictor
from .evictors import TimestampedValue as TimestampedValue
from .functions import AllWindowFunction as AllWindowFunction
from .functions import ProcessAllWindowFunction as ProcessAllWindowFunction
from .functions import ProcessWindowFunction as ProcessWindowFunction
from .functions import WindowFunction as WindowFunction
from .merging import MergeFunction as MergeFunction
from .merging import MergingWindowSet as MergingWindowSet
from .triggers import ContinuousEventTimeTrigger as ContinuousEventTimeTrigger
from .triggers import ContinuousProcessingTimeTrigger as ContinuousProcessingTimeTrigger
from .triggers import CountTrigger as CountTrigger
from .triggers import EventTimeTrigger as EventTimeTrigger
from .triggers import NeverTrigger as NeverTrigger
from .triggers import OnMergeContext as OnMergeContext
from .triggers import ProcessingTimeTrigger as ProcessingTimeTrigger
from .triggers import PurgingTrigger as PurgingTrigger
from .triggers import Trigger as Trigger
from .triggers import TriggerContext as TriggerContext
from .triggers import TriggerResult as TriggerResult
from .windows import GLOBAL_WINDOW as GLOBAL_WINDOW
from .windows import CountWindow as CountWindow
from .windows import GlobalWindow as GlobalWindow
from .windows import TimeWindow as TimeWindow

__all__ = [
    "GLOBAL_WINDOW",
    "AllWindowFunction",
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountEvictor",
    "CountSlidingWindowAssigner",
    "CountTrigger",
    "CountTumblingWindowAssigner",
    "CountWindow",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "Evictor",
    "EvictorContext",
    "GlobalWindow",
    "GlobalWindows",
    "MergeFunction",
    "MergingWindowAssigner",
    "MergingWindowSet",
    "NeverTrigger",
    "OnMergeContext",
    "ProcessAllWindowFunction",
    "ProcessWindowFunction",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "SessionWindowTimeGapExtractor",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TimeEvictor",
    "TimeWindow",
    "TimestampedValue",
    "Trigger",
    "TriggerContext",
    "TriggerResult",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "WindowAssigner",
    "WindowAssignerContext",
    "WindowFunction",
]
