"""A dense reference model: one numpy element per 4 KiB page, written as plainly
as DESIGN §2-§3 reads, to check the run-length engine against.

Nothing here is shared with ``cocomem``'s engine except the scenario model
and the state names: the host, the TDX module, the virtio-mem driver, the
four backends and the checks are written again, call by call, page by page.
Scope: TDX with PAGE_RELEASE; faults as the scenario injects them.
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
ABSENT, OFFLINE, FAKE_OFFLINE, BUDDY, USED = range(5)
PAGE_CODES = {"absent": ABSENT, "offline": OFFLINE, "fake-offline": FAKE_OFFLINE,
              "free": BUDDY, "used": USED}

P2M_PAGES = 512
P1G_PAGES = 512 * 512
LEVEL_PAGES = {"1g": P1G_PAGES, "2m": P2M_PAGES, "4k": 1}
KINDS = ("access-unaccepted", "accept-panic", "stale-assumed-zero", "accept-unbacked",
         "use-after-unplug", "state-mismatch", "double-accept", "device-broken", "leak",
         "private-residue")
EIO, EAGAIN, ENOMEM, EBUSY, EINVAL, ETXTBSY, ENOSPC = -5, -11, -12, -16, -22, -26, -28


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
        # host
        self.plugged = np.zeros(n, bool)
        self.start_attr = PRIVATE if vmm.memory == "start-private" else SHARED
        self.attr = np.full(n, self.start_attr, np.int8)
        self.shared = np.zeros(n, bool)
        self.private = np.full(n, FREE, np.int8)
        self.content = np.zeros(n, np.int64)
        # host pages backing the region; only an AUG adds one, so the peak is
        # taken there
        self.present = self.peak = 0
        # guest
        self.sb = scenario.subblock_size // 4096
        self.mb = scenario.guest.memory_block_size // 4096
        self.sbs_per_mb = self.mb // self.sb
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
        """System reset: a new TD, the device unplugged, the usable region recomputed."""
        self.plugged[:] = False
        self.attr[:] = self.start_attr
        self.shared[:] = False
        self.private[:] = FREE
        self.content[:] = 0
        self.present = 0
        self.usable = self.usable_for(self.requested)

    def unplug_all(self) -> str:
        injected = self.faults.take("virtio_mem.unplug_all")
        if injected:
            self.count(f"virtio_mem.unplug_all.{injected}")
            return injected
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

    def remove_private(self, s: int, e: int) -> None:
        for edge in (s, e):
            if edge % P2M_PAGES and edge < self.n and self.private[edge] in (P2M, M2M):
                base = edge - edge % P2M_PAGES
                self.private[base:base + P2M_PAGES] = TO_4K[int(self.private[edge])]
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
                and base + P2M_PAGES <= self.n and (self.attr[whole] == PRIVATE).all()
                and (self.private[whole] == FREE).all()):
            self.private[whole] = P2M
            self.content[whole] = 0
            self.count("host.aug.2m")
            self.present += P2M_PAGES
        else:
            self.private[page] = P4K
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
                if np.isin(self.private[leaf], (P4K, M4K)).any():
                    return self.tdcall("accept", level, "size_mismatch")
            else:
                if state == M2M or state == M4K:
                    return self.tdcall("accept", level, "already_accepted")
                if state == P2M:
                    self.count("exit.ept_violation")
                    self.count("host.demote.2m")
                    base = page - page % P2M_PAGES
                    self.private[base:base + P2M_PAGES] = P4K
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
        if level == "2m" and not is_2m_leaf and np.isin(self.private[page:page + size],
                                                        (P4K, M4K)).any():
            return self.tdcall("release", level, "size_mismatch")
        if level == "4k" and is_2m_leaf:
            return self.tdcall("release", level, "size_mismatch")
        if state in (M4K, M2M):
            self.private[page:page + size] = P2M if level == "2m" else P4K
            self.content[page:page + size] = 0
        return self.tdcall("release", level, "ok")

    def walk(self, start: int, end: int, try_one, succeeded) -> bool:
        """tdx_accept_memory: at each address try 1G, then 2M, then 4K."""
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
                return False
        return True

    def accept_memory(self, start: int, end: int, tolerate: bool = False) -> bool:
        def try_one(page: int, level: str) -> str:
            status = self.accept_one(page, level)
            s, e = page, page + LEVEL_PAGES[level]
            if status == "already_accepted":
                self.violation("double-accept", s, e)
                if tolerate:
                    self.violation_where("stale-assumed-zero", self.content[s:e] != 0, s)
            if (status == "ok" or (tolerate and status == "already_accepted")) and not (
                    self.plugged[s:e].all()):
                self.violation_where("accept-unbacked", ~self.plugged[s:e], s)
            return status

        def succeeded(status: str) -> bool:
            return status == "ok" or (tolerate and status == "already_accepted")

        return self.walk(start, end, try_one, succeeded)

    def release_memory(self, start: int, end: int) -> bool:
        return self.walk(start, end, self.release_one, lambda status: status == "ok")

    def map_gpa(self, start: int, end: int, to: int) -> bool:
        """tdx_map_gpa: KVM exits once per 2 MiB chunk; on RETRY the call is issued
        again from where the host stopped, up to 3 times without progress."""
        retries = 0
        while retries < 3:
            injected = self.faults.take("tdvmcall.map_gpa")
            if injected not in (None, "retry"):
                self.count(f"tdvmcall.map_gpa.{'ok' if injected == 'ok' else 'error'}")
                return injected == "ok"
            stop = end
            if injected == "retry":
                stop = start + P2M_PAGES if end - start > P2M_PAGES else start
            if stop > start:
                self.count("exit.map_gpa", -(-(stop - start) // P2M_PAGES))
                self.convert(start, stop, to)
            if injected is None:
                self.count("tdvmcall.map_gpa.ok")
                return True
            self.count("tdvmcall.map_gpa.retry")
            if stop == start:
                retries += 1
            else:
                start, retries = stop, 0
        return False

    def touch(self, start: int, end: int) -> None:
        bad = np.flatnonzero(np.isin(self.private[start:end], (FREE, P4K, P2M)))
        if not len(bad):
            return
        page = start + int(bad[0])
        for _ in range(4):
            if self.private[page] != FREE:
                return
            self.ept_violation(page, "4k")

    # -- guest kernels ---------------------------------------------------------

    def new_kernel(self) -> None:
        """Boot or kexec: a fresh driver, which unplugs everything first if the
        device has memory plugged (virtio_mem_probe: unplug_all_required)."""
        self.sb_plugged = np.zeros(self.n, bool)
        self.page = np.full(self.n, ABSENT, np.int8)
        self.mb_state = [MB_NONE] * (self.n // self.mb)
        self.next_mb = 0
        self.broken = False
        self.unplug_all_required = bool(self.plugged.any())

    def kdump(self) -> None:
        """The capture kernel reads every plugged page of the added memory blocks,
        asking STATE once per device block."""
        for s, e in true_runs(self.page != ABSENT):
            self.count("virtio_mem.state.ack", (e - s) // self.block)
            for ps, pe in true_runs(self.plugged[s:e], s):
                self.access(ps, pe)

    # -- backends ----------------------------------------------------------

    def post_plug(self, s: int, e: int) -> bool:
        if self.backend == "callbacks":
            return self.accept_memory(s, e)
        if self.backend == "start-shared":
            return self.map_gpa(s, e, PRIVATE) and self.accept_memory(s, e)
        return True

    def pre_unplug(self, s: int, e: int) -> bool:
        if self.backend == "callbacks":
            return self.release_memory(s, e)
        if self.backend == "start-shared":
            return self.map_gpa(s, e, SHARED)
        return True

    # after a failed UNPLUG both designs redo what their post-plug step does
    unplug_failed = post_plug

    def going_online(self, s: int, e: int) -> None:
        if self.backend == "notifier" and not self.accept_memory(s, e, tolerate=True):
            raise Crash("accept-panic", s, e)

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
        return 0

    def online(self, mb: int) -> None:
        pages = self.mb_pages(mb)
        self.going_online(pages.start, pages.stop)
        self.page[pages] = np.where(self.sb_plugged[pages], BUDDY, FAKE_OFFLINE)
        self.mb_state[mb] = MB_MOVABLE if self.mb_state[mb] == MB_OFFLINE else MB_MOVABLE_PARTIAL

    def offline(self, mb: int) -> None:
        self.page[self.mb_pages(mb)] = OFFLINE
        self.mb_state[mb] = MB_OFFLINE if self.mb_state[mb] == MB_MOVABLE else MB_OFFLINE_PARTIAL

    def remove(self, mb: int) -> None:
        if self.mb_state[mb] in (MB_MOVABLE, MB_MOVABLE_PARTIAL):
            self.offline(mb)
        self.page[self.mb_pages(mb)] = ABSENT
        self.mb_state[mb] = MB_UNUSED

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
                s, e = self.sb_range(mb, sb, count)
                self.page[s:e] = BUDDY
        if self.all_plugged(mb):
            self.mb_state[mb] = MB_MOVABLE if old == MB_MOVABLE_PARTIAL else MB_OFFLINE
        return 0, nb

    def plug_and_add_mb(self, mb: int, nb: int) -> tuple[int, int]:
        count = min(nb, self.sbs_per_mb)
        rc = self.plug_sb(mb, 0, count)
        if rc:
            return rc, nb
        self.mb_state[mb] = MB_OFFLINE if count == self.sbs_per_mb else MB_OFFLINE_PARTIAL
        self.page[self.mb_pages(mb)] = OFFLINE
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
        self.page[s:e] = FAKE_OFFLINE
        rc = self.unplug_sb(mb, sb, count)
        if rc:
            self.page[s:e] = BUDDY
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
        if not self.pre_unplug(0, self.n):
            return self.mark_broken(0, self.n)
        response = self.unplug_all()
        if response != "ack":
            if not self.unplug_failed(0, self.n):
                return self.mark_broken(0, self.n)
            return ETXTBSY if response == "busy" else ENOMEM
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
        bad = np.isin(self.private[s:e], (FREE, P4K, P2M))
        if bad.any():
            first = true_runs(bad, s)[0]
            raise Crash("access-unaccepted", *first)
        self.violation_where("use-after-unplug", ~self.sb_plugged[s:e], s)
        self.violation_where("use-after-unplug", ~self.plugged[s:e], s)

    def use(self, npages: int | None) -> None:
        todo = npages
        for s, e in true_runs(self.page == BUDDY):
            if todo is not None:
                e = min(e, s + todo)
            self.access(s, e)
            self.page[s:e] = USED
            self.content[s:e] = self.step_index + 1
            if todo is not None:
                todo -= e - s
                if not todo:
                    return

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
            self.violation_where("leak", self.plugged & ~np.isin(self.page, (BUDDY, USED)))
        self.violation_where("private-residue", ~self.plugged & (self.private != FREE))


#: what the differential test covered in this session (printed by conftest)
TALLY: Counter[str] = Counter()
