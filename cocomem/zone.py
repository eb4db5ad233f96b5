"""The device's memory as the page allocator sees it: one ZONE_MOVABLE with its
list of unaccepted 4 MiB chunks (mm/page_alloc.c, CONFIG_UNACCEPTED_MEMORY).

Only whole MAX_PAGE_ORDER (4 MiB) chunks that contain unaccepted memory are
deferred (``__free_pages_core`` -> ``__free_unaccepted``), and only with
``accept_memory=lazy``; anything smaller is accepted at once. Every
allocation that visits the zone tops its free accepted memory up to the
promo watermark, one chunk at a time from the head of the list
(``cond_accept_memory``); page isolation accepts the chunks it touches
(``set_migratetype_isolate`` -> ``accept_page``). Nothing is unaccepted
again when memory is freed.
"""

from __future__ import annotations

from collections import deque
from contextlib import nullcontext

from . import chunks
from .bulk import Recording
from .run import RunContext
from .runmap import RunMap
from .state import BUDDY, MANAGED, PAGES_PER_MAX_ORDER, UNACCEPTED
from .unaccepted import UnacceptedMemory
from .units import align_up

CHUNK = PAGES_PER_MAX_ORDER

#: Modelling choices the sources leave open (shown by ``cocomem plugins --verbose``
#: and in the docs).
ASSUMPTIONS = {
    "boot-memory-1g": "the guest booted with 1 GiB of memory outside the device: "
                      "min_free_kbytes = 4096, so pages_min = 1024 over 262144 lowmem pages "
                      "(these set the movable zone's watermarks)",
    "watermarks-follow-managed": "the zone's watermarks follow its managed pages at every "
                                 "allocation (the kernel recomputes them when a block goes "
                                 "online or offline)",
    "use-is-order-0": "`use` is order-0 allocations from the device's zone, one per page, "
                      "lowest address first; nothing else allocates from that zone",
    "isolation-accepts-overlap": "isolating a range accepts every listed chunk it overlaps "
                                 "(the kernel accepts a chunk whose head pageblock it "
                                 "isolates; a lone upper half would fail with -EBUSY and "
                                 "reorder the unplug)",
}

SWAP_CLUSTER_MAX = 32
PAGES_MIN = 1024          # min_free_kbytes 4096 >> (PAGE_SHIFT - 10)
LOWMEM_PAGES = 262144     # 1 GiB of boot memory
WATERMARK_SCALE_FACTOR = 10


