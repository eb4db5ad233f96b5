"""The bulk mechanism: do one piece of a uniform range call by call, then apply
its effect to the identical pieces that follow.

A vendor writes its calls one at a time (one per page, per 2 MiB entry, per
descriptor ...). Over a range whose pages are all in one state, the pieces
after the first would do exactly what the first did, so :func:`each` runs the
first piece for real, records what it did (counters, calls of every
fault-injectable operation, host state, the page events the checks read) and
applies that record to the rest at once. The cost of a run then follows the
number of state changes, not the number of pages.

The contract a piece function keeps: over ``[pos, next)`` its effect depends
only on the state of those pages, on ``pos`` modulo the piece length, and on
whether at least one piece length of the range remains; it changes no page
outside ``[pos, next)``. An injected fault stops the repetition before the
call it names, so that call is made for real.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from .run import Event, RunContext

if TYPE_CHECKING:
    from .faults import FaultPlan
    from .vendor import Vendor

#: events about the bulk itself: never recorded, never repeated
_BULK_EVENTS = ("repeat", "replay")

#: False runs every piece and every call for real (the tests compare both ways)
ENABLED = True


def recorded(ctx: RunContext, event: Event) -> bool:
    """Whether a recording keeps ``event``: a check reads it, and it is not about
    the bulk itself."""
    watched = ctx.watched
    return event.name not in _BULK_EVENTS and (watched is None or event.name in watched)


class Recording:
    """What a stretch of a vendor's calls did: the counters it added, the calls
    it made of each fault-injectable operation, whether an injected status met
    it (then it is no pattern to repeat), and the events the checks read."""

    def __init__(self, vendor: Vendor) -> None:
        self.ctx, self.faults = vendor.ctx, vendor.faults
        self.events: list[Event] = []

    def _listen(self, event: Event) -> None:
        if recorded(self.ctx, event):
            self.events.append(event)

    def __enter__(self) -> Recording:
        self._counters = Counter(self.ctx.counters)
        self._calls = Counter(self.faults.calls)
        self._injected = self.faults.injected
        self.ctx.listeners.append(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.listeners.remove(self._listen)
        self.counters = self.ctx.counters - self._counters
        self.calls = self.faults.calls - self._calls
        self.clean = self.faults.injected == self._injected

    def room(self) -> int | None:
        """How many more times these calls can be repeated before one is faulted."""
        return room(self.faults, self.calls)

    def merged_events(self, base: int) -> list[tuple[str, int, int, dict[str, Any]]]:
        """The recorded events as (name, offset from ``base``, length, info), each
        joined with the last one of its name and info where they are adjacent (a
        per-page walk emitting several kinds per page gives one event per kind)."""
        events = ((e, None) for e in self.events if e.start is not None)
        return [item[:4] for item in join_events(events, base)]


def info_key(info: dict[str, Any]) -> tuple:
    """An event's fields as a key (events join and tile only with equal fields)."""
    return tuple(sorted(info.items(), key=lambda item: item[0]))


def join_events(tagged: Iterable[tuple[Event, Hashable]],
                base: int) -> list[tuple[str, int, int, dict[str, Any], Hashable]]:
    """Events with a tag each, as (name, offset from ``base``, length, info, tag),
    each joined with the last one of its name, info and tag where they are adjacent."""
    out: list[list] = []
    last: dict[tuple, list] = {}
    for e, tag in tagged:
        key = (e.name, info_key(e.info), tag)
        item = last.get(key)
        if item is not None and item[1] + item[2] == e.start - base:
            item[2] += e.end - e.start
        else:
            item = last[key] = [e.name, e.start - base, e.end - e.start, e.info, tag]
            out.append(item)
    return [tuple(item) for item in out]


