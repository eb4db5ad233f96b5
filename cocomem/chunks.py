"""Runs of identical chunk accepts, applied at once.

The page allocator accepts memory one ``MAX_PAGE_ORDER`` chunk at a time:
``__free_pages_core`` on each chunk of a block going online (eager
acceptance), ``cond_accept_memory`` on the head of the unaccepted list (lazy).
With the guard unit (``accept_memory`` also accepts the unit after a range
that ends on a unit boundary), every call after the first accepts the same
length: the upper part of its chunk and the first unit of the next. Once one
such call has run for real, the calls over the chunks that follow do what it
did, shifted by one chunk, while their pending units are in the state it
found: :func:`accepts_like` counts them and :func:`apply_accepts` applies
them (counters, fault-call counts, the bitmap, every host page map, the
events the checks read). An injected fault stops the run before the call it
names.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import bulk
from .unaccepted import UnacceptedMemory


@dataclass
class ChunkAccept:
    """One ``accept_memory`` over chunk ``chunk`` that ran for real: its pending
    units ``[pend_start, pend_start + length)`` went from host state ``before`` to
    ``after``; ``record`` holds what it counted, called and emitted."""

    chunk: int
    pend_start: int
    length: int
    before: tuple
    after: tuple
    record: bulk.Recording


def pending_run(unaccepted: UnacceptedMemory, start: int, end: int) -> tuple[int, tuple] | None:
    """Where ``accept_memory(start, end)`` would accept one run of ``end - start``
    pages in one host state: (its start, that state); else None."""
    if not (bulk.ENABLED and unaccepted.vendor.state_in_maps):
        return None
    pending = unaccepted.to_accept(start, end)
    if len(pending) != 1 or pending[0][1] - pending[0][0] != end - start:
        return None
    before = unaccepted.vendor.host.uniform_values(*pending[0])
    return None if before is None else (pending[0][0], before)


def accept_recorded(unaccepted: UnacceptedMemory, start: int, end: int) -> ChunkAccept | None:
    """``accept_memory(start, end)`` for real; what it did when the chunks after
    ``[start, end)`` may repeat it (see :func:`pending_run`), else None."""
    found = pending_run(unaccepted, start, end)
    if found is None:
        unaccepted.accept_memory(start, end)
        return None
    with bulk.Recording(unaccepted.vendor) as record:
        unaccepted.accept_memory(start, end)
    return finished(unaccepted, start, end, found, record)


def finished(unaccepted: UnacceptedMemory, start: int, end: int, found: tuple[int, tuple],
             record: bulk.Recording) -> ChunkAccept | None:
    """The accept of ``[start, end)`` that ``record`` watched, as a pattern to repeat
    (None when it met an injected status or left its run in more than one state)."""
    pend_start, before = found
    after = unaccepted.vendor.host.uniform_values(pend_start, pend_start + end - start)
    if not record.clean or after is None:
        return None
    return ChunkAccept(start, pend_start, end - start, before, after, record)


def accepts_like(unaccepted: UnacceptedMemory, done: ChunkAccept, times: int) -> int:
    """How many of the (at most ``times``) chunks after ``done.chunk`` an accept
    would treat as it did: their pending units continue its run, in its state,
    and no injected fault falls among their calls."""
    length = done.length
    room = bulk.room(unaccepted.vendor.faults, done.record.calls)
    if room is not None:
        times = min(times, room)
    if times <= 0:
        return 0
    start = done.pend_start + length
    end = min(unaccepted.npages, start + times * length)
    if end <= start:
        return 0
    pending = unaccepted.pending(start, end)
    if not pending or pending[0][0] != start:
        return 0
    host = unaccepted.vendor.host
    uniform_end = min(pending[0][1], host.uniform_end(start, pending[0][1]))
    times = (uniform_end - start) // length
    if times and host.uniform_values(start, start + length) != done.before:
        return 0
    return times


def apply_accepts(unaccepted: UnacceptedMemory, done: ChunkAccept, times: int) -> None:
    """Do the accepts of the ``times`` chunks after ``done.chunk`` at once."""
    vendor, length = unaccepted.vendor, done.length
    start = done.pend_start + length
    end = start + times * length
    bulk.add_counts(vendor, done.record.counters, done.record.calls, times)
    unaccepted.unaccepted.set(start, end, False)
    vendor.host.set_uniform(start, end, done.after)
    bulk.emit_tiled(vendor.ctx, done.record.merged_events(done.chunk), done.chunk + length,
                    times, length)
