"""Fault injection: the Nth call of an operation returns a chosen status.

A plan can also keep a log of the calls it counted (see :func:`observe`): which
calls were made one by one and which were counted at once by the bulk mechanism
(:meth:`FaultPlan.skip`), and which calls each counted run repeats
(:class:`Segment`). ``cocomem explore`` groups a counted call with the call it
repeats (:func:`groups`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .scenario import Fault

if TYPE_CHECKING:
    import numpy as np

#: per thread (a Dask worker runs tasks in threads), the plans being observed:
#: observe() appends a list, each new plan joins the last one
_local = threading.local()


def _observers() -> list[list[FaultPlan]]:
    if not hasattr(_local, "observers"):
        _local.observers = []
    return _local.observers


@contextmanager
def observe() -> Iterator[list[FaultPlan]]:
    """Every FaultPlan made inside the block (in this thread) keeps its call log
    and is added to the list this yields."""
    plans: list[FaultPlan] = []
    _observers().append(plans)
    try:
        yield plans
    finally:
        _observers().remove(plans)


@dataclass
class Segment:
    """Calls ``first .. first + count - 1`` (1-based) of one operation.

    ``origin`` 0: the calls were made one by one. Otherwise they were counted at
    once and repeat, in order and over and over, the ``period`` calls from
    ``origin`` on: the piece the bulk mechanism ran for real just before
    (``origin = first - period``), or the earlier call that a replay copied.
    """

    first: int
    count: int
    period: int = 0
    origin: int = 0
    #: counted at once (by the bulk mechanism), whether or not it is grouped
    bulk: bool = False

    @property
    def end(self) -> int:
        return self.first + self.count


#: calls ``start[i], start[i] + step[i], ...`` (``count[i]`` of them), as arrays
Progressions = tuple["np.ndarray", "np.ndarray", "np.ndarray"]


def groups(segments: list[Segment]) -> dict[int, Progressions]:
    """The calls of ``segments`` in groups: a call made one by one heads a group,
    and every counted call joins the group of the call it repeats (the call at
    its place in the piece, and so on back to a call made one by one). Returns
    head -> the calls of its group as progressions (the head's own first)."""
    import numpy as np

    firsts = np.array([s.first for s in segments], dtype=np.int64)
    origins = np.array([s.origin for s in segments], dtype=np.int64)
    periods = np.array([max(s.period, 1) for s in segments], dtype=np.int64)

    def heads(nth: np.ndarray) -> np.ndarray:
        """The head of each call in ``nth``, following origins back (vectorized:
        a segment's period holds up to every call of a repeated block)."""
        nth = nth.copy()
        while True:
            index = np.searchsorted(firsts, nth, side="right") - 1
            counted = origins[index] != 0
            if not counted.any():
                return nth
            i = index[counted]
            nth[counted] = origins[i] + (nth[counted] - firsts[i]) % periods[i]

    parts: list[tuple[np.ndarray, ...]] = []  # (head, start, step, count) columns
    for segment in segments:
        if not segment.origin:
            calls = np.arange(segment.first, segment.end, dtype=np.int64)
            ones = np.ones_like(calls)
            parts.append((calls, calls, ones, ones))
            continue
        times, rest = divmod(segment.count, segment.period)
        offsets = np.arange(min(segment.period, segment.count), dtype=np.int64)
        parts.append((heads(segment.origin + offsets), segment.first + offsets,
                      np.full_like(offsets, segment.period), times + (offsets < rest)))
    if not parts:
        return {}
    head, start, step, count = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.argsort(head, kind="stable")  # a head's own entry came first: it stays so
    head, start, step, count = head[order], start[order], step[order], count[order]
    bounds = np.flatnonzero(np.diff(head)) + 1
    return {int(h[0]): (s, p, c) for h, s, p, c in zip(
        np.split(head, bounds), np.split(start, bounds), np.split(step, bounds),
        np.split(count, bounds), strict=True)}


class FaultPlan:
    """Counts the calls of each operation and answers which ones are faulted."""

    def __init__(self, faults: Iterable[Fault]) -> None:
        self._faults: dict[str, list[Fault]] = {}
        for fault in faults:
            self._faults.setdefault(fault.call, []).append(fault)
        self.calls: Counter[str] = Counter()
        #: how many calls got an injected status so far
        self.injected = 0
        #: per operation, its calls in order (kept only for an observed plan)
        self.log: dict[str, list[Segment]] | None = None
        #: (call, segment) counted at once, for the next bulk event to explain
        self._unresolved: list[tuple[str, Segment]] = []
        observers = _observers()
        if observers:
            self.log = {}
            observers[-1].append(self)

    def take(self, call: str) -> str | None:
        """Count one call of ``call``; return the injected status, if any."""
        self.calls[call] += 1
        n = self.calls[call]
        if self.log is not None:
            self._note_taken(call, n)
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
        if n and self.log is not None:
            segment = Segment(self.calls[call] + 1, n, bulk=True)
            self.log.setdefault(call, []).append(segment)
            self._unresolved.append((call, segment))
        self.calls[call] += n

    # -- the log ---------------------------------------------------------

    def _note_taken(self, call: str, n: int) -> None:
        segments = self.log.setdefault(call, [])
        last = segments[-1] if segments else None
        if last is not None and not last.bulk and last.end == n:
            last.count += 1
        else:
            segments.append(Segment(n, 1))

    def repeated(self, times: int) -> None:
        """The calls counted since the last bulk event repeat, ``times`` times, the
        calls of the piece made just before them (the bulk mechanism's ``repeat``
        event). A count that ``times`` does not divide stays ungrouped."""
        for _, segment in self._unresolved:
            if times > 0 and segment.count % times == 0:
                segment.period = segment.count // times
                segment.origin = max(0, segment.first - segment.period)
        self._unresolved.clear()

    def replayed(self, before: dict[str, int] | None) -> None:
        """The calls counted since the last bulk event repeat the calls of an earlier
        walk (a replay), which began when ``before`` calls of each operation had
        been made; None: that walk is unknown, the calls stay ungrouped."""
        for call, segment in self._unresolved:
            origin = before.get(call, 0) + 1 if before is not None else 0
            if origin and origin + segment.count <= segment.first:
                segment.period = segment.count
                segment.origin = origin
        self._unresolved.clear()

    def segments(self, call: str) -> list[Segment]:
        """The observed log of ``call`` (counts no bulk event explained stay
        ungrouped)."""
        self._unresolved.clear()
        return list((self.log or {}).get(call, ()))