def room(faults: FaultPlan, calls: Counter[str]) -> int | None:
    """How many more times ``calls`` (per repetition) can be made before one is
    faulted (None: no limit)."""
    limits = []
    for call, n in calls.items():
        left = faults.calls_before_next_fault(call)
        if left is not None and n:
            limits.append(left // n)
    return min(limits, default=None)


def add_counts(vendor: Vendor, counters: Counter[str], calls: Counter[str], times: int) -> None:
    """Count ``times`` more repetitions of what a recording counted and called."""
    for name, n in counters.items():
        vendor.ctx.count(name, n * times)
    for call, n in calls.items():
        vendor.faults.skip(call, n * times)


def emit_tiled(ctx: RunContext, events: list[tuple[str, int, int, dict]], start: int,
               times: int, period: int) -> None:
    """Emit ``events`` (offset from a piece's start, length, info) for ``times``
    pieces of ``period`` pages from ``start``: one event over all of them where a
    kind's events in a piece are one span of the period's length (they tile), else
    one per piece."""
    groups: dict[tuple, list[tuple[int, int]]] = {}
    infos: dict[tuple, dict] = {}
    for name, offset, length, info in events:
        key = (name, info_key(info))
        groups.setdefault(key, []).append((offset, offset + length))
        infos[key] = info
    end = start + times * period
    for key, spans in groups.items():
        name, info = key[0], infos[key]
        if len(spans) == 1 and spans[0][1] - spans[0][0] == period:
            offset = spans[0][0]
            ctx.emit(name, start + offset, end + offset, **info)
            continue
        for first in range(start, end, period):
            for s, e in spans:
                ctx.emit(name, first + s, first + e, **info)


def apply(vendor: Vendor, record: Recording, start: int, end: int, times: int,
          after: tuple, events: list[tuple[str, int, int, dict]], piece: int) -> None:
    """Do ``times`` more times what ``record`` did, over ``[start, end)``: its
    counters and calls, the state ``after`` on every page map, and its events
    (see :func:`emit_tiled`)."""
    add_counts(vendor, record.counters, record.calls, times)
    vendor.host.set_uniform(start, end, after)
    emit_tiled(vendor.ctx, events, start, times, piece)


def each(vendor: Vendor, start: int, end: int,
         piece: Callable[[int, int], tuple[int, bool]]) -> tuple[int, bool]:
    """Call ``piece(pos, end) -> (next, ok)`` from ``start`` until ``end`` or the
    first piece that fails; identical pieces over a uniform range are applied in
    bulk. Returns where it stopped and whether every piece succeeded."""
    host = vendor.host
    pos = start
    if not ENABLED:
        while pos < end:
            nxt, ok = piece(pos, end)
            if not ok or nxt <= pos:
                return nxt, False
            pos = nxt
        return pos, True
    while pos < end:
        span_end = host.uniform_end(pos, end)
        before = host.uniform_values(pos, span_end)
        with Recording(vendor) as record:
            nxt, ok = piece(pos, end)
        if not ok or nxt <= pos:
            return nxt, False
        length = nxt - pos
        if record.clean and nxt + length <= span_end and before is not None:
            times = (span_end - nxt) // length
            room = record.room()
            if room is not None:
                times = min(times, room)
            after = host.uniform_values(pos, nxt)
            rest_end = nxt + times * length
            if times and after is not None and host.uniform_values(nxt, rest_end) == before:
                apply(vendor, record, nxt, rest_end, times, after,
                      record.merged_events(pos), length)
                vendor.ctx.emit("repeat", nxt, rest_end, times=times, piece=length)
                nxt = rest_end
        pos = nxt
    return pos, True


class Replay:
    """A call like the last one, on a range in the same state, has the same effect:
    for runs of identical calls (lazy acceptance accepts one 4 MiB chunk per
    call) the effect of the first is applied to the others without walking them."""

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor
        self._last: dict[str, tuple] = {}

    def key(self, op: str, start: int, end: int, *extra: Hashable) -> tuple | None:
        """What decides the effect of a call over ``[start, end)``: None unless the
        range is uniform in every page map (then its effect stays inside it)."""
        values = self.vendor.host.uniform_values(start, end)
        if values is None:
            return None
        return (op, end - start, values, self.vendor.host.settings(), *extra)

    def call(self, op: str, key: tuple | None, start: int, end: int,
             walk: Callable[[], int], fn: str) -> int:
        """Run ``walk`` (returning where it stopped), or replay the last call of
        ``op`` when it had the same ``key``."""
        vendor = self.vendor
        if not ENABLED:
            return walk()
        last = self._last.get(op)
        if key is not None and last and last[0] == key:
            _, record, after, events = last
            room = record.room()
            if room is None or room >= 1:
                apply(vendor, record, start, end, 1, after,
                      [(n, o, length, i) for n, o, length, i in events], end - start)
                vendor.ctx.emit("replay", start, end, fn=fn)
                return end
        with Recording(vendor) as record:
            done = walk()
        self._last.pop(op, None)
        after = vendor.host.uniform_values(start, end)
        if done == end and key is not None and after is not None and record.clean:
            self._last[op] = (key, record, after, record.merged_events(start))
        return done
