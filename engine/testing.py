"""Test utilities for users' async test suites (and ours).

Seeded fault injection lives in :mod:`engine.faults` and is re-exported here.
"""

from __future__ import annotations

from .faults import Fault, FaultInjector, InjectedFault, inject_faults

__all__ = ["Fault", "FaultInjector", "InjectedFault", "inject_faults"]