def promo_wmark_pages(managed: int) -> int:
    """__setup_per_zone_wmarks for a ZONE_MOVABLE of ``managed`` pages."""
    if not managed:
        return 0
    wmark_min = min(max(managed // 1024, SWAP_CLUSTER_MAX), 128)
    tmp = PAGES_MIN * managed // LOWMEM_PAGES
    tmp = max(tmp >> 2, managed * WATERMARK_SCALE_FACTOR // 10000)
    return wmark_min + 3 * tmp


class Zone:
    """The zone's page states (the driver's page map) and its unaccepted list."""

    def __init__(self, ctx: RunContext, page: RunMap, unaccepted: UnacceptedMemory,
                 *, lazy: bool) -> None:
        self.ctx = ctx
        self.page = page
        self.unaccepted = unaccepted
        self.lazy = lazy
        #: zone->unaccepted_pages: runs of whole chunks, oldest first
        self.deferred: deque[list[int]] = deque()

    # -- freeing into the allocator --------------------------------------

    def free_pages_core(self, start: int, end: int, order_pages: int) -> None:
        """__free_pages_core for each block of ``order_pages`` pages in [start, end)."""
        if not self.unaccepted.range_contains_unaccepted_memory(start, end):
            self.page.set(start, end, BUDDY)
            return
        if self.lazy and order_pages == CHUNK and self._defer_uniform(start, end):
            return
        s = start
        while s < end:
            e = s + order_pages
            if not self.unaccepted.range_contains_unaccepted_memory(s, e):
                self.page.set(s, e, BUDDY)
            elif self.lazy and order_pages == CHUNK:
                self._defer(s, e)
            else:
                done = chunks.accept_recorded(self.unaccepted, s, e)
                times = done and chunks.accepts_like(self.unaccepted, done,
                                                     (end - e) // order_pages)
                if times:  # the chunks that follow, accepted alike, at once
                    chunks.apply_accepts(self.unaccepted, done, times)
                    e += times * order_pages
                self.page.set(s, e, BUDDY)
            s = e

    def _defer_uniform(self, start: int, end: int) -> bool:
        # every chunk contains unaccepted memory when every unit of the range is
        # plugged and unaccepted: defer them all at once
        if self.unaccepted.pending(start, end) != [(start, end)]:
            return False
        self._defer(start, end)
        return True

    def _defer(self, start: int, end: int) -> None:
        """__free_unaccepted: to the tail of the list, no TDCALL."""
        self.page.set(start, end, UNACCEPTED)
        if self.deferred and self.deferred[-1][1] == start:
            self.deferred[-1][1] = end
        else:
            self.deferred.append([start, end])
        self.ctx.emit("lazy.defer", start, end, fn="__free_unaccepted",
                      chunks=(end - start) // CHUNK)

    # -- accepting listed chunks -----------------------------------------

    def _accept_chunk(self, start: int) -> chunks.ChunkAccept | None:
        """__accept_page: off the list, accept_memory (and its guard), to the buddy.
        Returns what it did when the chunks after it may repeat it."""
        end = start + CHUNK
        found = chunks.pending_run(self.unaccepted, start, end)
        done = None
        with Recording(self.unaccepted.vendor) if found else nullcontext() as record:
            self.ctx.emit("lazy.accept", start, end, fn="__accept_page")
            self.unaccepted.accept_memory(start, end)
        if found:
            done = chunks.finished(self.unaccepted, start, end, found, record)
        self.page.set(start, end, BUDDY)
        return done

    def _take_head(self, count: int = 1) -> int:
        """Take ``count`` chunks off the head of the list (one run); their start."""
        run = self.deferred[0]
        start = run[0]
        run[0] += count * CHUNK
        if run[0] == run[1]:
            self.deferred.popleft()
        return start

    def accept_head_alike(self, done: chunks.ChunkAccept, times: int) -> None:
        """__accept_page on the next ``times`` listed chunks, each accepted as
        ``done`` was (see cocomem.chunks), at once."""
        start = self._take_head(times)
        chunks.apply_accepts(self.unaccepted, done, times)
        self.page.set(start, start + times * CHUNK, BUDDY)

    @property
    def free_accepted(self) -> int:
        return self.page.count(BUDDY)

    def watermark(self) -> int:
        return promo_wmark_pages(self.page.count(*MANAGED))

    def cond_accept_memory(self) -> None:
        """Top free accepted memory up to the promo watermark, one chunk at a time."""
        if not self.deferred:
            return
        wmark = self.watermark()
        to_accept = wmark - self.free_accepted if wmark else 1
        while to_accept > 0 and self.deferred:
            done = self._accept_chunk(self._take_head())
            to_accept -= CHUNK
            if done and to_accept > 0 and self.deferred:
                # the next chunks of the list, accepted alike, at once
                run = self.deferred[0]
                limit = min(-(-to_accept // CHUNK), (run[1] - run[0]) // CHUNK)
                times = chunks.accepts_like(self.unaccepted, done, limit)
                if times:
                    self.accept_head_alike(done, times)
                    to_accept -= times * CHUNK

    def isolate(self, start: int, end: int) -> None:
        """start_isolate_page_range over [start, end): accept the listed chunks it touches."""
        kept: deque[list[int]] = deque()
        touched: list[int] = []
        for s, e in self.deferred:
            lo, hi = max(s, start - start % CHUNK), min(e, end)
            if lo >= hi:
                kept.append([s, e])
                continue
            hi = align_up(hi, CHUNK)
            if s < lo:
                kept.append([s, lo])
            touched.extend(range(lo, hi, CHUNK))
            if hi < e:
                kept.append([hi, e])
        self.deferred = kept
        for chunk in touched:
            self._accept_chunk(chunk)

    # -- allocating --------------------------------------------------------

    def allocations_before_top_up(self, wanted: int | None) -> int:
        """How many order-0 allocations go through before the next cond_accept_memory
        top-up, after topping up now."""
        self.cond_accept_memory()
        free = self.free_accepted
        if self.deferred:  # then free >= watermark: the top-up stopped there
            free = min(free, max(1, free - self.watermark() + 1))
        return free if wanted is None else min(wanted, free)
