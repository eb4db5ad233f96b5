"""The Linux virtio-mem driver in subblock mode (drivers/virtio/virtio_mem.c).

Function names follow the kernel's (``virtio_mem_sbm_plug_request`` and so
on) so that a trace reads like the driver. Return codes are the kernel's
negative errnos.
"""

from __future__ import annotations

from collections.abc import Iterator

from .backend import (
    MEM_CANCEL_ONLINE,
    MEM_GOING_OFFLINE,
    MEM_GOING_ONLINE,
    MEM_OFFLINE,
    MEM_ONLINE,
    Backend,
)
from .blocks import BlockWatch
from .host import ACK, BUSY, ERROR, NACK, Host
from .run import RunContext
from .runmap import RunMap
from .scenario import Scenario
from .state import (
    ABSENT,
    BUDDY,
    FAKE_OFFLINE,
    MB_MOVABLE,
    MB_MOVABLE_PARTIAL,
    MB_NONE,
    MB_OFFLINE,
    MB_OFFLINE_PARTIAL,
    MB_UNUSED,
    OFFLINE,
    PAGES_PER_MAX_ORDER,
    TAKEN,
    USED,
)
from .unaccepted import UnacceptedMemory
from .units import PAGE_SIZE, align_up
from .zone import Zone

EIO, EAGAIN, ENOMEM, EBUSY, ETXTBSY, ENOSPC, EINVAL = -5, -11, -12, -16, -26, -28, -22
# Responses as errnos; anything not listed is -ENOMEM (the kernel's default case).
_ERRNO = {
    "plug": {ACK: 0, NACK: EAGAIN, BUSY: ETXTBSY, ERROR: EINVAL},
    "unplug": {ACK: 0, BUSY: ETXTBSY, ERROR: EINVAL},
    "unplug_all": {ACK: 0, BUSY: ETXTBSY},
}
_ONLINE = (MB_MOVABLE, MB_MOVABLE_PARTIAL)
_FULL = {MB_MOVABLE_PARTIAL: MB_MOVABLE, MB_OFFLINE_PARTIAL: MB_OFFLINE}
_PARTIAL = {MB_MOVABLE: MB_MOVABLE_PARTIAL, MB_OFFLINE: MB_OFFLINE_PARTIAL}
#: how often the retry timer fires within one step before the model moves on
RETRY_TIMER_FIRES = 8
#: NACK means "retry now" (-EAGAIN); a device that keeps NACKing would loop forever
EAGAIN_LOOPS = 16


