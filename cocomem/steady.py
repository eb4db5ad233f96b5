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

from . import bulk
from .state import BUDDY, PAGES_PER_MAX_ORDER, USED

if TYPE_CHECKING:
    from .driver import VirtioMem
    from .host import Host
    from .vendor import Vendor

CHUNK = PAGES_PER_MAX_ORDER


@dataclass
class Cycle:
    """One cycle that ran for real: the accept of chunk ``head`` (its pending units
    were ``[pend_start, pend_end)``, in host state ``pend_before`` -> ``accepted``)
    and the allocation of ``[alloc, alloc + CHUNK)`` (``free_before`` ->
    ``used``), with what each half counted, called and emitted."""

    head: int
    pend_start: int
    pend_end: int
    pend_before: tuple
    accepted: tuple
    accept_record: bulk.Recording
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

    def begin(self) -> tuple[int, int, int, tuple] | None:
        """Before a top-up: (head chunk, pending run, its host state), when the
        head chunk's accept would be one call over one uniform run."""
        zone = self.zone
        if not (bulk.ENABLED and zone.lazy and zone.deferred):
            return None
        head = zone.deferred[0][0]
        pending = self.unaccepted.pending(*self.unaccepted._guarded(head, head + CHUNK))
        if len(pending) != 1 or pending[0][1] - pending[0][0] != CHUNK:
            return None
        start, end = pending[0]
        before = self.host.uniform_values(start, end)
        return None if before is None else (head, start, end, before)

    def topped_up(self, begun: tuple[int, int, int, tuple] | None,
                  record: bulk.Recording) -> tuple | None:
        """After the top-up: ``begun`` with the accepted run's host state, when the
        top-up accepted exactly the head chunk, cleanly, into one state."""
        if begun is None or not record.clean:
            return None
        head, start, end, _ = begun
        deferred = self.zone.deferred
        if not deferred or deferred[0][0] != head + CHUNK:
            return None
        accepted = self.host.uniform_values(start, end)
        return None if accepted is None else (*begun, accepted, record)

    def free_pages(self, batch: int) -> tuple[int, tuple | None]:
        """Where the next ``batch`` allocations start, and the host state of their
        pages when they are one run of free pages in one state (else None)."""
        first = next(iter(self.driver.page.runs_where(0, self.host.npages, BUDDY)), None)
        if first is None or first[1] - first[0] < batch:
            return 0, None
        return first[0], self.host.uniform_values(first[0], first[0] + batch)

    def cycle(self, topped: tuple, alloc: int, batch: int, free_before: tuple | None,
              alloc_record: bulk.Recording) -> Cycle | None:
        """The cycle that just ran, if it is one to repeat: it accepted exactly its
        head chunk and allocated one chunk's worth of contiguous pages, into one
        state."""
        if batch != CHUNK or free_before is None or not alloc_record.clean:
            return None
        used = self.host.uniform_values(alloc, alloc + CHUNK)
        if used is None:
            return None
        head, start, end, before, accepted, accept_record = topped
        return Cycle(head, start, end, before, accepted, accept_record,
                     alloc, free_before, used, alloc_record)

    def repeat(self, cycle: Cycle, todo: int | None) -> int:
        """Apply as many more cycles like ``cycle`` as the state ahead allows;
        returns how many pages they allocated."""
        times = self._times(cycle, todo)
        if times <= 0:
            return 0
        shift, span = CHUNK, times * CHUNK
        zone, host, vendor = self.zone, self.host, self.vendor
        calls = cycle.accept_record.calls + cycle.alloc_record.calls
        bulk.add_counts(vendor, cycle.accept_record.counters + cycle.alloc_record.counters,
                        calls, times)
        # the accept side: the next chunks leave the list, their units are accepted
        head = cycle.head + shift
        run = zone.deferred[0]
        run[0] = head + span
        if run[0] == run[1]:
            zone.deferred.popleft()
        zone.page.set(head, head + span, BUDDY)
        pend = cycle.pend_start + shift
        self.unaccepted.unaccepted.set(pend, pend + span, False)
        host.set_uniform(pend, pend + span, cycle.accepted)
        # the allocation side: the lowest free pages are taken and written
        alloc = cycle.alloc + shift
        zone.page.set(alloc, alloc + span, USED)
        host.set_uniform(alloc, alloc + span, cycle.used)
        ctx = vendor.ctx
        bulk.emit_tiled(ctx, cycle.accept_record.merged_events(cycle.head), head, times, shift)
        bulk.emit_tiled(ctx, cycle.alloc_record.merged_events(cycle.alloc), alloc, times, shift)
        ctx.emit("repeat", alloc, alloc + span, times=times, piece=shift, fn="cond_accept_memory")
        return span

    def _times(self, cycle: Cycle, todo: int | None) -> int:
        """How many cycles ahead are like ``cycle``: each chunk still listed in the
        same run (one is left for the real path, whose guard unit may fall
        elsewhere), pending and in the state ``cycle``'s chunk was, every page to
        allocate free and in the state ``cycle``'s were, no fault in between."""
        zone, host = self.zone, self.host
        run_start, run_end = zone.deferred[0]
        times = (run_end - run_start) // CHUNK - 1
        if todo is not None:
            times = min(times, todo // CHUNK)
        room = bulk.room(self.vendor.faults,
                         cycle.accept_record.calls + cycle.alloc_record.calls)
        if room is not None:
            times = min(times, room)
        if times <= 0 or any(e.start is None for record in
                             (cycle.accept_record, cycle.alloc_record) for e in record.events):
            return 0
        pend, span = cycle.pend_start + CHUNK, times * CHUNK
        if (self.unaccepted.pending(pend, pend + span) != [(pend, pend + span)]
                or host.uniform_values(pend, pend + span) != cycle.pend_before):
            return 0
        # the pages to allocate: free ones up to the list's head, then the listed
        # chunks as they are accepted on the way
        alloc = cycle.alloc + CHUNK
        free_end = min(alloc + span, run_start)
        if alloc < free_end:
            free = next(zone.page.runs(alloc, free_end))
            if (free[2] != BUDDY or free[1] != free_end
                    or host.uniform_values(alloc, free_end) != cycle.free_before):
                return 0
        if alloc + span > run_start and cycle.accepted != cycle.free_before:
            return 0
        return times

