"""Runs of identical allocation cycles under lazy acceptance, applied at once.

With ``accept_memory=lazy``, ``use`` settles into a cycle: the top-up
(``cond_accept_memory``) accepts the chunk at the head of the zone's
unaccepted list, and the allocations that follow take the ``MAX_PAGE_ORDER``
pages that brought free accepted memory above the watermark. A 4 TiB ``use``
is a million such cycles. Once one cycle has run for real, the cycles that
follow do exactly what it did, shifted by one chunk, as long as the memory
ahead is in the state that cycle found: this module checks that, and then
applies their effect (counters, fault-call counts, every page map, the events
the checks read) at once. An injected fault stops the run before the cycle
holding the faulted call, which then runs for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import bulk, chunks
from .state import BUDDY, PAGES_PER_MAX_ORDER, USED

if TYPE_CHECKING:
    from .driver import VirtioMem
    from .host import Host
    from .vendor import Vendor

CHUNK = PAGES_PER_MAX_ORDER


@dataclass
class Cycle:
    """One cycle that ran for real: the accept of its head chunk, and the
    allocation of ``[alloc, alloc + CHUNK)`` (host state ``free_before`` ->
    ``used``), with what it counted, called and emitted."""

    accept: chunks.ChunkAccept
    alloc: int
    free_before: tuple
    used: tuple
    alloc_record: bulk.Recording


class SteadyUse:
    """Watches ``use``'s cycles and applies the identical ones that follow at once."""

    def __init__(self, vendor: Vendor, host: Host, driver: VirtioMem) -> None:
        self.vendor = vendor
        self.host = host
        self.driver = driver
        self.zone = driver.zone
        self.unaccepted = driver.zone.unaccepted

    def begin(self) -> tuple[int, tuple[int, tuple]] | None:
        """Before a top-up: the head chunk, when its accept would be one call over
        one uniform run (see cocomem.chunks.pending_run)."""
        zone = self.zone
        if not (zone.lazy and zone.deferred):
            return None
        head = zone.deferred[0][0]
        found = chunks.pending_run(self.unaccepted, head, head + CHUNK)
        return None if found is None else (head, found)

    def topped_up(self, begun: tuple[int, tuple[int, tuple]] | None,
                  record: bulk.Recording) -> chunks.ChunkAccept | None:
        """After the top-up ``record`` watched: its accept, when it accepted exactly
        the head chunk, cleanly, into one state."""
        if begun is None:
            return None
        head, found = begun
        deferred = self.zone.deferred
        if not deferred or deferred[0][0] != head + CHUNK:
            return None
        return chunks.finished(self.unaccepted, head, head + CHUNK, found, record)

    def free_pages(self, batch: int) -> tuple[int, tuple | None]:
        """Where the next ``batch`` allocations start, and the host state of their
        pages when they are one run of free pages in one state (else None)."""
        # the first free run, without listing them all (the map may hold many)
        first = next(((s, e) for s, e, v in self.driver.page.runs() if v == BUDDY), None)
        if first is None or first[1] - first[0] < batch:
            return 0, None
        return first[0], self.host.uniform_values(first[0], first[0] + batch)

    def cycle(self, accept: chunks.ChunkAccept, alloc: int, batch: int,
              free_before: tuple | None, alloc_record: bulk.Recording) -> Cycle | None:
        """The cycle that just ran, if it is one to repeat: after its accept, it
        allocated one chunk's worth of contiguous pages, into one state."""
        if batch != CHUNK or free_before is None or not alloc_record.clean:
            return None
        used = self.host.uniform_values(alloc, alloc + CHUNK)
        if used is None:
            return None
        return Cycle(accept, alloc, free_before, used, alloc_record)

    def repeat(self, cycle: Cycle, todo: int | None) -> int:
        """Apply as many more cycles like ``cycle`` as the state ahead allows;
        returns how many pages they allocated."""
        times = self._times(cycle, todo)
        if times <= 0:
            return 0
        span = times * CHUNK
        zone, vendor = self.zone, self.vendor
        zone.accept_head_alike(cycle.accept, times)
        # the allocation side: the lowest free pages are taken and written
        alloc = cycle.alloc + CHUNK
        record = cycle.alloc_record
        bulk.add_counts(vendor, record.counters, record.calls, times)
        zone.page.set(alloc, alloc + span, USED)
        self.host.set_uniform(alloc, alloc + span, cycle.used)
        bulk.emit_tiled(vendor.ctx, record.merged_events(cycle.alloc), alloc, times, CHUNK)
        vendor.ctx.emit("repeat", alloc, alloc + span, times=times, piece=CHUNK,
                        fn="cond_accept_memory")
        return span

    def _times(self, cycle: Cycle, todo: int | None) -> int:
        """How many cycles ahead are like ``cycle``: each chunk still listed in the
        same run (one is left for the real path, whose guard unit may fall
        elsewhere) and accepted alike, every page to allocate free and in the state
        ``cycle``'s were, no fault in between."""
        zone, host = self.zone, self.host
        run_start, run_end = zone.deferred[0]
        times = (run_end - run_start) // CHUNK - 1
        if todo is not None:
            times = min(times, todo // CHUNK)
        room = bulk.room(self.vendor.faults, cycle.accept.record.calls + cycle.alloc_record.calls)
        if room is not None:
            times = min(times, room)
        if times <= 0 or any(e.start is None for record in
                             (cycle.accept.record, cycle.alloc_record) for e in record.events):
            return 0
        times = chunks.accepts_like(self.unaccepted, cycle.accept, times)
        span = times * CHUNK
        # the pages to allocate: free ones up to the list's head, then the listed
        # chunks as they are accepted on the way
        alloc = cycle.alloc + CHUNK
        free_end = min(alloc + span, run_start)
        if alloc < free_end:
            free = next(zone.page.runs(alloc, free_end))
            if (free[2] != BUDDY or free[1] != free_end
                    or host.uniform_values(alloc, free_end) != cycle.free_before):
                return 0
        if alloc + span > run_start and cycle.accept.after != cycle.free_before:
            return 0
        return times
