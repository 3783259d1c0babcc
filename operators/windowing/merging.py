"""``MergingWindowSet``: which merged window of one key keeps its state in which namespace.

With session windows, every element opens a window that may merge with the key's existing
windows. Moving the contents of merged windows into a new namespace on every merge would
copy state each time, so (as in Flink) a merged window keeps the *state window* of one of the
windows it absorbed: its contents, trigger state and timers stay namespaced by that state
window, which never changes while the window lives, and the other windows' state is merged
into it. This class is the bookkeeping of that: a mapping from each live window to its
state window.

It is a pure state machine over the dict it is given, which the window operator keeps in
keyed state (one dict per key) and checkpoints as it is: the set reads and changes that dict
in place and never copies it.
"""

from __future__ import annotations

from collections.abc import Callable

from .assigners import MergingWindowAssigner
from .windows import TimeWindow

__all__ = ["MergeFunction", "MergingWindowSet"]

MergeFunction = Callable[[TimeWindow, list[TimeWindow], TimeWindow, list[TimeWindow]], None]
"""``merge_function(merge_result, merged_windows, state_window_result, merged_state_windows)``:
called for a merge before the mapping changes. ``merged_windows`` are the live windows that
became ``merge_result`` (not the new window, which has no state yet);
``state_window_result`` is the state window ``merge_result`` keeps, and
``merged_state_windows`` the other merged windows' state windows, whose state the operator
merges into it (then drops)."""


class MergingWindowSet:
    """The live windows of one key and their state windows (see the module docs).

    :param assigner: merges windows (:meth:`MergingWindowAssigner.merge_windows`)
    :param mapping: ``{window: state window}`` of the key, changed in place; empty for a key
        without windows
    """

    __slots__ = ("_assigner", "mapping")

    def __init__(self, assigner: MergingWindowAssigner, mapping: dict[TimeWindow, TimeWindow]):
        if not isinstance(assigner, MergingWindowAssigner):
            raise TypeError(
                f"MergingWindowSet needs a MergingWindowAssigner (session windows), got "
                f"{assigner!r}"
            )
        if not isinstance(mapping, dict):
            raise TypeError(f"mapping must be a dict of window -> state window, got {mapping!r}")
        self._assigner = assigner
        self.mapping = mapping

    def get_state_window(self, window: TimeWindow) -> TimeWindow | None:
        """The state window of the live ``window``; ``None`` if it is not live."""
        return self.mapping.get(window)

    def retire_window(self, window: TimeWindow) -> None:
        """Forget ``window`` (its state was cleared: it fired and purged, or expired).

        :raises ValueError: if ``window`` is not live
        """
        if self.mapping.pop(window, None) is None:
            raise ValueError(
                f"window {window!r} is not a live window of this key, so it cannot be retired; "
                f"live windows: {sorted(self.mapping)!r}"
            )

    def add_window(self, new_window: TimeWindow, merge_function: MergeFunction) -> TimeWindow:
        """Add ``new_window`` (an element's window), merging it with the live windows it
        overlaps or touches, and return the live window the element belongs to: the new
        window itself, the merge result it became part of, or the existing window that
        already covers it.

        Every merge the assigner asks for is done, also one that does not involve
        ``new_window`` (an assigner may merge lazily). For each merge that involves state of
        existing windows, ``merge_function`` is called first (see :data:`MergeFunction`),
        all of them before the mapping changes, so an exception leaves the mapping as it
        was. A merge result keeps the state window of the earliest (by start, then end) of
        the live windows it absorbed, so the state window of a live window never changes
        and the choice does not depend on the dict's order.
        """
        mapping = self.mapping
        is_new = new_window not in mapping
        windows = [*mapping, new_window] if is_new else list(mapping)
        result = new_window
        merged_new = False
        plans: list[tuple[TimeWindow, list[TimeWindow], TimeWindow, list[TimeWindow]]] = []
        for merge_result, group in self._assigner.merge_windows(windows):
            # Each window once, earliest first, whatever order the dict or assigner had.
            merged = sorted(set(group))
            if new_window in merged:
                result = merge_result
                if is_new:
                    merged.remove(new_window)  # it has no state to merge
                    merged_new = True
            if not merged:
                continue
            state_window = mapping[merged[0]]
            plans.append((merge_result, merged, state_window, [mapping[w] for w in merged[1:]]))
        for merge_result, merged, state_window, merged_state in plans:
            # A new window inside one existing window changes nothing but where it goes.
            if not (len(merged) == 1 and merged[0] == merge_result):
                merge_function(merge_result, merged, state_window, merged_state)
        for merge_result, merged, state_window, _ in plans:
            for w in merged:
                del mapping[w]
            mapping[merge_result] = state_window
        if is_new and not merged_new:
            mapping[new_window] = new_window
        return result

    def __repr__(self) -> str:
        return f"MergingWindowSet({self.mapping!r})"
