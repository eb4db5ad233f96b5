"""A dense reference model: one numpy element per 4 KiB page, written as plainly
as the rules read (docs/model.md and the docstrings of ``cocomem/unaccepted.py``,
``cocomem/zone.py`` and the backend and vendor plugins), to check the
run-length engine against.

Nothing here is shared with ``cocomem``'s engine except the scenario model
and the state names: the host, the TDX module, the EFI unaccepted-memory
table, the zone's lazy-accept list, the virtio-mem driver, the five backends
and the checks are written again, call by call, page by page.
Scope: TDX (with or without PAGE_RELEASE); faults as the scenario injects them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cocomem.scenario import Scenario, Step
from cocomem.state import (
    MB_MOVABLE,
    MB_MOVABLE_PARTIAL,
    MB_NONE,
    MB_OFFLINE,
    MB_OFFLINE_PARTIAL,
    MB_UNUSED,
)

# private page states (S-EPT)
FREE, P4K, P2M, M4K, M2M = range(5)
PRIVATE_CODES = {"free": FREE, "pending/4k": P4K, "pending/2m": P2M,
                 "mapped/4k": M4K, "mapped/2m": M2M}
TO_4K = {FREE: FREE, P4K: P4K, P2M: P4K, M4K: M4K, M2M: M4K}
# KVM attribute
PRIVATE, SHARED = 0, 1
ATTR_CODES = {"private": PRIVATE, "shared": SHARED}
# the guest's view of a page
ABSENT, OFFLINE, FAKE_OFFLINE, TAKEN, BUDDY, USED, UNACCEPTED = range(7)
PAGE_CODES = {"absent": ABSENT, "offline": OFFLINE, "fake-offline": FAKE_OFFLINE,
              "fake-offline/taken": TAKEN, "free": BUDDY, "used": USED,
              "unaccepted": UNACCEPTED}
#: pages the zone manages (managed_pages)
MANAGED = (BUDDY, USED, UNACCEPTED)

P2M_PAGES = 512
P1G_PAGES = 512 * 512
LEVEL_PAGES = {"1g": P1G_PAGES, "2m": P2M_PAGES, "4k": 1}
#: EFI_UNACCEPTED_UNIT_SIZE (PMD_SIZE on x86)
UNIT = 512
#: MAX_PAGE_ORDER: the buddy allocator's largest block, the lazy-accept chunk
CHUNK = 1024
KINDS = ("access-unaccepted", "accept-panic", "stale-assumed-zero", "accept-unbacked",
         "use-after-unplug", "state-mismatch", "double-accept", "device-broken", "leak",
         "private-residue")
EIO, EAGAIN, ENOMEM, EBUSY, EINVAL, ETXTBSY, ENOSPC = -5, -11, -12, -16, -22, -26, -28


def promo_wmark_pages(managed: int) -> int:
    """The promo watermark of a ZONE_MOVABLE of ``managed`` pages, the guest having
    1 GiB of boot memory (lowmem 262144 pages, min_free_kbytes 4096: pages_min 1024)
    and watermark_scale_factor 10 (__setup_per_zone_wmarks)."""
    if managed == 0:
        return 0
    wmark_min = max(32, managed // 1024)        # SWAP_CLUSTER_MAX at least
    wmark_min = min(wmark_min, 128)             # ... and 128 at most
    tmp = 1024 * managed // 262144              # pages_min * managed / lowmem
    tmp = max(tmp // 4, managed * 10 // 10000)
    return wmark_min + 3 * tmp


class Faults:
    """The nth call of an operation returns the scenario's status, without its effect."""

    def __init__(self, faults) -> None:
        self.faults = list(faults)
        self.calls: Counter[str] = Counter()

    def take(self, call: str) -> str | None:
        self.calls[call] += 1
        n = self.calls[call]
        for fault in self.faults:
            if fault.call == call and fault.nth <= n < fault.nth + fault.count:
                return fault.status
        return None


class Crash(Exception):
    def __init__(self, kind: str, start: int, end: int) -> None:
        super().__init__(kind)
        self.kind, self.start, self.end = kind, start, end


