"""The host: QEMU's virtio-mem device and KVM's private/shared memory.

Pages are numbered from the start of the device region. Rules follow QEMU's
``hw/virtio/virtio-mem.c`` and KVM's guest_memfd code (docs/model.md, section 4).
The host knows no vendor: it offers neutral primitives (fault a private page in
at a level, convert, remove, demote) and counts them under the names the
vendor's :class:`HostWords` give (TDX: ``exit.ept_violation``, ``host.aug``;
SEV-SNP: ``exit.npf``, ``host.rmp_make_private`` ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .faults import FaultPlan
from .run import GuestCrash, RunContext
from .runmap import RunMap, uniform_values
from .scenario import Scenario, VmmPatch
from .state import (
    FREE,
    LEAF_2M,
    PAGES_PER_2M,
    PENDING_2M,
    PENDING_4K,
    PRESENT,
    PRIVATE,
    SHARED,
    with_level,
)
from .units import PAGE_SIZE, align_up

# virtio-mem requests and responses (include/uapi/linux/virtio_mem.h).
ACK, NACK, BUSY, ERROR = "ack", "nack", "busy", "error"
RESPONSES = (ACK, NACK, BUSY, ERROR)
PLUGGED, UNPLUGGED, MIXED = "plugged", "unplugged", "mixed"


@dataclass(frozen=True)
class HostWords:
    """How a platform names the host's neutral actions: counter and event names
    (sizes ``.4k``/``.2m`` are appended), and the KVM functions they model."""

    #: the exit of a private access KVM resolves by adding a page
    fault: str = "exit.fault"
    fault_fn: str = ""
    #: KVM adds a private page (a leaf of the given size)
    add: str = "host.add"
    add_fn: str = ""
    #: KVM removes a private page (guest_memfd punched or converted)
    remove: str = "host.remove"
    remove_fn: str = ""
    #: KVM splits a 2M leaf into 4K leaves
    demote: str = "host.demote"
    demote_fn: str = ""
    #: once a 2 MiB range was mapped at 4K it stays 4K (TDX keeps its S-EPT
    #: page tables while the TD runs)
    keeps_4k_tables: bool = False

    def counters(self) -> list[str]:
        """The counter names these words produce."""
        return [self.fault, f"{self.add}.4k", f"{self.add}.2m", f"{self.remove}.4k",
                f"{self.remove}.2m", f"{self.demote}.2m"]

    def functions(self) -> dict[str, str]:
        """Event name (or ``exit.<reason>``) -> the KVM function it models."""
        pairs = ((self.fault, self.fault_fn), (self.add, self.add_fn),
                 (self.remove, self.remove_fn), (self.demote, self.demote_fn))
        return {name: fn for name, fn in pairs if fn}


class Host:
    """QEMU + KVM state of the device region, and the operations on it."""

    def __init__(self, ctx: RunContext, scenario: Scenario, faults: FaultPlan,
                 *, confidential: bool, words: HostWords = HostWords()) -> None:
        self.ctx = ctx
        self.faults = faults
        self.confidential = confidential
        self.words = words
        dev = scenario.device
        self.npages = dev.region_size // PAGE_SIZE
        self.block_pages = dev.block_size // PAGE_SIZE
        self.usable_extent_pages = dev.usable_extent // PAGE_SIZE
        vmm = scenario.vmm
        self.memory = vmm.memory
        self.unplug_discards = tuple(vmm.unplug_discards)
        self.mapping_level = vmm.mapping_level
        self.implicit_conversion = vmm.implicit_conversion
        self.requested_pages = 0
        self.usable_pages = 0
        self.plugged = RunMap(self.npages, False)
        self.attr = RunMap(self.npages, self.start_attr)
        self.shared = RunMap(self.npages, False)
        self.private = RunMap(self.npages, FREE)
        #: True where KVM keeps a 4K page table for the 2 MiB range (a platform whose
        #: words say ``keeps_4k_tables``: TDX's tdx_sept_free_private_spt is not called
        #: while the TD runs), so a range once mapped at 4K stays 4K.
        self.pt_4k = RunMap(self.npages, False)
        #: 0 for zeroes; N for data the guest wrote at step N - 1; -N for that data
        #: once it left the guest (its block was unplugged), see ``departed``.
        self.content = RunMap(self.npages, 0)
        self.present_pages = 0
        self.peak_pages = 0
        #: called with ``(start, end)`` before private pages there are freed (the
        #: engine passes the vendor's ``removing_private``)
        self.removing: Callable[[int, int], None] = lambda start, end: None
        #: per-page maps a vendor keeps (``add_map``), part of ``page_maps``
        self.vendor_maps: list[tuple[RunMap, object]] = []

    def add_map(self, default: object) -> RunMap:
        """A per-page map for the vendor's own state (CCA's RIPAS ...): reset with the
        host and part of the state the bulk mechanism compares and copies."""
        runmap = RunMap(self.npages, default)
        self.vendor_maps.append((runmap, default))
        return runmap

    def settings(self) -> tuple:
        """The VMM settings that change what a call does."""
        return (self.mapping_level, self.implicit_conversion, self.unplug_discards)

    @property
    def start_attr(self) -> str:
        if not self.confidential:
            return SHARED
        return PRIVATE if self.memory == "start-private" else SHARED

    def apply(self, patch: VmmPatch) -> None:
        if patch.unplug_discards is not None:
            self.unplug_discards = tuple(patch.unplug_discards)
        if patch.mapping_level is not None:
            self.mapping_level = patch.mapping_level
        if patch.implicit_conversion is not None:
            self.implicit_conversion = patch.implicit_conversion

    # -- host memory accounting ------------------------------------------

    def _present(self, start: int, end: int) -> int:
        return (self.shared.count(True, start=start, end=end)
                + self.private.count(*PRESENT, start=start, end=end))

    def _account(self, start: int, end: int, before: int) -> None:
        self.present_pages += self._present(start, end) - before
        self.peak_pages = max(self.peak_pages, self.present_pages)

    @contextmanager
    def accounted(self, start: int, end: int) -> Iterator[None]:
        """Page maps of ``[start, end)`` set directly inside the block are accounted
        once at its end (states the block passes through do not count)."""
        before = self._present(start, end)
        yield
        self._account(start, end, before)

    # -- the virtio-mem device (QEMU) ------------------------------------

    @property
    def plugged_pages(self) -> int:
        return self.plugged.count(True)

    def set_requested(self, pages: int) -> None:
        """The host changes the requested size (QEMU's ``requested-size`` property)."""
        self.requested_pages = pages
        self._resize_usable(can_shrink=False)
        self.ctx.emit("config", requested=pages * PAGE_SIZE,
                      usable_region=self.usable_pages * PAGE_SIZE)

    def _resize_usable(self, *, can_shrink: bool) -> None:
        # virtio_mem_resize_usable_region: requested + VIRTIO_MEM_USABLE_EXTENT,
        # block-aligned, 0 when nothing is requested; it only grows while the
        # guest runs (it shrinks on UNPLUG_ALL and on reset).
        usable = min(self.npages, self.requested_pages + self.usable_extent_pages)
        usable = align_up(usable, self.block_pages)
        if not self.requested_pages:
            usable = 0
        if usable < self.usable_pages and not can_shrink:
            return
        self.usable_pages = usable

    def _respond(self, request: str, response: str, start: int, end: int) -> str:
        self.ctx.count(f"virtio_mem.{request}.{response}")
        self.ctx.emit("response", start, end, request=request, response=response)
        return response

    def request(self, request: str, start: int, end: int) -> str:
        """A PLUG or UNPLUG request for pages ``[start, end)``, in QEMU's order of checks."""
        self.ctx.emit("request", start, end, request=request)
        injected = self.faults.take(f"virtio_mem.{request}")
        if injected:
            return self._respond(request, injected, start, end)
        plug = request == "plug"
        if (start % self.block_pages or end % self.block_pages or end <= start
                or end > self.usable_pages):
            return self._respond(request, ERROR, start, end)
        if plug and self.plugged_pages + (end - start) > self.requested_pages:
            return self._respond(request, NACK, start, end)
        if not self.plugged.all(start, end, not plug):
            return self._respond(request, ERROR, start, end)
        self.plugged.set(start, end, plug)
        if not plug:
            self.departed(start, end)
            self.discard(start, end)
        return self._respond(request, ACK, start, end)

    def unplug_all(self) -> str:
        self.ctx.emit("request", 0, self.npages, request="unplug_all")
        injected = self.faults.take("virtio_mem.unplug_all")
        if injected:
            return self._respond("unplug_all", injected, 0, self.npages)
        self.departed(0, self.npages)
        self.plugged.set(0, self.npages, False)
        self.discard(0, self.npages)
        self._resize_usable(can_shrink=True)
        return self._respond("unplug_all", ACK, 0, self.npages)

    def departed(self, start: int, end: int) -> None:
        """Data in ``[start, end)`` left the guest: the device took the memory back, so
        the guest may no longer assume it holds what it wrote (a later accept that
        keeps it hands the guest stale data)."""
        for s, e, content in list(self.content.runs(start, end)):
            if content > 0:
                self.content.set(s, e, -content)

    def state(self, start: int, end: int) -> str:
        self.ctx.count("virtio_mem.state.ack")
        if self.plugged.all(start, end, True):
            return PLUGGED
        if self.plugged.all(start, end, False):
            return UNPLUGGED
        return MIXED

    def discard(self, start: int, end: int) -> None:
        """Free the planes this VMM discards on unplug (upstream QEMU: shared only)."""
        before = self._present(start, end)
        if "shared" in self.unplug_discards:
            for s, e in self.shared.runs_where(start, end, True):
                self.shared.set(s, e, False)
                for zs, ze in self.attr.runs_where(s, e, SHARED):
                    self.content.set(zs, ze, 0)
        if "private" in self.unplug_discards:
            self._remove_private(start, end)
        self._account(start, end, before)
        self.ctx.emit("host.discard", start, end, planes=",".join(self.unplug_discards))

    def reset(self) -> None:
        """System reset: a new TD; every page freed, the device unplugged."""
        self.plugged.set(0, self.npages, False)
        self.attr.set(0, self.npages, self.start_attr)
        self.shared.set(0, self.npages, False)
        self.private.set(0, self.npages, FREE)
        self.pt_4k.set(0, self.npages, False)
        self.content.set(0, self.npages, 0)
        for runmap, default in self.vendor_maps:
            runmap.set(0, self.npages, default)
        self.present_pages = 0
        self._resize_usable(can_shrink=True)
        self.ctx.emit("host.reset", 0, self.npages)

    # -- KVM: private memory ---------------------------------------------

    def _split_2m(self, start: int, end: int) -> None:
        """Demote 2M leaves that ``[start, end)`` covers only in part."""
        for edge in (start, end):
            if edge % PAGES_PER_2M and edge < self.npages and self.private[edge] in LEAF_2M:
                self.demote(edge)

    def _remove_private(self, start: int, end: int) -> None:
        """Punch guest_memfd: S-EPT REMOVE of every leaf in the range."""
        self.removing(start, end)
        self._split_2m(start, end)
        for s, e, value in list(self.private.runs(start, end)):
            if value == FREE:
                continue
            if value in LEAF_2M:
                self.ctx.count(f"{self.words.remove}.2m", (e - s) // PAGES_PER_2M)
            else:
                self.ctx.count(f"{self.words.remove}.4k", e - s)
            self.private.set(s, e, FREE)
            for zs, ze in self.attr.runs_where(s, e, PRIVATE):
                self.content.set(zs, ze, 0)
        self.ctx.emit(self.words.remove, start, end)

    def remove_private(self, start: int, end: int) -> None:
        """Free the private pages of ``[start, end)`` (guest_memfd punched), counted
        under the vendor's remove word, host memory accounted."""
        before = self._present(start, end)
        self._remove_private(start, end)
        self._account(start, end, before)

    def convert(self, start: int, end: int, to: str) -> int:
        """kvm_convert_memory: set the attribute, free the other copy. Returns pages changed."""
        before = self._present(start, end)
        changed = self.attr.runs_where(start, end, SHARED if to == PRIVATE else PRIVATE)
        for s, e in changed:
            if to == PRIVATE:
                self.shared.set(s, e, False)
            else:
                self._remove_private(s, e)
            self.attr.set(s, e, to)
            self.content.set(s, e, 0)
        pages = sum(e - s for s, e in changed)
        self.ctx.count(f"host.convert.{to}", pages)
        self._account(start, end, before)
        if pages:
            self.ctx.emit("host.convert", start, end, to=to, pages=pages)
        return pages

    def fault_in(self, page: int, level: str) -> None:
        """A private access faulted at ``page``; KVM (and maybe QEMU) handles it.

        On a shared GFN the exit goes to the VMM (KVM_EXIT_MEMORY_FAULT), which
        converts that 4 KiB page; on a private FREE GFN KVM adds a page (TDX:
        TDH.MEM.PAGE.AUG; SNP: RMPUPDATE) at the smaller of the access level and
        its mapping level, 2 MiB only where the whole 2 MiB is private and free.
        """
        self.count_fault(page, level=level)
        if self.attr[page] == SHARED:
            if not self.implicit_conversion:
                raise GuestCrash("access-unaccepted", page, page + 1,
                                 "private access to a shared GFN; the VMM does not convert")
            self.ctx.count("exit.memory_fault")
            self.ctx.emit("exit", page, page + 1, reason="memory_fault")
            self.convert(page, page + 1, PRIVATE)
            return
        if self.private[page] != FREE:
            return
        base = page - page % PAGES_PER_2M
        if (level == "2m" and self.mapping_level == "2m"
                and base + PAGES_PER_2M <= self.npages and not self.pt_4k[base]
                and self.attr.all(base, base + PAGES_PER_2M, PRIVATE)
                and self.private.all(base, base + PAGES_PER_2M, FREE)):
            self.add_private(base, base + PAGES_PER_2M, "2m")
        else:
            if self.words.keeps_4k_tables:
                self._make_pt_4k(base)
            self.add_private(page, page + 1, "4k")

    def add_private(self, start: int, end: int, leaf: str, **info: object) -> None:
        """KVM adds private pages over ``[start, end)`` as leaves of ``leaf`` size
        (``2m``: a 2M-aligned range), zeroed and not accepted yet, counted under the
        vendor's add word: what a fault does, and what a prefault does without one."""
        before = self._present(start, end)
        self.private.set(start, end, PENDING_2M if leaf == "2m" else PENDING_4K)
        self.content.set(start, end, 0)
        self._account(start, end, before)
        self.ctx.count(f"{self.words.add}.{leaf}",
                       (end - start) // PAGES_PER_2M if leaf == "2m" else end - start)
        self.ctx.emit(self.words.add, start, end, level=leaf, **info)

    def count_fault(self, page: int, **info: object) -> None:
        """One exit of a private access at ``page`` (the vendor's fault word)."""
        self.ctx.count(self.words.fault)
        self.ctx.emit("exit", page, page + 1, reason=self.words.fault.removeprefix("exit."),
                      **info)

    def uniform_end(self, start: int, end: int) -> int:
        """Where the first page map changes value after ``start`` (at most ``end``)."""
        return min(end, *(next(m.runs(start, end))[1] for m in self.page_maps))

    def uniform_values(self, start: int, end: int) -> tuple | None:
        """The value of every page map over ``[start, end)``; None unless each is uniform."""
        return uniform_values(self.page_maps, start, end)

    def set_uniform(self, start: int, end: int, values: tuple) -> None:
        """Give ``[start, end)`` one value per page map (as ``uniform_values`` read them)."""
        with self.accounted(start, end):
            for runmap, value in zip(self.page_maps, values, strict=True):
                runmap.set(start, end, value)

    @property
    def page_maps(self) -> tuple[RunMap, ...]:
        """Every per-page map of the host; a range uniform in all of them behaves alike."""
        return (self.private, self.pt_4k, self.attr, self.shared, self.content,
                *(runmap for runmap, _ in self.vendor_maps))

    def _make_pt_4k(self, base: int) -> None:
        self.pt_4k.set(base, min(base + PAGES_PER_2M, self.npages), True)

    def demote(self, page: int) -> None:
        """Split the 2M leaf holding ``page`` into 4K leaves of the same state
        (BLOCK + TRACK + DEMOTE in the huge-page series)."""
        base = page - page % PAGES_PER_2M
        self.private.set(base, base + PAGES_PER_2M, with_level(self.private[page], "4k"))
        if self.words.keeps_4k_tables:
            self._make_pt_4k(base)
        self.ctx.count(f"{self.words.demote}.2m")
        self.ctx.emit(self.words.demote, base, base + PAGES_PER_2M)

    def populate_shared(self, start: int, end: int) -> None:
        """A guest touch of shared memory: the VMM's page appears, zeroed."""
        before = self._present(start, end)
        for s, e in self.shared.runs_where(start, end, False):
            self.shared.set(s, e, True)
        self._account(start, end, before)