class VirtioMem:
    """The guest driver's state and algorithm for one virtio-mem device."""

    def __init__(self, ctx: RunContext, scenario: Scenario, host: Host, backend: Backend,
                 unaccepted: UnacceptedMemory) -> None:
        self.ctx = ctx
        self.host = host
        self.backend = backend
        self.sb_pages = scenario.subblock_size // PAGE_SIZE
        self.mb_pages = scenario.guest.memory_block_size // PAGE_SIZE
        self.sbs_per_mb = self.mb_pages // self.sb_pages
        self.nmb = host.npages // self.mb_pages
        self.sb_plugged = RunMap(host.npages, False)
        self.page = RunMap(host.npages, ABSENT)
        self.zone = Zone(ctx, self.page, unaccepted,
                         lazy=scenario.guest.accept_memory == "lazy")
        #: blocks whose last online attempt a notifier refused (MEM_CANCEL_ONLINE)
        self.online_cancelled = RunMap(self.nmb, False)
        self.mb_state = RunMap(self.nmb, MB_NONE)
        self.next_mb = 0
        self.broken = False
        self.unplug_all_required = host.plugged_pages > 0

    # -- helpers ---------------------------------------------------------

    def mb_range(self, mb: int) -> tuple[int, int]:
        return mb * self.mb_pages, (mb + 1) * self.mb_pages

    @property
    def plugged_pages(self) -> int:
        return self.sb_plugged.count(True)

    @property
    def last_usable_mb(self) -> int:
        return self.host.usable_pages // self.mb_pages - 1

    def for_each_mb(self, state: str, reverse: bool = False) -> Iterator[int]:
        """virtio_mem_sbm_for_each_mb(_rev): each block in ``state`` when the loop
        reaches it (the kernel tests every id; runs of other states are skipped)."""
        limit = max(self.next_mb, 1)
        pos = limit - 1 if reverse else 0
        while 0 <= pos < limit:
            runs = (self.mb_state.runs_reversed(0, pos + 1) if reverse
                    else self.mb_state.runs(pos, limit))
            mb = next((e - 1 if reverse else s for s, e, v in runs if v == state), None)
            if mb is None:
                return
            yield mb
            pos = mb - 1 if reverse else mb + 1

    def mark_broken(self, start: int, end: int, why: str) -> int:
        """Set ``vm->broken``: the driver sends no more requests."""
        self.broken = True
        self.ctx.emit("driver.broken", start, end, why=why)
        return EIO

    # -- requests --------------------------------------------------------

    def _send(self, request: str, start: int, end: int) -> int:
        """virtio_mem_send_(un)plug_request: the response as the kernel's errno."""
        response = self.host.request(request, start, end)
        return _ERRNO[request].get(response, ENOMEM)

    def virtio_mem_sbm_plug_sb(self, start: int, end: int) -> int:
        rc = self._send("plug", start, end)
        if rc:
            return rc
        self.sb_plugged.set(start, end, True)
        if not self.backend.post_plug(start, end):
            return self.mark_broken(start, end, "post-plug callback failed")
        return 0

    def virtio_mem_sbm_unplug_sb(self, start: int, end: int) -> int:
        if not self.backend.pre_unplug(start, end):
            return self.mark_broken(start, end, "pre-unplug callback failed")
        rc = self._send("unplug", start, end)
        if rc:
            if not self.backend.unplug_failed(start, end):
                return self.mark_broken(start, end, "unplug failure handling failed")
            return rc
        self.sb_plugged.set(start, end, False)
        self.backend.unplugged(start, end)
        return 0

    # -- onlining and offlining ------------------------------------------

    def online_mb(self, mb: int) -> bool:
        """online_pages(): the notifier chain, then the online-page callback."""
        start, end = self.mb_range(mb)
        self.ctx.emit("notify", start, end, action=MEM_GOING_ONLINE)
        if not self.backend.memory_notify(MEM_GOING_ONLINE, start, end):
            # online_pages' failed_addition: the whole chain hears MEM_CANCEL_ONLINE
            self.ctx.emit("notify", start, end, action=MEM_CANCEL_ONLINE)
            self.backend.memory_notify(MEM_CANCEL_ONLINE, start, end)
            self.online_cancelled.set(mb, mb + 1, True)
            return False
        self.online_cancelled.set(mb, mb + 1, False)
        self.online_pages_range(start, end)
        state = self.mb_state[mb]
        self.mb_state.set(mb, mb + 1, MB_MOVABLE if state == MB_OFFLINE else MB_MOVABLE_PARTIAL)
        self.ctx.emit("notify", start, end, action=MEM_ONLINE)
        self.backend.memory_notify(MEM_ONLINE, start, end)
        return True

    def online_pages_range(self, start: int, end: int) -> None:
        """virtio_mem_online_page for each MAX_PAGE_ORDER block: a fully plugged block
        goes to generic_online_page whole; a mixed one subblock by subblock; unplugged
        pieces stay fake-offline."""
        order = PAGES_PER_MAX_ORDER
        for s, e, plugged in list(self.sb_plugged.runs(start, end)):
            if not plugged:
                self.page.set(s, e, FAKE_OFFLINE)
                continue
            # whole MAX_ORDER blocks inside the run; a block a run edge cuts is mixed:
            # its plugged part goes subblock by subblock
            inner_s, inner_e = align_up(s, order), e - e % order
            if inner_s >= inner_e:  # inside one MAX_ORDER block
                self.zone.free_pages_core(s, e, self.sb_pages)
                continue
            self.zone.free_pages_core(inner_s, inner_e, order)
            for ps, pe in ((s, inner_s), (inner_e, e)):
                if ps < pe:
                    self.zone.free_pages_core(ps, pe, self.sb_pages)

    def offline_mb(self, mb: int) -> None:
        """offline_pages(): isolate, migrate what is in use, then the notifier chain."""
        start, end = self.mb_range(mb)
        self.ctx.emit("notify", start, end, action=MEM_GOING_OFFLINE)
        self.backend.memory_notify(MEM_GOING_OFFLINE, start, end)
        self.zone.isolate(start, end)
        self._migrate_out(start, end)
        self.page.set(start, end, OFFLINE)
        state = self.mb_state[mb]
        self.mb_state.set(mb, mb + 1, MB_OFFLINE if state == MB_MOVABLE else MB_OFFLINE_PARTIAL)
        self.ctx.emit("notify", start, end, action=MEM_OFFLINE)
        self.backend.memory_notify(MEM_OFFLINE, start, end)

    def _migrate_out(self, start: int, end: int) -> None:
        # Allocations are movable; their data leaves the device region (boot
        # memory is not modelled) and the old content stays in the frames.
        moved = self.page.count(USED, start=start, end=end)
        if moved:
            self.ctx.emit("migrate", start, end, pages=moved)

    def add_and_online_mb(self, mb: int) -> None:
        """add_memory_driver_managed() with auto-online."""
        start, end = self.mb_range(mb)
        self.page.set(start, end, OFFLINE)
        self.ctx.emit("add_memory", start, end)
        self.backend.memory_added(start, end)
        self.online_mb(mb)

    def remove_mb(self, mb: int) -> None:
        start, end = self.mb_range(mb)
        if self.mb_state[mb] in _ONLINE:
            self.offline_mb(mb)
        self.backend.memory_removing(start, end)
        self.page.set(start, end, ABSENT)
        self.mb_state.set(mb, mb + 1, MB_UNUSED)
        self.online_cancelled.set(mb, mb + 1, False)
        self.ctx.emit("remove_memory", start, end)

    def fake_online(self, start: int, end: int) -> None:
        """virtio_mem_fake_online: never-onlined pages (PageDirty) through
        generic_online_page, pages taken by alloc_contig_range through
        free_contig_range; at the largest order the range's alignment allows."""
        order = PAGES_PER_MAX_ORDER
        while (start | (end - start)) % order:
            order //= 2
        for s, e, state in list(self.page.runs(start, end)):
            # a block of 2^order pages goes by the state of its first page
            s, e = align_up(s, order), align_up(e, order)
            if s >= e:
                continue
            if state == FAKE_OFFLINE:
                self.zone.free_pages_core(s, e, order)
                continue
            for block in range(s, e, order):  # the kernel's loop, one block at a time
                self.backend.fake_online(block, block + order)
            self.page.set(s, e, BUDDY)

    def fake_offline(self, start: int, end: int) -> None:
        """virtio_mem_fake_offline: alloc_contig_range, migrating what is in use."""
        self.zone.isolate(start, end)
        self._migrate_out(start, end)
        self.page.set(start, end, TAKEN)

    # -- plug ------------------------------------------------------------

    def virtio_mem_sbm_plug_any_sb(self, mb: int, nb_sb: int) -> tuple[int, int]:
        old_state = self.mb_state[mb]
        mb_start, mb_end = self.mb_range(mb)
        while nb_sb:
            holes = self.sb_plugged.runs_where(mb_start, mb_end, False)
            if not holes:
                break
            start = holes[0][0]
            count = min(nb_sb, (holes[0][1] - start) // self.sb_pages)
            end = start + count * self.sb_pages
            rc = self.virtio_mem_sbm_plug_sb(start, end)
            if rc:
                return rc, nb_sb
            nb_sb -= count
            if old_state != MB_OFFLINE_PARTIAL:
                self.fake_online(start, end)
        if self.sb_plugged.all(mb_start, mb_end, True):
            self.mb_state.set(mb, mb + 1, _FULL[old_state])
        return 0, nb_sb

    def virtio_mem_sbm_plug_and_add_mb(self, mb: int, nb_sb: int) -> tuple[int, int]:
        count = min(nb_sb, self.sbs_per_mb)
        start = self.mb_range(mb)[0]
        rc = self.virtio_mem_sbm_plug_sb(start, start + count * self.sb_pages)
        if rc:
            return rc, nb_sb
        full = count == self.sbs_per_mb
        self.mb_state.set(mb, mb + 1, MB_OFFLINE if full else MB_OFFLINE_PARTIAL)
        self.add_and_online_mb(mb)
        return 0, nb_sb - count

    def virtio_mem_sbm_plug_request(self, diff_pages: int) -> int:
        nb_sb = diff_pages // self.sb_pages
        if not nb_sb:
            return 0
        for state in (MB_MOVABLE_PARTIAL, MB_OFFLINE_PARTIAL):
            for mb in self.for_each_mb(state):
                rc, nb_sb = self.virtio_mem_sbm_plug_any_sb(mb, nb_sb)
                if rc or not nb_sb:
                    return rc
        for mb in self.for_each_mb(MB_UNUSED):
            rc, nb_sb = self.virtio_mem_sbm_plug_and_add_mb(mb, nb_sb)
            if rc or not nb_sb:
                return rc
        while nb_sb:
            if self.next_mb > self.last_usable_mb:
                return ENOSPC
            mb = self.next_mb
            self.next_mb += 1
            with BlockWatch(self, mb, +1, rounds=nb_sb // self.sbs_per_mb) as watch:
                self.mb_state.set(mb, mb + 1, MB_UNUSED)
                rc, nb_sb = self.virtio_mem_sbm_plug_and_add_mb(mb, nb_sb)
            if rc:
                return rc
            times = watch.repeatable(min(nb_sb // self.sbs_per_mb,
                                         self.last_usable_mb - self.next_mb + 1))
            if times:  # the blocks above, plugged alike, at once
                watch.apply(times)
                self.next_mb += times
                nb_sb -= times * self.sbs_per_mb
        return 0

    # -- unplug ----------------------------------------------------------

    def virtio_mem_sbm_unplug_any_sb_offline(self, mb: int, nb_sb: int) -> tuple[int, int]:
        mb_start, mb_end = self.mb_range(mb)
        rc = 0
        while nb_sb:
            runs = self.sb_plugged.runs_where(mb_start, mb_end, True)
            if not runs:
                break
            end = runs[-1][1]
            count = min(nb_sb, (end - runs[-1][0]) // self.sb_pages)
            start = end - count * self.sb_pages
            rc = self.virtio_mem_sbm_unplug_sb(start, end)
            if rc:
                break
            nb_sb -= count
        if not self.sb_plugged.all(mb_start, mb_end, True):
            self.mb_state.set(mb, mb + 1, MB_OFFLINE_PARTIAL)
        if rc:
            return rc, nb_sb
        if self.sb_plugged.all(mb_start, mb_end, False):
            self.remove_mb(mb)
        return 0, nb_sb

    def virtio_mem_sbm_unplug_sb_online(self, start: int, end: int) -> int:
        self.fake_offline(start, end)
        rc = self.virtio_mem_sbm_unplug_sb(start, end)
        if rc:
            self.fake_online(start, end)
            return rc
        mb = start // self.mb_pages
        if self.mb_state[mb] == MB_MOVABLE:
            self.mb_state.set(mb, mb + 1, MB_MOVABLE_PARTIAL)
        return 0

    def virtio_mem_sbm_unplug_any_sb_online(self, mb: int, nb_sb: int) -> tuple[int, int]:
        mb_start, mb_end = self.mb_range(mb)
        unplugged_whole = False
        if nb_sb >= self.sbs_per_mb and self.sb_plugged.all(mb_start, mb_end, True):
            rc = self.virtio_mem_sbm_unplug_sb_online(mb_start, mb_end)
            if rc == 0:
                nb_sb -= self.sbs_per_mb
                unplugged_whole = True
            elif rc != EBUSY:
                return rc, nb_sb
        if not unplugged_whole:
            # Fall back to single subblocks, from the top down.
            while nb_sb:
                runs = self.sb_plugged.runs_where(mb_start, mb_end, True)
                if not runs:
                    break
                end = runs[-1][1]
                rc = self.virtio_mem_sbm_unplug_sb_online(end - self.sb_pages, end)
                if rc:
                    return rc, nb_sb
                nb_sb -= 1
        if self.sb_plugged.all(mb_start, mb_end, False):
            # virtio_mem_sbm_try_remove_unplugged_mb
            self.remove_mb(mb)
        return 0, nb_sb

    def virtio_mem_sbm_unplug_request(self, diff_pages: int) -> int:
        nb_sb = diff_pages // self.sb_pages
        for state in (MB_OFFLINE_PARTIAL, MB_OFFLINE, MB_MOVABLE_PARTIAL, MB_MOVABLE):
            for mb in self.for_each_mb(state, reverse=True):
                with BlockWatch(self, mb, -1, rounds=nb_sb // self.sbs_per_mb) as watch:
                    if state in _ONLINE:
                        rc, nb_sb = self.virtio_mem_sbm_unplug_any_sb_online(mb, nb_sb)
                    else:
                        rc, nb_sb = self.virtio_mem_sbm_unplug_any_sb_offline(mb, nb_sb)
                if rc or not nb_sb:
                    return rc
                times = watch.repeatable(nb_sb // self.sbs_per_mb)
                if times:  # the blocks below, unplugged alike, at once
                    watch.apply(times)
                    nb_sb -= times * self.sbs_per_mb
        return EBUSY if nb_sb else 0

    def virtio_mem_send_unplug_all_request(self) -> int:
        npages = self.host.npages
        if not self.backend.pre_unplug_all(0, npages):
            return self.mark_broken(0, npages, "pre-unplug-all hook failed")
        rc = _ERRNO["unplug_all"].get(self.host.unplug_all(), ENOMEM)
        if rc:
            return rc
        self.backend.unplugged_all(0, npages)
        self.unplug_all_required = False
        return 0

    # -- the work queue --------------------------------------------------

    def virtio_mem_run_wq(self) -> None:
        """Bring the plugged size to the requested size, retrying as the kernel does."""
        timer_fires = eagain = 0
        while not self.broken:
            rc = self._work_once()
            if self.broken:
                return
            if rc == 0 or rc == ENOSPC:
                return
            if rc == EAGAIN:
                eagain += 1
                if eagain >= EAGAIN_LOOPS:
                    return
                continue
            if rc in (ETXTBSY, EBUSY, ENOMEM):
                timer_fires += 1
                self.ctx.emit("retry_timer", rc=rc)
                if timer_fires > RETRY_TIMER_FIRES:
                    return
                continue
            self.broken = True
            self.ctx.emit("driver.broken", 0, self.host.npages, why=f"unknown error {rc}")
            return

    def _work_once(self) -> int:
        if self.unplug_all_required:
            rc = self.virtio_mem_send_unplug_all_request()
            if rc:
                return rc
        diff = self.host.requested_pages - self.plugged_pages
        if diff > 0:
            return self.virtio_mem_sbm_plug_request(diff)
        if diff < 0:
            return self.virtio_mem_sbm_unplug_request(-diff)
        return 0
