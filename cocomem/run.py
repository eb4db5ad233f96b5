"""The context of one backend's run: counters, events, violations, crashes."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .units import PAGE_SIZE


@dataclass(frozen=True)
class Violation:
    kind: str
    step: int
    start: int  # guest physical address
    size: int   # bytes
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "start": self.start, "size": self.size}


@dataclass
class Event:
    """Something that happened; checks see every event, ``--trace`` prints them."""

    name: str
    start: int | None = None   # page offset in the device region
    end: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


class GuestCrash(Exception):
    """The guest died (TD killed, kernel panic): the backend's run stops here."""

    def __init__(self, kind: str, start: int, end: int, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.start = start
        self.end = end
        self.detail = detail


class RunContext:
    """What the layers of one run share: counters, the event stream, violations."""

    def __init__(self, region_addr: int) -> None:
        self.region_addr = region_addr
        self.counters: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self.step = 0
        self.listeners: list[Callable[[Event], None]] = []
        #: names of the events some check reads (None: every event); the bulk
        #: mechanism repeats these over the pieces it applies at once
        self.watched: set[str] | None = set()
        #: per kind: the pages reported so far (sorted, disjoint ranges), and the
        #: index of its last violation
        self._reported: dict[str, list[tuple[int, int]]] = {}
        self._last: dict[str, int] = {}
        #: what the run did that no counter says (set by observers such as the
        #: ``exercised`` check): read by the cost model and the reports
        self.facts: dict[str, Any] = {}

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counters[name] += n

    def emit(self, name: str, start: int | None = None, end: int | None = None,
             **info: Any) -> None:
        event = Event(name, start, end, info)
        for listener in self.listeners:
            listener(event)

    def gpa(self, page: int) -> int:
        return self.region_addr + page * PAGE_SIZE

    def violation(self, kind: str, start: int, end: int, detail: str = "") -> None:
        """Record a violation over pages ``[start, end)`` at the current step.

        Pages already reported for this kind (at any step) are not reported
        again, whatever ranges they were reported in; a range that continues the
        last one of its kind, at the same step, extends it.
        """
        reported = self._reported.setdefault(kind, [])
        for s, e in _subtract(start, end, reported):
            last = self._last.get(kind)
            old = self.violations[last] if last is not None else None
            if old and old.step == self.step and old.start + old.size == self.gpa(s):
                self.violations[last] = Violation(kind, self.step, old.start,
                                                  old.size + (e - s) * PAGE_SIZE, old.detail)
            else:
                self.emit("violation", s, e, kind=kind, detail=detail)
                self._last[kind] = len(self.violations)
                self.violations.append(Violation(kind, self.step, self.gpa(s),
                                                 (e - s) * PAGE_SIZE, detail))
            _insert(reported, s, e)


def _subtract(start: int, end: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[start, end)`` minus the sorted, disjoint ``ranges``."""
    out, pos = [], start
    i = max(0, bisect_right(ranges, (start, start)) - 1)
    while pos < end and i < len(ranges):
        s, e = ranges[i]
        if s >= end:
            break
        if e > pos:
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
        i += 1
    if pos < end:
        out.append((pos, end))
    return out


def _insert(ranges: list[tuple[int, int]], start: int, end: int) -> None:
    """Add ``[start, end)`` (disjoint from ``ranges``) to the sorted list, merged."""
    i = bisect_right(ranges, (start, start))
    if i > 0 and ranges[i - 1][1] == start:
        i -= 1
        start = ranges[i][0]
        del ranges[i]
    if i < len(ranges) and ranges[i][0] == end:
        end = ranges[i][1]
        del ranges[i]
    ranges.insert(i, (start, end))
