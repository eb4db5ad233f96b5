"""The context of one backend's run: counters, events, violations, crashes."""

from __future__ import annotations

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
        again; a range that continues the last one of its kind, at the same
        step, extends it.
        """
        gpa, size = self.gpa(start), (end - start) * PAGE_SIZE
        last = None
        for index, old in enumerate(self.violations):
            if old.kind != kind:
                continue
            if old.start <= gpa and gpa + size <= old.start + old.size:
                return
            last = index
        if last is not None:
            old = self.violations[last]
            if old.step == self.step and old.start + old.size == gpa:
                self.violations[last] = Violation(kind, self.step, old.start, old.size + size,
                                                  old.detail)
                return
        self.emit("violation", start, end, kind=kind, detail=detail)
        self.violations.append(Violation(kind, self.step, gpa, size, detail))