def true_runs(mask: np.ndarray, offset: int = 0) -> list[tuple[int, int]]:
    """Maximal ranges where ``mask`` is true, as ``(start, end)`` plus ``offset``."""
    padded = np.concatenate(([False], mask.astype(bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(offset + int(s), offset + int(e)) for s, e in zip(edges[::2], edges[1::2],
                                                                strict=True)]


class ReferenceRun:
    """The whole stack for one backend, dense."""

    def __init__(self, scenario: Scenario, backend: str) -> None:
        dev, vmm = scenario.device, scenario.vmm
        self.backend = backend
        self.n = n = dev.region_size // 4096
        self.block = dev.block_size // 4096
        self.extent = dev.usable_extent // 4096
        self.memory = vmm.memory
        self.discards = set(vmm.unplug_discards)
        self.mapping = vmm.mapping_level
        self.implicit = vmm.implicit_conversion
        self.requested = self.usable = 0
        self.faults = Faults(scenario.faults)
        self.page_release = scenario.vendor_options.get("tdx", {}).get("page_release", True)
        self.ignore_already_accepted = scenario.backend_options.get("notifier", {}).get(
            "ignore_already_accepted", True)
        # host
        self.plugged = np.zeros(n, bool)
        self.start_attr = PRIVATE if vmm.memory == "start-private" else SHARED
        self.attr = np.full(n, self.start_attr, np.int8)
        self.shared = np.zeros(n, bool)
        self.private = np.full(n, FREE, np.int8)
        # KVM's 4K S-EPT page tables: per 2 MiB range, set on each of its pages
        self.pt_4k = np.zeros(n, bool)
        # 0: zeroes; N > 0: written at step N - 1; -N: that data, unplugged since
        self.content = np.zeros(n, np.int64)
        # host pages backing the region; only an AUG adds one, so the peak is
        # taken there
        self.present = self.peak = 0
        # the EFI unaccepted-memory table (one bit per 2 MiB unit, kept here per
        # page) and RFC v2's plugged bitmap; only plugged-bitmap extends it over
        # the device region. It survives kexec; a reboot brings a new one.
        self.covers = backend == "plugged-bitmap"
        self.unaccepted = np.full(n, self.covers, bool)
        self.plugged_bits = np.zeros(n, bool)
        # guest
        self.sb = scenario.subblock_size // 4096
        self.mb = scenario.guest.memory_block_size // 4096
        self.sbs_per_mb = self.mb // self.sb
        self.lazy = scenario.guest.accept_memory == "lazy"
        self.new_kernel()
        # results
        self.counters: Counter[str] = Counter()
        self.first = {kind: np.full(n, -1, np.int64) for kind in KINDS}
        self.step_index = 0
        self.crashed = False

    def count(self, name: str, k: int = 1) -> None:
        self.counters[name] += k

    def violation(self, kind: str, start: int, end: int) -> None:
        first = self.first[kind][start:end]
        first[first < 0] = self.step_index

    def violation_where(self, kind: str, mask: np.ndarray, offset: int = 0) -> None:
        for s, e in true_runs(mask, offset):
            self.violation(kind, s, e)

    # -- host: QEMU --------------------------------------------------------

    def usable_for(self, pages: int) -> int:
        """QEMU: requested + extent, block-aligned; 0 when nothing is requested."""
        return -(-min(self.n, pages + self.extent) // self.block) * self.block if pages else 0

    def set_requested(self, pages: int) -> None:
        # the usable region never shrinks while the guest runs
        self.requested = pages
        self.usable = max(self.usable, self.usable_for(pages))

    def reset(self) -> None:
        """System reset: a new TD (no page tables), the device unplugged, the usable
        region recomputed, and a new EFI table from the firmware."""
        self.plugged[:] = False
        self.attr[:] = self.start_attr
        self.shared[:] = False
        self.private[:] = FREE
        self.pt_4k[:] = False
        self.content[:] = 0
        self.present = 0
        self.usable = self.usable_for(self.requested)
        self.unaccepted[:] = self.covers
        self.plugged_bits[:] = False

    def departed(self, s: int, e: int) -> None:
        """The device took [s, e) back: what the guest wrote there left it."""
        content = self.content[s:e]
        content[content > 0] *= -1

    def unplug_all(self) -> str:
        injected = self.faults.take("virtio_mem.unplug_all")
        if injected:
            self.count(f"virtio_mem.unplug_all.{injected}")
            return injected
        self.departed(0, self.n)
        self.plugged[:] = False
        self.discard(0, self.n)
        self.usable = self.usable_for(self.requested)
        self.count("virtio_mem.unplug_all.ack")
        return "ack"

    def request(self, kind: str, s: int, e: int) -> str:
        plug = kind == "plug"
        injected = self.faults.take(f"virtio_mem.{kind}")
        if injected:
            response = injected
        elif s % self.block or e % self.block or e <= s or e > self.usable:
            response = "error"
        elif plug and self.plugged.sum() + (e - s) > self.requested:
            response = "nack"
        elif not (self.plugged[s:e] == (not plug)).all():
            response = "error"
        else:
            response = "ack"
            self.plugged[s:e] = plug
            if not plug:
                self.departed(s, e)
                self.discard(s, e)
        self.count(f"virtio_mem.{kind}.{response}")
        return response

    def discard(self, s: int, e: int) -> None:
        if "shared" in self.discards:
            gone = self.shared[s:e].copy()
            self.shared[s:e] = False
            self.present -= int(gone.sum())
            self.content[s:e][gone & (self.attr[s:e] == SHARED)] = 0
        if "private" in self.discards:
            self.remove_private(s, e)

    # -- host: KVM ---------------------------------------------------------

    def demote(self, page: int) -> None:
        """Split the 2M leaf holding ``page``; its range keeps a 4K page table."""
        base = page - page % P2M_PAGES
        self.private[base:base + P2M_PAGES] = TO_4K[int(self.private[page])]
        self.pt_4k[base:base + P2M_PAGES] = True
        self.count("host.demote.2m")

    def remove_private(self, s: int, e: int) -> None:
        for edge in (s, e):
            if edge % P2M_PAGES and edge < self.n and self.private[edge] in (P2M, M2M):
                self.demote(edge)
        states = self.private[s:e]
        self.count("host.remove.2m", int(np.isin(states, (P2M, M2M)).sum()) // P2M_PAGES)
        self.count("host.remove.4k", int(np.isin(states, (P4K, M4K)).sum()))
        self.content[s:e][(states != FREE) & (self.attr[s:e] == PRIVATE)] = 0
        self.present -= int((states != FREE).sum())
        self.private[s:e] = FREE

    def convert(self, s: int, e: int, to: int) -> None:
        changing = self.attr[s:e] != to
        if to == PRIVATE:
            self.present -= int((self.shared[s:e] & changing).sum())
            self.shared[s:e][changing] = False
        else:
            for rs, re_ in true_runs(changing, s):
                self.remove_private(rs, re_)
        self.attr[s:e][changing] = to
        self.content[s:e][changing] = 0
        self.count(f"host.convert.{'private' if to == PRIVATE else 'shared'}",
                   int(changing.sum()))

    def ept_violation(self, page: int, level: str) -> None:
        self.count("exit.ept_violation")
        if self.attr[page] == SHARED:
            if not self.implicit:
                raise Crash("access-unaccepted", page, page + 1)
            self.count("exit.memory_fault")
            self.convert(page, page + 1, PRIVATE)
            return
        if self.private[page] != FREE:
            return
        base = page - page % P2M_PAGES
        whole = slice(base, base + P2M_PAGES)
        if (level == "2m" and self.mapping == "2m" and page == base
                and base + P2M_PAGES <= self.n and not self.pt_4k[base]
                and (self.attr[whole] == PRIVATE).all()
                and (self.private[whole] == FREE).all()):
            self.private[whole] = P2M
            self.content[whole] = 0
            self.count("host.aug.2m")
            self.present += P2M_PAGES
        else:
            self.private[page] = P4K
            self.pt_4k[whole] = True
            self.content[page] = 0
            self.count("host.aug.4k")
            self.present += 1
        self.peak = max(self.peak, self.present)

    # -- TDX module --------------------------------------------------------

    def tdcall(self, op: str, level: str, status: str) -> str:
        self.count(f"tdcall.{op}.{level}.{status}")
        return status

    def accept_one(self, page: int, level: str) -> str:
        injected = self.faults.take("tdcall.accept")
        if injected:
            return self.tdcall("accept", level, injected)
        if level == "1g":
            return self.tdcall("accept", level, "operand_invalid")
        for _ in range(4):
            state = int(self.private[page])
            if level == "2m":
                leaf = slice(page, page + P2M_PAGES)
                if state in (P2M, M2M):
                    if state == M2M:
                        return self.tdcall("accept", level, "already_accepted")
                    self.private[leaf] = M2M
                    self.content[leaf] = 0
                    return self.tdcall("accept", level, "ok")
                # a 4K page table there: size mismatch, no exit
                if self.pt_4k[page] or np.isin(self.private[leaf], (P4K, M4K)).any():
                    return self.tdcall("accept", level, "size_mismatch")
            else:
                if state == M2M or state == M4K:
                    return self.tdcall("accept", level, "already_accepted")
                if state == P2M:
                    self.count("exit.ept_violation")
                    self.demote(page)
                    continue
                if state == P4K:
                    self.private[page] = M4K
                    self.content[page] = 0
                    return self.tdcall("accept", level, "ok")
            self.ept_violation(page, level)
        raise AssertionError("ACCEPT did not settle")

    def release_one(self, page: int, level: str) -> str:
        injected = self.faults.take("tdcall.release")
        if injected:
            return self.tdcall("release", level, injected)
        if level == "1g":
            return self.tdcall("release", level, "operand_invalid")
        size = LEVEL_PAGES[level]
        state = int(self.private[page])
        is_2m_leaf = state in (P2M, M2M)
        if level == "2m" and not is_2m_leaf and (
                self.pt_4k[page] or np.isin(self.private[page:page + size], (P4K, M4K)).any()):
            return self.tdcall("release", level, "size_mismatch")
        if level == "4k" and is_2m_leaf:
            return self.tdcall("release", level, "size_mismatch")
        if state in (M4K, M2M):
            self.private[page:page + size] = P2M if level == "2m" else P4K
            self.content[page:page + size] = 0
        return self.tdcall("release", level, "ok")

    def walk(self, start: int, end: int, try_one, succeeded) -> int:
        """tdx_accept_memory: at each address try 1G, then 2M, then 4K; returns
        where it stopped (``end`` when all went well)."""
        pos = start
        while pos < end:
            for level in ("1g", "2m", "4k"):
                size = LEVEL_PAGES[level]
                if pos % size or end - pos < size:
                    continue
                if succeeded(try_one(pos, level)):
                    pos += size
                    break
            else:
                return pos
        return pos

    def accept_memory(self, start: int, end: int, tolerate: bool = False) -> bool:
        def try_one(page: int, level: str) -> str:
            status = self.accept_one(page, level)
            s, e = page, page + LEVEL_PAGES[level]
            if status == "already_accepted":
                self.violation("double-accept", s, e)
                if tolerate:
                    self.violation_where("stale-assumed-zero", self.content[s:e] < 0, s)
            if (status == "ok" or (tolerate and status == "already_accepted")) and not (
                    self.plugged[s:e].all()):
                self.violation_where("accept-unbacked", ~self.plugged[s:e], s)
            return status

        def succeeded(status: str) -> bool:
            return status == "ok" or (tolerate and status == "already_accepted")

        return self.walk(start, end, try_one, succeeded) == end

    def release_memory(self, start: int, end: int) -> bool:
        """tdx_release_memory: true at once without PAGE_RELEASE; when a RELEASE fails,
        re-accept what was released (panic if that fails) and return false."""
        if not self.page_release:
            return True
        released = self.walk(start, end, self.release_one, lambda status: status == "ok")
        if released == end:
            return True
        if released > start and not self.accept_memory(start, released):
            raise Crash("accept-panic", start, released)
        return False

    def arch_accept_memory(self, start: int, end: int) -> None:
        if not self.accept_memory(start, end):
            raise Crash("accept-panic", start, end)

    def arch_unaccept_memory(self, start: int, end: int) -> None:
        if not self.release_memory(start, end):
            raise Crash("accept-panic", start, end)

    def map_gpa(self, start: int, end: int, to: int) -> bool:
        """tdx_map_gpa. KVM exits once per 2 MiB chunk. An injected status: ok and
        align_error come without an exit and convert nothing; retry and
        invalid_operand answer the first chunk's exit (one exit, nothing converted,
        R11 = start). The guest gives up after 3 retries without progress."""
        retries = 0
        while retries < 3:
            injected = self.faults.take("tdvmcall.map_gpa")
            if injected == "ok":
                self.count("tdvmcall.map_gpa.ok")
                return True
            if injected == "align_error":
                self.count("tdvmcall.map_gpa.error")
                return False
            if injected is not None:
                self.count("exit.map_gpa")
                if injected != "retry":
                    self.count("tdvmcall.map_gpa.error")
                    return False
                self.count("tdvmcall.map_gpa.retry")
                retries += 1  # R11 = start: no progress
                continue
            self.count("exit.map_gpa", -(-(end - start) // P2M_PAGES))
            self.convert(start, end, to)
            self.count("tdvmcall.map_gpa.ok")
            return True
        return False

    def touch(self, start: int, end: int) -> None:
        """The first private access that faults: a FREE page is AUGed (exit) and the
        access retried; a PENDING page is one more, fatal, exit."""
        bad = np.flatnonzero(np.isin(self.private[start:end], (FREE, P4K, P2M)))
        if not len(bad):
            return
        page = start + int(bad[0])
        for _ in range(4):
            if self.private[page] != FREE:
                break
            self.ept_violation(page, "4k")
        if self.private[page] in (P4K, P2M):
            self.count("exit.ept_violation")

    # -- the EFI unaccepted-memory table ---------------------------------------

    def units(self, start: int, end: int) -> tuple[int, int]:
        return start - start % UNIT, min(self.n, -(-end // UNIT) * UNIT)

    def with_guard(self, start: int, end: int) -> tuple[int, int]:
        """A range ending on a unit boundary takes the next unit too."""
        return self.units(start, end + UNIT if end % UNIT == 0 else end)

    def table_pending(self) -> np.ndarray:
        """Pages of plugged and unaccepted units."""
        return self.unaccepted & self.plugged_bits

    def range_contains_unaccepted_memory(self, start: int, end: int) -> bool:
        if not self.covers:
            return False
        s, e = self.with_guard(start, end)
        return bool(self.table_pending()[s:e].any())

    def table_accept_memory(self, start: int, end: int) -> None:
        """accept_memory(): arch_accept_memory on each run of plugged and unaccepted
        units of the range and its guard unit, then their bits cleared."""
        if not self.covers:
            return
        s, e = self.with_guard(start, end)
        for rs, re_ in true_runs(self.table_pending()[s:e], s):
            self.arch_accept_memory(rs, re_)
            self.unaccepted[rs:re_] = False

    def table_unaccept_memory(self, start: int, end: int) -> None:
        """RFC v2 unaccept_memory(): arch_unaccept_memory on each run of plugged and
        accepted units, then their bits set. 2 MiB-aligned ranges only, no guard."""
        if not self.covers or start % UNIT or end % UNIT or end > self.n:
            return
        for rs, re_ in true_runs(~self.unaccepted[start:end] & self.plugged_bits[start:end],
                                 start):
            self.arch_unaccept_memory(rs, re_)
            self.unaccepted[rs:re_] = True

    def set_plugged_bits(self, start: int, end: int, plugged: bool) -> None:
        if self.covers:
            s, e = self.units(start, end)
            self.plugged_bits[s:e] = plugged

    # -- the zone (page allocator) -----------------------------------------------

    def free_pages_core(self, start: int, end: int, order_pages: int) -> None:
        """__free_pages_core for each block of ``order_pages`` pages: a block with
        unaccepted memory (guard included) goes on the lazy list when it is a whole
        MAX_ORDER chunk and accept_memory=lazy, or is accepted now; then the buddy."""
        for b in range(start, end, order_pages):
            e = b + order_pages
            if not self.range_contains_unaccepted_memory(b, e):
                self.page[b:e] = BUDDY
            elif self.lazy and order_pages == CHUNK:
                self.page[b:e] = UNACCEPTED
                self.deferred.append(b)
            else:
                self.table_accept_memory(b, e)
                self.page[b:e] = BUDDY

    def accept_chunk(self, chunk: int) -> None:
        """__accept_page: accept_memory over the chunk, then to the buddy."""
        self.table_accept_memory(chunk, chunk + CHUNK)
        self.page[chunk:chunk + CHUNK] = BUDDY

    def watermark(self) -> int:
        return promo_wmark_pages(int(np.isin(self.page, MANAGED).sum()))

    def cond_accept_memory(self) -> None:
        if not self.deferred:
            return
        wmark = self.watermark()
        to_accept = wmark - int((self.page == BUDDY).sum()) if wmark else 1
        while to_accept > 0 and self.deferred:
            self.accept_chunk(self.deferred.pop(0))
            to_accept -= CHUNK

    def isolate(self, start: int, end: int) -> None:
        """Page isolation accepts every listed chunk that overlaps the range."""
        touched = [c for c in self.deferred if c < end and c + CHUNK > start]
        self.deferred = [c for c in self.deferred if not (c < end and c + CHUNK > start)]
        for chunk in touched:
            self.accept_chunk(chunk)

    # -- guest kernels ---------------------------------------------------------

    def new_kernel(self) -> None:
        """Boot or kexec: a fresh driver, which unplugs everything first if the
        device has memory plugged (virtio_mem_probe: unplug_all_required)."""
        self.sb_plugged = np.zeros(self.n, bool)
        self.page = np.full(self.n, ABSENT, np.int8)
        self.deferred: list[int] = []
        self.mb_state = [MB_NONE] * (self.n // self.mb)
        self.online_cancelled = np.zeros(self.n // self.mb, bool)
        self.next_mb = 0
        self.broken = False
        self.unplug_all_required = bool(self.plugged.any())

    def kdump(self) -> None:
        """The capture kernel reads every page of the added memory blocks, in order.
        A page the unaccepted table calls unaccepted is skipped (a page is, when its
        unit, or for the last page of a unit the next unit, is plugged and
        unaccepted); for the others STATE is asked once per device block (the last
        block asked is remembered); plugged pages are read."""
        pending = self.table_pending() if self.covers else np.zeros(self.n, bool)
        not_ram = pending.copy()
        not_ram[:-1] |= pending[1:]
        for s, e in true_runs(self.page != ABSENT):
            readable = ~not_ram[s:e]
            blocks = (s + np.flatnonzero(readable)) // self.block
            self.count("virtio_mem.state.ack", len(np.unique(blocks)))
            for rs, re_ in true_runs(readable, s):
                for ps, pe in true_runs(self.plugged[rs:re_], rs):
                    self.access(ps, pe)

    # -- backends ----------------------------------------------------------

    def post_plug(self, s: int, e: int) -> bool:
        if self.backend == "callbacks":
            return self.accept_memory(s, e)
        if self.backend == "start-shared":
            return self.map_gpa(s, e, PRIVATE) and self.accept_memory(s, e)
        self.set_plugged_bits(s, e, True)
        return True

    def pre_unplug(self, s: int, e: int) -> bool:
        if self.backend == "callbacks":
            return self.release_memory(s, e)
        if self.backend == "start-shared":
            return self.map_gpa(s, e, SHARED)
        self.table_unaccept_memory(s, e)
        return True

    def unplug_failed(self, s: int, e: int) -> bool:
        # both RFC designs redo what their post-plug step does
        if self.backend == "callbacks":
            return self.accept_memory(s, e)
        if self.backend == "start-shared":
            return self.map_gpa(s, e, PRIVATE) and self.accept_memory(s, e)
        return True

    def unplugged(self, s: int, e: int) -> None:
        self.set_plugged_bits(s, e, False)

    def pre_unplug_all(self) -> bool:
        self.table_unaccept_memory(0, self.n)
        return True

    def unplugged_all(self) -> None:
        self.set_plugged_bits(0, self.n, False)

    def memory_added(self, s: int, e: int) -> None:
        self.set_plugged_bits(s, e, True)

    def memory_removing(self, s: int, e: int) -> None:
        self.table_unaccept_memory(s, e)
        self.set_plugged_bits(s, e, False)

    def backend_fake_online(self, s: int, e: int) -> None:
        self.table_accept_memory(s, e)

    def going_online(self, s: int, e: int) -> bool:
        """MEM_GOING_ONLINE; False is NOTIFY_BAD."""
        if self.backend == "notifier":
            return self.accept_memory(s, e, tolerate=self.ignore_already_accepted)
        return True

    # -- the virtio-mem driver ---------------------------------------------

    def mb_pages(self, mb: int) -> slice:
        return slice(mb * self.mb, (mb + 1) * self.mb)

    def sb_range(self, mb: int, sb: int, count: int) -> tuple[int, int]:
        start = mb * self.mb + sb * self.sb
        return start, start + count * self.sb

    def sb_is_plugged(self, mb: int, sb: int) -> bool:
        return bool(self.sb_plugged[mb * self.mb + sb * self.sb])

    def each_mb(self, state: str, reverse: bool = False):
        ids = range(max(self.next_mb, 1))
        for mb in reversed(ids) if reverse else ids:
            if self.mb_state[mb] == state:
                yield mb

    def mark_broken(self, s: int, e: int) -> int:
        self.broken = True
        self.violation("device-broken", s, e)
        return EIO

    def plug_sb(self, mb: int, sb: int, count: int) -> int:
        s, e = self.sb_range(mb, sb, count)
        response = self.request("plug", s, e)
        if response != "ack":
            return {"nack": EAGAIN, "busy": ETXTBSY, "error": EINVAL}.get(response, ENOMEM)
        self.sb_plugged[s:e] = True
        if not self.post_plug(s, e):
            return self.mark_broken(s, e)
        return 0

    def unplug_sb(self, mb: int, sb: int, count: int) -> int:
        s, e = self.sb_range(mb, sb, count)
        if not self.pre_unplug(s, e):
            return self.mark_broken(s, e)
        response = self.request("unplug", s, e)
        if response != "ack":
            if not self.unplug_failed(s, e):
                return self.mark_broken(s, e)
            return {"busy": ETXTBSY, "error": EINVAL}.get(response, ENOMEM)
        self.sb_plugged[s:e] = False
        self.unplugged(s, e)
        return 0

    def online(self, mb: int) -> None:
        pages = self.mb_pages(mb)
        if not self.going_online(pages.start, pages.stop):
            # NOTIFY_BAD: MEM_CANCEL_ONLINE, the block stays offline
            self.online_cancelled[mb] = True
            return
        self.online_cancelled[mb] = False
        self.online_pages_range(pages.start, pages.stop)
        self.mb_state[mb] = MB_MOVABLE if self.mb_state[mb] == MB_OFFLINE else MB_MOVABLE_PARTIAL

    def online_pages_range(self, start: int, end: int) -> None:
        """online_pages_range calls virtio_mem_online_page once per MAX_ORDER chunk,
        in address order: a fully plugged chunk goes to generic_online_page whole,
        an unplugged one stays fake-offline, a mixed one goes subblock by subblock."""
        for c in range(start, end, CHUNK):
            plugged = self.sb_plugged[c:c + CHUNK]
            if plugged.all():
                self.free_pages_core(c, c + CHUNK, CHUNK)
            elif not plugged.any():
                self.page[c:c + CHUNK] = FAKE_OFFLINE
            else:
                for s in range(c, c + CHUNK, self.sb):
                    if self.sb_plugged[s]:
                        self.free_pages_core(s, s + self.sb, self.sb)
                    else:
                        self.page[s:s + self.sb] = FAKE_OFFLINE

    def offline(self, mb: int) -> None:
        pages = self.mb_pages(mb)
        self.isolate(pages.start, pages.stop)
        self.page[pages] = OFFLINE
        self.mb_state[mb] = MB_OFFLINE if self.mb_state[mb] == MB_MOVABLE else MB_OFFLINE_PARTIAL

    def remove(self, mb: int) -> None:
        if self.mb_state[mb] in (MB_MOVABLE, MB_MOVABLE_PARTIAL):
            self.offline(mb)
        pages = self.mb_pages(mb)
        self.memory_removing(pages.start, pages.stop)
        self.page[pages] = ABSENT
        self.mb_state[mb] = MB_UNUSED
        self.online_cancelled[mb] = False

    def fake_online(self, s: int, e: int) -> None:
        """virtio_mem_fake_online: blocks of the largest order the range's alignment
        allows; a never-onlined block (PageDirty) goes through generic_online_page,
        a block taken by alloc_contig_range through the backend's hook (RFC v2 patch
        6: accept_memory) and free_contig_range, block by block as the kernel's
        loop calls them."""
        order = CHUNK
        while s % order or (e - s) % order:
            order //= 2
        for b in range(s, e, order):
            if self.page[b] == FAKE_OFFLINE:
                self.free_pages_core(b, b + order, order)
            else:
                self.backend_fake_online(b, b + order)
                self.page[b:b + order] = BUDDY

    def fake_offline(self, s: int, e: int) -> None:
        """virtio_mem_fake_offline: alloc_contig_range (isolation first)."""
        self.isolate(s, e)
        self.page[s:e] = TAKEN

    def all_plugged(self, mb: int) -> bool:
        return bool(self.sb_plugged[self.mb_pages(mb)].all())

    def none_plugged(self, mb: int) -> bool:
        return not self.sb_plugged[self.mb_pages(mb)].any()

    def plug_any_sb(self, mb: int, nb: int) -> tuple[int, int]:
        old = self.mb_state[mb]
        while nb:
            free = [sb for sb in range(self.sbs_per_mb) if not self.sb_is_plugged(mb, sb)]
            if not free:
                break
            sb, count = free[0], 1
            while (count < nb and sb + count < self.sbs_per_mb
                   and not self.sb_is_plugged(mb, sb + count)):
                count += 1
            rc = self.plug_sb(mb, sb, count)
            if rc:
                return rc, nb
            nb -= count
            if old != MB_OFFLINE_PARTIAL:
                self.fake_online(*self.sb_range(mb, sb, count))
        if self.all_plugged(mb):
            self.mb_state[mb] = MB_MOVABLE if old == MB_MOVABLE_PARTIAL else MB_OFFLINE
        return 0, nb

    def plug_and_add_mb(self, mb: int, nb: int) -> tuple[int, int]:
        count = min(nb, self.sbs_per_mb)
        rc = self.plug_sb(mb, 0, count)
        if rc:
            return rc, nb
        self.mb_state[mb] = MB_OFFLINE if count == self.sbs_per_mb else MB_OFFLINE_PARTIAL
        pages = self.mb_pages(mb)
        self.page[pages] = OFFLINE
        self.memory_added(pages.start, pages.stop)
        self.online(mb)
        return 0, nb - count

    def plug_request(self, diff: int) -> int:
        nb = diff // self.sb
        if not nb:
            return 0
        for state in (MB_MOVABLE_PARTIAL, MB_OFFLINE_PARTIAL):
            for mb in self.each_mb(state):
                rc, nb = self.plug_any_sb(mb, nb)
                if rc or not nb:
                    return rc
        for mb in self.each_mb(MB_UNUSED):
            rc, nb = self.plug_and_add_mb(mb, nb)
            if rc or not nb:
                return rc
        last_usable_mb = self.usable // self.mb - 1
        while nb:
            if self.next_mb > last_usable_mb:
                return ENOSPC
            mb = self.next_mb
            self.next_mb += 1
            self.mb_state[mb] = MB_UNUSED
            rc, nb = self.plug_and_add_mb(mb, nb)
            if rc:
                return rc
        return 0

    def unplug_any_sb_offline(self, mb: int, nb: int) -> tuple[int, int]:
        rc, sb = 0, self.sbs_per_mb - 1
        while nb:
            while sb >= 0 and not self.sb_is_plugged(mb, sb):
                sb -= 1
            if sb < 0:
                break
            count = 1
            while count < nb and sb > 0 and self.sb_is_plugged(mb, sb - 1):
                count += 1
                sb -= 1
            rc = self.unplug_sb(mb, sb, count)
            if rc:
                break
            nb -= count
            sb -= 1
        if not self.all_plugged(mb):
            self.mb_state[mb] = MB_OFFLINE_PARTIAL
        if rc:
            return rc, nb
        if self.none_plugged(mb):
            self.remove(mb)
        return 0, nb

    def unplug_sb_online(self, mb: int, sb: int, count: int) -> int:
        s, e = self.sb_range(mb, sb, count)
        self.fake_offline(s, e)
        rc = self.unplug_sb(mb, sb, count)
        if rc:
            self.fake_online(s, e)
            return rc
        if self.mb_state[mb] == MB_MOVABLE:
            self.mb_state[mb] = MB_MOVABLE_PARTIAL
        return 0

    def unplug_any_sb_online(self, mb: int, nb: int) -> tuple[int, int]:
        whole = False
        if nb >= self.sbs_per_mb and self.all_plugged(mb):
            rc = self.unplug_sb_online(mb, 0, self.sbs_per_mb)
            if rc == 0:
                nb -= self.sbs_per_mb
                whole = True
            elif rc != EBUSY:
                return rc, nb
        if not whole:
            sb = self.sbs_per_mb - 1
            while sb >= 0 and nb:
                while sb >= 0 and not self.sb_is_plugged(mb, sb):
                    sb -= 1
                if sb < 0:
                    break
                rc = self.unplug_sb_online(mb, sb, 1)
                if rc:
                    return rc, nb
                nb -= 1
                sb -= 1
        if self.none_plugged(mb):
            self.remove(mb)
        return 0, nb

    def unplug_request(self, diff: int) -> int:
        nb = diff // self.sb
        for state in (MB_OFFLINE_PARTIAL, MB_OFFLINE, MB_MOVABLE_PARTIAL, MB_MOVABLE):
            for mb in self.each_mb(state, reverse=True):
                if state in (MB_MOVABLE, MB_MOVABLE_PARTIAL):
                    rc, nb = self.unplug_any_sb_online(mb, nb)
                else:
                    rc, nb = self.unplug_any_sb_offline(mb, nb)
                if rc or not nb:
                    return rc
        return EBUSY if nb else 0

    def send_unplug_all(self) -> int:
        """UNPLUG_ALL: only the pre_unplug_all/unplugged_all hooks, nothing to redo
        when the device does not ACK."""
        if not self.pre_unplug_all():
            return self.mark_broken(0, self.n)
        response = self.unplug_all()
        if response != "ack":
            return ETXTBSY if response == "busy" else ENOMEM
        self.unplugged_all()
        self.unplug_all_required = False
        return 0

    def run_wq(self) -> None:
        """virtio_mem_run_wq: -EAGAIN retries at once, -EBUSY/-ETXTBSY/-ENOMEM wait
        for the retry timer (the model lets it fire 8 times per step), anything
        else marks the device broken."""
        timer = eagain = 0
        while not self.broken:
            rc = self.work_once()
            if self.broken or rc in (0, ENOSPC):
                return
            if rc == EAGAIN:
                eagain += 1
                if eagain >= 16:
                    return
            elif rc in (ETXTBSY, EBUSY, ENOMEM):
                timer += 1
                if timer > 8:
                    return
            else:
                self.broken = True
                self.violation("device-broken", 0, self.n)
                return

    def work_once(self) -> int:
        if self.unplug_all_required:
            rc = self.send_unplug_all()
            if rc:
                return rc
        diff = self.requested - int(self.sb_plugged.sum())
        if diff > 0:
            return self.plug_request(diff)
        if diff < 0:
            return self.unplug_request(-diff)
        return 0

    # -- steps ---------------------------------------------------------------

    def access(self, s: int, e: int) -> None:
        self.touch(s, e)
        bad = np.flatnonzero(np.isin(self.private[s:e], (FREE, P4K, P2M)))
        if len(bad):  # the TD dies at the first such page
            page = s + int(bad[0])
            raise Crash("access-unaccepted", page, page + 1)
        self.violation_where("use-after-unplug", ~self.sb_plugged[s:e], s)
        self.violation_where("use-after-unplug", ~self.plugged[s:e], s)

    def use(self, npages: int | None) -> None:
        """Order-0 allocations of the lowest free pages, each written. Each allocation
        first calls cond_accept_memory; the writes between two top-ups are one access
        per run of pages."""
        todo = npages
        while todo is None or todo > 0:
            self.cond_accept_memory()
            free = np.flatnonzero(self.page == BUDDY)
            if not len(free):
                return
            # this allocation, and those after it while the free accepted pages stay
            # at or above the watermark (cond_accept_memory does nothing then)
            batch = len(free)
            if self.deferred:
                batch = max(1, len(free) - self.watermark() + 1)
            if todo is not None:
                batch = min(batch, todo)
                todo -= batch
            taken = np.zeros(self.n, bool)
            taken[free[:batch]] = True
            for s, e in true_runs(taken):
                self.access(s, e)
                self.page[s:e] = USED
                self.content[s:e] = self.step_index + 1

    def free(self, npages: int | None) -> None:
        todo = npages
        for s, e in reversed(true_runs(self.page == USED)):
            if todo is not None:
                s = max(s, e - todo)
                todo -= e - s
            self.page[s:e] = BUDDY
            if todo == 0:
                return

    def step(self, index: int, step: Step) -> bool:
        """Run one step; False when the guest crashed."""
        self.step_index = index
        try:
            self._do(step)
        except Crash as crash:
            self.violation(crash.kind, crash.start, crash.end)
            self.crashed = True
            return False
        if not self.broken:
            self.violation_where("state-mismatch", self.sb_plugged != self.plugged)
        return True

    def _do(self, step: Step) -> None:
        op = step.op
        if op in ("plug", "unplug"):
            delta = step.size // 4096
            self.set_requested(self.requested + (delta if op == "plug" else -delta))
        elif op in ("use", "free"):
            npages = step.size // 4096 if step.size else None
            (self.use if op == "use" else self.free)(npages)
        elif op == "vmm":
            patch = step.vmm
            if patch.unplug_discards is not None:
                self.discards = set(patch.unplug_discards)
            if patch.mapping_level is not None:
                self.mapping = patch.mapping_level
            if patch.implicit_conversion is not None:
                self.implicit = patch.implicit_conversion
        elif op == "online_block" and self.mb_state[step.block] in (MB_OFFLINE,
                                                                    MB_OFFLINE_PARTIAL):
            self.online(step.block)
        elif op == "offline_block" and self.mb_state[step.block] in (MB_MOVABLE,
                                                                     MB_MOVABLE_PARTIAL):
            self.offline(step.block)
        elif op == "kexec":
            self.new_kernel()
        elif op == "reboot":
            self.reset()
            self.new_kernel()
        elif op == "kdump":
            self.kdump()
            self.reset()
            self.new_kernel()
        self.run_wq()

    def finish(self) -> None:
        if self.broken:
            self.violation_where("leak", self.plugged & ~np.isin(self.page, MANAGED))
        else:
            for mb in np.flatnonzero(self.online_cancelled):
                pages = self.mb_pages(int(mb))
                self.violation_where("leak", self.plugged[pages], pages.start)
        self.violation_where("private-residue", ~self.plugged & (self.private != FREE))


#: what the differential test covered in this session (printed by conftest)
TALLY: Counter[str] = Counter()
