"""Runs of identical memory blocks in the driver's plug and unplug loops,
applied at once.

``virtio_mem_sbm_plug_request`` plugs, adds and onlines one memory block
after the other; ``virtio_mem_sbm_unplug_request`` offlines, unplugs and
removes them from the top down. A 4 TiB plug with 128 MiB blocks is 32,768
rounds of the same calls. :class:`BlockWatch` runs one round for real,
recording what it counted, called and emitted and the state of every page and
block map over its block before and after; when the blocks that follow (or
precede, going down) are in the state the watched block was, and the round
touched nothing outside its block, the rounds over them are applied at once
(every map set, counters and fault-call counts multiplied, events tiled, the
host's peak memory raised as the last round would raise it). An injected
fault stops the run before the round holding the faulted call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import bulk
from .run import Event
from .runmap import RunMap, uniform_values

if TYPE_CHECKING:
    from .driver import VirtioMem


class BlockWatch:
    """One round of a loop over memory block ``mb`` (``direction`` +1: the next
    round is the block above, -1: below), watched so identical rounds can follow
    at once. Use as a context manager around the round."""

    def __init__(self, driver: VirtioMem, mb: int, direction: int, *, rounds: int) -> None:
        """``rounds``: how many whole-block rounds the loop may still make; below two
        nothing could follow the watched one, and it is not watched."""
        self.driver = driver
        self.mb = mb
        self.direction = direction
        host = driver.host
        unaccepted = driver.zone.unaccepted
        #: maps indexed by page, and by memory block
        self.page_maps: tuple[RunMap, ...] = (
            *host.page_maps, host.plugged, driver.sb_plugged, driver.page,
            unaccepted.unaccepted, unaccepted.plugged)
        self.block_maps: tuple[RunMap, ...] = (driver.mb_state, driver.online_cancelled)
        self.usable = (bulk.ENABLED and rounds >= 2 and driver.backend.state_in_maps
                       and driver.backend.vendor.state_in_maps)

    # -- the state of blocks -----------------------------------------------

    def _pages(self, first: int, last: int) -> tuple[int, int]:
        return first * self.driver.mb_pages, last * self.driver.mb_pages

    def values(self, first: int, last: int) -> tuple | None:
        """Every map's value over blocks ``[first, last)``; None unless each is uniform."""
        pages = self._range_values(*self._pages(first, last))
        blocks = uniform_values(self.block_maps, first, last)
        return None if pages is None or blocks is None else pages + blocks

    def _range_values(self, start: int, end: int) -> tuple | None:
        """Every page map's value over ``[start, end)`` (None unless uniform)."""
        return uniform_values(self.page_maps, start, end)

    def _inside(self, event: Event) -> bool:
        start, end = self._pages(self.mb, self.mb + 1)
        return start <= event.start and event.end <= end

    def _snapshot(self, first: int, last: int) -> tuple:
        first, last = max(first, 0), min(last, self.driver.nmb)
        if first >= last:
            return ()
        start, end = self._pages(first, last)
        return (tuple(tuple(m.runs(start, end)) for m in self.page_maps)
                + tuple(tuple(m.runs(first, last)) for m in self.block_maps))

    def _uniform_blocks(self, first: int, limit: int) -> int:
        """How many blocks from ``first`` in ``direction`` (at most ``limit``) share
        the values the watched block had before its round."""
        if limit <= 0:
            return 0
        lo, hi = (first, first + limit) if self.direction > 0 else (first - limit + 1, first + 1)
        lo, hi = max(lo, 0), min(hi, self.driver.nmb)
        if lo >= hi:
            return 0
        start, end = self._pages(lo, hi)
        mb_pages = self.driver.mb_pages
        n = hi - lo
        for maps, a, b, unit in ((self.page_maps, start, end, mb_pages),
                                 (self.block_maps, lo, hi, 1)):
            for runmap in maps:
                runs = runmap.runs(a, b) if self.direction > 0 else runmap.runs_reversed(a, b)
                s, e, _ = next(iter(runs))
                n = min(n, ((e - a) if self.direction > 0 else (b - s)) // unit)
        if n <= 0:
            return 0
        ahead = (first, first + n) if self.direction > 0 else (first - n + 1, first + 1)
        return n if self.values(*ahead) == self.before else 0

    # -- watching one round --------------------------------------------------

    def __enter__(self) -> BlockWatch:
        if not self.usable:
            return self
        driver, mb = self.driver, self.mb
        self.before = self.values(mb, mb + 1)
        self.usable = self.before is not None
        if not self.usable:
            return self
        self.neighbours = (self._snapshot(mb - 1, mb), self._snapshot(mb + 1, mb + 2))
        self.deferred = [list(run) for run in driver.zone.deferred]
        host = driver.host
        self._peak = host.peak_pages
        host.peak_pages = host.present_pages  # the round's own peak, measured below
        self.record = bulk.Recording(driver.backend.vendor).__enter__()
        #: the events the checks read, each with the state of its pages then
        self.seen: list[tuple[Event, tuple | None]] = []
        driver.ctx.listeners.append(self._listen)
        return self

    def _listen(self, event: Event) -> None:
        if bulk.recorded(self.driver.ctx, event) and event.start is not None:
            self.seen.append((event, self._range_values(event.start, event.end)))

    def __exit__(self, *exc: object) -> None:
        if not self.usable:
            return
        host, mb = self.driver.host, self.mb
        self.driver.ctx.listeners.remove(self._listen)
        self.record.__exit__(*exc)
        self.excess = host.peak_pages - host.present_pages
        self.listed = self._deferred_change()
        host.peak_pages = max(self._peak, host.peak_pages)
        self.after = self.values(mb, mb + 1)
        self.usable = (exc[0] is None and self.after is not None and self.record.clean
                       and (self._snapshot(mb - 1, mb), self._snapshot(mb + 1, mb + 2))
                       == self.neighbours
                       and self.listed is not None
                       and len(self.seen) == len(self.record.events)  # none without a range
                       and all(values is not None and e.name not in ("violation", "crash")
                               and self._inside(e) for e, values in self.seen))

    def _deferred_change(self) -> int | None:
        """How the round changed the zone's unaccepted list: 0 not at all, +1 its
        block appended at the tail (plugging up), -1 its block taken off the tail
        (unplugging down); None otherwise."""
        now = [list(run) for run in self.driver.zone.deferred]
        before = self.deferred
        if now == before:
            return 0
        start, end = self._pages(self.mb, self.mb + 1)
        grown, shrunk = (now, before) if self.direction > 0 else (before, now)
        if not grown or grown[-1][1] != end:
            return None
        if grown[:-1] == shrunk and grown[-1][0] == start:
            return self.direction
        if (shrunk and grown[:-1] == shrunk[:-1] and shrunk[-1] == [grown[-1][0], start]):
            return self.direction
        return None

    # -- the rounds that follow ------------------------------------------------

    def repeatable(self, limit: int) -> int:
        """How many of the next ``limit`` rounds would do what the watched one did."""
        if not self.usable or limit <= 0:
            return 0
        room = self.record.room()
        if room is not None:
            limit = min(limit, room)
        if self.listed < 0:  # the blocks below must be the list's tail, in order
            deferred = self.driver.zone.deferred
            start = self._pages(self.mb, self.mb + 1)[0]
            if not deferred or deferred[-1][1] != start:
                return 0
            limit = min(limit, (start - deferred[-1][0]) // self.driver.mb_pages)
        return self._uniform_blocks(self.mb + self.direction, limit)

    def apply(self, times: int) -> None:
        """Do the next ``times`` rounds at once. Each event the checks read is
        emitted over the blocks with their pages in the state they had when the
        watched round emitted it (a check reads the maps when it hears an event)."""
        driver, host = self.driver, self.driver.host
        first = self.mb + 1 if self.direction > 0 else self.mb - times
        last = first + times
        start, end = self._pages(first, last)
        mb_pages = driver.mb_pages
        bulk.add_counts(driver.backend.vendor, self.record.counters, self.record.calls, times)
        with host.accounted(start, end):  # the end state counts, not those between
            pages_after = self.after[:len(self.page_maps)]
            self._set(start, end, pages_after)
            for runmap, value in zip(self.block_maps, self.after[len(pages_after):], strict=True):
                runmap.set(first, last, value)
            self._emit(start, end, times, pages_after)
        host.peak_pages = max(host.peak_pages, host.present_pages + self.excess)
        deferred = driver.zone.deferred
        if self.listed > 0:
            deferred[-1][1] = end
        elif self.listed < 0:
            deferred[-1][1] = start
            if deferred[-1][0] == start:
                deferred.pop()
        driver.ctx.emit("repeat", start, end, times=times, piece=mb_pages,
                        fn="virtio_mem_sbm_plug_request" if self.direction > 0
                        else "virtio_mem_sbm_unplug_request")

    def _emit(self, start: int, end: int, times: int, pages_after: tuple) -> None:
        """The watched round's events over the ``times`` blocks of ``[start, end)``,
        each with the pages in the state it saw (then back to ``pages_after``)."""
        driver, mb_pages = self.driver, self.driver.mb_pages
        base = self._pages(self.mb, self.mb + 1)[0]
        for name, offset, length, info, values in bulk.join_events(self.seen, base):
            event = [(name, offset, length, info)]
            if values == pages_after:
                bulk.emit_tiled(driver.ctx, event, start, times, mb_pages)
                continue
            spans = ([(start + offset, end + offset)] if length == mb_pages else
                     [(s + offset, s + offset + length) for s in range(start, end, mb_pages)])
            for s, e in spans:
                self._set(s, e, values)
            bulk.emit_tiled(driver.ctx, event, start, times, mb_pages)
            for s, e in spans:
                self._set(s, e, pages_after)

    def _set(self, start: int, end: int, values: tuple) -> None:
        for runmap, value in zip(self.page_maps, values, strict=True):
            runmap.set(start, end, value)

