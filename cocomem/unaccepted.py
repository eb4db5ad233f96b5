"""The EFI unaccepted-memory table (drivers/firmware/efi/unaccepted_memory.c).

One bit per 2 MiB unit (``EFI_UNACCEPTED_UNIT_SIZE`` = ``PMD_SIZE`` on x86), a
set bit meaning "not accepted yet". Mainline's table covers boot memory only,
so it never covers a virtio-mem device: ``accept_memory`` over hot-plugged
memory does nothing. RFC v2 ("[RFCv2 PATCH 0/6] Support memory
hotplug/unplug for TDX CoCo guests", 2026-06-23) extends it over every SRAT
hot-pluggable range (patches 1-2, all units unaccepted) and adds a second
"plugged" bitmap (patch 3): ``accept_memory`` accepts only plugged and
unaccepted units, ``unaccept_memory`` releases plugged and accepted ones.

The table lives in ACPI-reclaim memory that every kernel reserves again
(``reserve_unaccepted``), so it survives kexec and kdump's capture kernel; a
new TD (reboot) gets a new one from the firmware.
"""

from __future__ import annotations

from collections.abc import Callable

from .run import RunContext
from .runmap import RunMap
from .state import PAGES_PER_2M
from .units import align_up
from .vendor import Vendor

UNIT = PAGES_PER_2M


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


class UnacceptedMemory:
    """The unaccepted and plugged bitmaps over the device region."""

    def __init__(self, ctx: RunContext, npages: int, vendor: Vendor, *, covers: bool) -> None:
        self.ctx = ctx
        self.npages = npages
        self.vendor = vendor
        #: the EFI stub builds the table only on architectures with unaccepted memory
        #: (x86: TDX and SNP guests), and (RFC v2 patch 1) extends it over
        #: hot-pluggable ranges only when patched
        self.covers = covers and vendor.confidential and vendor.unaccepted_memory
        self.unaccepted = RunMap(npages, self.covers)
        self.plugged = RunMap(npages, False)

    def boot(self) -> None:
        """A new TD: mark_hotplug_memory_unaccepted, nothing plugged yet."""
        self.unaccepted.set(0, self.npages, self.covers)
        self.plugged.set(0, self.npages, False)

    def _units(self, start: int, end: int) -> tuple[int, int]:
        """[start, end) widened to whole units (range_start / DIV_ROUND_UP(end))."""
        return start - start % UNIT, min(self.npages, align_up(end, UNIT))

    def _guarded(self, start: int, end: int) -> tuple[int, int]:
        # "an extra 'guard' page is accepted" when the range ends on a unit
        # boundary, against load_unaligned_zeropad (commit c211c19e80d0)
        if end % UNIT == 0:
            end += UNIT
        return self._units(start, end)

    def pending(self, start: int, end: int) -> list[tuple[int, int]]:
        """Units of [start, end) that are plugged and unaccepted."""
        return _intersect(self.unaccepted.runs_where(start, end, True),
                          self.plugged.runs_where(start, end, True))

    def to_accept(self, start: int, end: int) -> list[tuple[int, int]]:
        """The runs ``accept_memory(start, end)`` accepts: plugged and unaccepted
        units of the range and its guard unit."""
        return self.pending(*self._guarded(start, end))

    def range_contains_unaccepted_memory(self, start: int, end: int) -> bool:
        if not self.covers:
            return False
        return bool(self.to_accept(start, end))

    def accept_memory(self, start: int, end: int) -> None:
        """accept_memory(): arch_accept_memory (accept or panic) on every run of plugged
        and unaccepted units of [start, end) and its guard unit, then clear their bits."""
        if not self.covers:
            return
        for s, e in self.to_accept(start, end):
            self.ctx.emit("call", s, e, fn="accept_memory")
            self.vendor.arch_accept_memory(s, e)
            self.unaccepted.set(s, e, False)

    def unaccept_memory(self, start: int, end: int,
                        arch_unaccept_memory: Callable[[int, int], None]) -> None:
        """RFC v2 unaccept_memory(): ``arch_unaccept_memory`` (the series' own: release
        or panic) on every run of plugged and accepted units, then set their bits.
        No guard unit."""
        if not self.covers:
            return
        if start % UNIT or end % UNIT or end > self.npages:
            self.ctx.emit("warn", start, end, fn="unaccept_memory", why="range not 2M-aligned")
            return
        accepted = self.unaccepted.runs_where(start, end, False)
        for s, e in _intersect(accepted, self.plugged.runs_where(start, end, True)):
            self.ctx.emit("call", s, e, fn="unaccept_memory")
            arch_unaccept_memory(s, e)
            self.unaccepted.set(s, e, True)

    def set_plugged(self, start: int, end: int, plugged: bool) -> None:
        """RFC v2 coco_set_plugged_bitmap()."""
        if not self.covers:
            return
        self.plugged.set(*self._units(start, end), plugged)

    def not_ram_in_vmcore(self, start: int, end: int) -> list[tuple[int, int]]:
        """Pages unaccepted_memory_vmcore_pfn_is_ram() reports as not RAM: plugged and
        unaccepted units, plus (the guard rule applied to one page) the last page
        before each of them."""
        if not self.covers:
            return []
        out: list[tuple[int, int]] = []
        for s, e in self.pending(max(0, start - 1), min(self.npages, end + 1)):
            s = max(start, s - 1) if s > 0 else s
            e = min(end, e)
            if s < e:
                if out and out[-1][1] >= s:
                    out[-1] = (out[-1][0], max(out[-1][1], e))
                else:
                    out.append((s, e))
        return out
