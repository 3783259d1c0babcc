"""The root of streamlet's error tree and the errors of the state layer.

The whole tree is drawn once, in :mod:`streamlet.errors`. It is rooted here because
``state`` is the bottom layer and imports nothing of ours.
"""

from __future__ import annotations

__all__ = [
    "StateError",
    "StateSerializationError",
    "StreamletError",
    "StreamletInternalError",
]


class StreamletError(Exception):
    """Root of every error streamlet raises on purpose."""


class StreamletInternalError(StreamletError):
    """A bug in streamlet itself: a protocol between its parts was broken."""


class StateError(StreamletError):
    """State was used in a way it does not support (no current key, unknown state, ...)."""


class StateSerializationError(StateError):
    """A state value could not be serialized for a snapshot, or deserialized on restore.

    :param operator_uid: uid of the operator that owns the state
    :param state_name: name of the state descriptor
    :param detail: what was wrong (the offending type, usually)
    :param restoring: the failure happened while restoring (deserializing), not snapshotting
    """

    def __init__(
        self, operator_uid: str, state_name: str, detail: str, *, restoring: bool = False
    ) -> None:
        self.operator_uid = operator_uid
        self.state_name = state_name
        self.detail = detail
        self.restoring = restoring
        verb = "deserialize" if restoring else "serialize"
        super().__init__(
            f"cannot {verb} state {state_name!r} of operator {operator_uid!r}: {detail}"
        )
