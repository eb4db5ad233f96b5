"""Fault injection: the Nth call of an operation returns a chosen status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .scenario import Fault


class FaultPlan:
    """Counts the calls of each operation and answers which ones are faulted."""

    def __init__(self, faults: Iterable[Fault]) -> None:
        self._faults: dict[str, list[Fault]] = {}
        for fault in faults:
            self._faults.setdefault(fault.call, []).append(fault)
        self.calls: Counter[str] = Counter()
        #: how many calls got an injected status so far
        self.injected = 0

    def take(self, call: str) -> str | None:
        """Count one call of ``call``; return the injected status, if any."""
        self.calls[call] += 1
        n = self.calls[call]
        for fault in self._faults.get(call, ()):
            if fault.nth <= n < fault.nth + fault.count:
                self.injected += 1
                return fault.status
        return None

    def calls_before_next_fault(self, call: str) -> int | None:
        """How many more calls of ``call`` go through unfaulted (None: all)."""
        n = self.calls[call]
        pending = [f.nth for f in self._faults.get(call, ()) if f.nth + f.count - 1 > n]
        if not pending:
            return None
        return max(0, min(pending) - n - 1)

    def skip(self, call: str, n: int) -> None:
        """Count ``n`` unfaulted calls at once (the bulk path)."""
        self.calls[call] += n
