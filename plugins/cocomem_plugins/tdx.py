"""Intel TDX: TDG.MEM.PAGE.ACCEPT/RELEASE and MapGPA, as Linux issues them.

Follows ``arch/x86/coco/tdx/tdx-shared.c`` (``tdx_accept_memory``,
``try_accept_one``), ``arch/x86/coco/tdx/tdx.c`` (``tdx_map_gpa``,
``tdx_enc_status_changed``) and KVM's handling of the resulting exits.
Counting rules: docs/model.md, section 3.4. Model assumptions: ``ASSUMPTIONS`` below.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from cocomem import bulk
from cocomem.bulk import Recording, apply
from cocomem.hookspecs import hookimpl
from cocomem.host import HostWords
from cocomem.results import CALL, EXIT, declare
from cocomem.run import Event, GuestCrash
from cocomem.state import (
    FREE,
    LEAF_2M,
    MAPPED,
    MAPPED_2M,
    MAPPED_4K,
    PAGES_PER_1G,
    PAGES_PER_2M,
    PENDING_2M,
    PENDING_4K,
    PRIVATE,
    SHARED,
    with_level,
)
from cocomem.units import align_up
from cocomem.vendor import CostEntry, CostProfile, Vendor

OK = "ok"
ALREADY_ACCEPTED = "already_accepted"      # 0x00000B0A00000000, bit 63 clear: a warning
SIZE_MISMATCH = "size_mismatch"            # 0xC0000B0B00000000
OPERAND_INVALID = "operand_invalid"        # 0xC000010000000000
OPERAND_BUSY = "operand_busy"              # 0x8000020000000000
STATUS_CODES = {
    OK: 0,
    ALREADY_ACCEPTED: 0x00000B0A00000000,
    SIZE_MISMATCH: 0xC0000B0B00000000,
    OPERAND_INVALID: 0xC000010000000000,
    OPERAND_BUSY: 0x8000020000000000,
}
MAP_GPA_STATUSES = ("ok", "retry", "invalid_operand", "align_error")

#: Model rules where no public source decides; each is a modelling choice.
ASSUMPTIONS = {
    "release-not-accepted": "RELEASE of a PENDING or FREE page succeeds and changes nothing "
                            "(no public TDX module source has TDG.MEM.PAGE.RELEASE)",
    "release-4k-in-2m": "RELEASE at 4K inside a 2M leaf, or at 2M over a 4K S-EPT table, "
                        "returns SIZE_MISMATCH, as ACCEPT does",
    "map-gpa-injected": "an injected MapGPA retry or invalid_operand is the VMM's answer to the "
                        "call's first KVM_HC_MAP_GPA_RANGE exit (EAGAIN -> RETRY with R11 at that "
                        "chunk, EINVAL -> INVALID_OPERAND; kvm-x86 3e2dec1ede0a): one exit, "
                        "nothing converted; align_error is KVM's own check, before any exit; "
                        "an injected ok converts nothing",
}

_LEVELS = (("1g", PAGES_PER_1G), ("2m", PAGES_PER_2M), ("4k", 1))
_MAX_REEXECUTIONS = 4  # an EPT violation is resolved in at most two exits


class TdxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    #: TDCS CONFIG_FLAGS.PAGE_RELEASE, set by the VMM at TD creation.
    page_release: bool = True


_ASSUMED = "assumption"
_KS24 = "https://lore.kernel.org/all/ihzvi5pwn5hrn4ky2ehjqztjxoixaiaby4igmeihqfehy2vrii@tsg6j5qvmyrm"
_SHUTEMOV = (f"K. Shutemov 2024 ({_KS24}): 90 GiB in ~60 s at 4K on one vCPU, ~2.5 us per 4K "
             "page for exit+AUG+accept (only the sum is published: tdx-fault-split)")
_ZERO_US_PER_4K = 0.4  # assumption: ~10 GB/s for the module's page clearing
_TRACK = "; plus 0.5 us per further vCPU: KVM tdx_track kicks every vCPU (tdx-track-kick)"
COST_TABLE = {
    "tdcall.accept.4k.ok": CostEntry(us=0.7 + _ZERO_US_PER_4K, source=_SHUTEMOV),
    "exit.ept_violation": CostEntry(us=0.8, source=_SHUTEMOV),
    "host.aug.4k": CostEntry(us=0.6, source=_SHUTEMOV),
    "tdcall.accept.2m.ok": CostEntry(us=0.7 + 512 * _ZERO_US_PER_4K,
                                     source="assumption: one call plus clearing 2 MiB"),
    "host.aug.2m": CostEntry(us=5.0, source=_ASSUMED),
    "tdcall.*": CostEntry(us=0.5, source=_ASSUMED + ": a TDCALL round trip that changes nothing"),
    "tdcall.release.*.ok": CostEntry(us=0.7, source=_ASSUMED),
    "tdvmcall.map_gpa.*": CostEntry(us=1.0, source=_ASSUMED),
    "exit.map_gpa": CostEntry(us=10.0, source=_ASSUMED + ": exit to QEMU per 2 MiB chunk"),
    "host.remove.4k": CostEntry(us=0.5, source=_ASSUMED + _TRACK, per_vcpu=0.5),
    "host.remove.2m": CostEntry(us=5.0, source=_ASSUMED + _TRACK, per_vcpu=0.5),
    "host.demote.2m": CostEntry(us=5.0, source=_ASSUMED + _TRACK, per_vcpu=0.5),
}

#: cost rules no source decides (docs/costs.md)
COST_ASSUMPTIONS = {
    "tdx-fault-split": "only the ~2.5 us sum per 4K accept fault (exit + AUG + accept) is "
                       "published; the split (accept 1.1 incl. 0.4 clearing, exit 0.8, AUG "
                       "0.6) is the model's, and the other profiles put their extra time "
                       "on the exit",
    "tdx-track-kick": "each S-EPT removal (and 2M demote) costs 0.5 us more per vCPU beyond "
                      "the first: KVM's tdx_track kicks every vCPU; the figure is assumed",
}


def _fault_us(total: float, source: str) -> dict[str, CostEntry]:
    """A profile whose published figure is ``total`` us per 4K accept fault: the exit
    takes what the accept and the AUG of the default table do not (tdx-fault-split)."""
    rest = COST_TABLE["tdcall.accept.4k.ok"].us + COST_TABLE["host.aug.4k"].us
    return {"exit.ept_violation": CostEntry(us=round(total - rest, 3), source=source)}


_DSTACK = "https://github.com/Dstack-TEE/dstack/pull/1220"
_MIAO = ("J. Miao, 2024-01-09, quoted in https://lore.kernel.org/all/"
         "20240109114054.s2mzvhp2dgbihcvy@box.shutemov.name/")
COST_PROFILES = (
    CostProfile(name="shutemov-2024", source=_SHUTEMOV, serial_share=round(40 / 60, 4),
                serial_source=f"K. Shutemov 2024 ({_KS24}): 40 s on 4 vCPUs against ~60 s "
                              "on one, no gain beyond 4"),
    CostProfile(name="dstack", source=f"dstack ({_DSTACK}): ~8 us per 4K accept fault on a "
                                      "248-vCPU TD under load",
                costs=_fault_us(8.0, f"dstack ({_DSTACK}): ~8 us per 4K accept fault")),
    CostProfile(name="eatmemory-miao", source=f"{_MIAO}: eatmemory under lazy accept, 64 GiB "
                                              "in 128.4-133.4 s, 8 GiB in 15.2-15.5 s "
                                              "(eatmemory's own work included): ~7.6 us per 4K",
                costs=_fault_us(7.6, f"{_MIAO}: ~7.6 us per 4K with eatmemory's work")),
    CostProfile(name="asterinas", source="https://github.com/asterinas/asterinas/pull/1691: "
                                         "8 GiB accepted eagerly in ~30 s: ~14.3 us per 4K",
                costs=_fault_us(14.3, "Asterinas PR 1691: ~14.3 us per 4K"),
                in_range=False, note="an Asterinas guest, not Linux"),
    CostProfile(name="dstack-tick-load", source=f"dstack ({_DSTACK}): 153 us per 4K accept "
                                                "fault under HLT/tick load",
                costs=_fault_us(153.0, f"dstack ({_DSTACK}): 153 us per 4K under tick load"),
                in_range=False, note="a host under HLT/tick load, not acceptance itself"),
)

HOST_WORDS = HostWords(
    fault="exit.ept_violation", fault_fn="KVM tdx_handle_ept_violation",
    add="host.aug", add_fn="KVM tdx_sept_set_private_spte (TDH.MEM.PAGE.AUG)",
    remove="host.remove", remove_fn="KVM tdx_sept_remove_private_spte (TDH.MEM.PAGE.REMOVE)",
    demote="host.demote", demote_fn="KVM split of a 2M leaf (BLOCK + TRACK + DEMOTE)",
    keeps_4k_tables=True,
)


class Tdx(Vendor):
    name = "tdx"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "Intel TDX guest (TDG.MEM.PAGE.ACCEPT/RELEASE, MapGPA)"
    Options = TdxOptions
    fault_calls = {
        "tdcall.accept": tuple(STATUS_CODES),
        "tdcall.release": tuple(STATUS_CODES),
        "tdvmcall.map_gpa": MAP_GPA_STATUSES,
    }
    cost_table = COST_TABLE
    cost_profiles = COST_PROFILES
    assumptions = {**ASSUMPTIONS, **COST_ASSUMPTIONS}
    counters = {
        **declare(CALL, "tdcall.{accept,release}.{1g,2m,4k}.{ok,already_accepted,"
                        "size_mismatch,operand_invalid,operand_busy}",
                  "tdvmcall.map_gpa.{ok,retry,error}"),
        "exit.map_gpa": EXIT,
    }
    host_words = HOST_WORDS
    calls_are = "TDCALL, TDVMCALL"
    functions = {
        "exit.map_gpa": "KVM tdx_map_gpa (KVM_HC_MAP_GPA_RANGE exit to QEMU)",
        "tdvmcall": "tdx_map_gpa",
    }

    @classmethod
    def describe(cls, event: Event, where: str) -> str | None:
        info = event.info
        if event.name == "tdcall":
            return (f"TDCALL TDG.MEM.PAGE.{info['op'].upper()} {where} level={info['level']}"
                    f" -> {info['status'].upper()}")
        if event.name == "tdvmcall":
            return f"TDVMCALL MapGPA {where} to={info['to']} -> {info['status'].upper()}"
        return None

    # -- one TDCALL ------------------------------------------------------

    def _tdcall(self, op: str, page: int, level: str, status: str) -> str:
        npages = dict(_LEVELS)[level]
        self.ctx.count(f"tdcall.{op}.{level}.{status}")
        self.ctx.emit("tdcall", page, page + npages, op=op, level=level, status=status,
                      fn=f"try_{op}_one")
        return status

    def _accept_one(self, page: int, level: str) -> str:
        """One TDG.MEM.PAGE.ACCEPT, re-executed after each EPT violation exit."""
        host = self.host
        injected = self.faults.take("tdcall.accept")
        if injected:
            return self._tdcall("accept", page, level, injected)
        if level == "1g":
            return self._tdcall("accept", page, level, OPERAND_INVALID)
        for _ in range(_MAX_REEXECUTIONS):
            state = host.private[page]
            if level == "2m":
                end = page + PAGES_PER_2M
                if state in LEAF_2M:
                    return self._accept_leaf(page, end, state, level)
                # a non-free non-leaf entry (tdg_mem_page_accept.c case 3): no exit
                if host.pt_4k[page] or host.private.any(page, end, PENDING_4K, MAPPED_4K):
                    return self._tdcall("accept", page, level, SIZE_MISMATCH)
            else:
                if state == MAPPED_2M:
                    return self._tdcall("accept", page, level, ALREADY_ACCEPTED)
                if state == PENDING_2M:
                    host.count_fault(page, level=level)
                    host.demote(page)
                    continue
                if state != FREE:
                    return self._accept_leaf(page, page + 1, state, level)
            host.fault_in(page, level)
        raise AssertionError(f"ACCEPT at page {page} did not settle")

    def _accept_leaf(self, start: int, end: int, state: str, level: str) -> str:
        if state in MAPPED:
            return self._tdcall("accept", start, level, ALREADY_ACCEPTED)
        self.host.private.set(start, end, with_level(MAPPED_4K, level))
        self.host.content.set(start, end, 0)  # the module clears the page
        return self._tdcall("accept", start, level, OK)

    def _release_one(self, page: int, level: str) -> str:
        """One TDG.MEM.PAGE.RELEASE (the seed RFC's leaf 30)."""
        host = self.host
        injected = self.faults.take("tdcall.release")
        if injected:
            return self._tdcall("release", page, level, injected)
        if not self.options.page_release or level == "1g":
            return self._tdcall("release", page, level, OPERAND_INVALID)
        size = dict(_LEVELS)[level]
        state = host.private[page]
        if level == "2m":
            if state not in LEAF_2M and (host.pt_4k[page] or host.private.any(
                    page, page + size, PENDING_4K, MAPPED_4K)):
                return self._tdcall("release", page, level, SIZE_MISMATCH)
        elif state in LEAF_2M:
            return self._tdcall("release", page, level, SIZE_MISMATCH)
        if state in MAPPED:
            host.private.set(page, page + size, with_level(PENDING_4K, level))
            host.content.set(page, page + size, 0)
        return self._tdcall("release", page, level, OK)

    # -- the 1G -> 2M -> 4K walk of tdx_accept_memory --------------------

    def _walk(self, op: str, start: int, end: int, try_one: Callable[[int, str], str],
              succeeded: Callable[[str], bool]) -> int:
        """The loop of tdx_accept_memory / tdx_release_memory: where it stopped
        (``end`` when every call succeeded)."""
        pos = start
        while pos < end:
            if bulk.ENABLED and pos % PAGES_PER_2M == 0 and end - pos >= PAGES_PER_2M:
                done, ok = self._walk_chunks(op, pos, end, try_one, succeeded)
                pos += done
            else:  # the calls up to the next 2M boundary
                pos, ok = self.each(pos, min(end, align_up(pos + 1, PAGES_PER_2M)),
                                    self._walk_piece(end, try_one, succeeded))
            if not ok:
                return pos
        return pos

    def _walk_piece(self, end: int, try_one: Callable[[int, str], str],
                    succeeded: Callable[[str], bool]) -> Callable[[int, int], tuple[int, bool]]:
        """One try_accept_one of the walk as a bulk piece (4K only at an unaligned
        page, so the pieces after an aligned first one are alike)."""
        def piece(page: int, _end: int) -> tuple[int, bool]:
            size = self._try_accept_one(page, end, try_one, succeeded)
            return page + size, bool(size)
        return piece

    def _try_accept_one(self, pos: int, end: int, try_one: Callable[[int, str], str],
                        succeeded: Callable[[str], bool]) -> int:
        """try_accept_one at 1G, then 2M, then 4K: pages done, 0 on failure."""
        for level, size in _LEVELS:
            if pos % size or end - pos < size:
                continue
            if succeeded(try_one(pos, level)):
                return size
        return 0

    def _walk_chunks(self, op: str, pos: int, end: int, try_one: Callable[[int, str], str],
                     succeeded: Callable[[str], bool]) -> tuple[int, bool]:
        """Do one 2 MiB chunk call by call, then repeat its effect over the identical
        chunks that follow. Returns (pages done, success)."""
        host = self.host
        span_end = host.uniform_end(pos, end)
        chunks = (span_end - pos) // PAGES_PER_2M
        first_end = pos + PAGES_PER_2M
        with Recording(self) as first:
            # the chunk's first call may try 1G and 2M; its other 4K calls are alike
            size = self._try_accept_one(pos, end, try_one, succeeded)
            if not size:
                return 0, False
            done, ok = self.each(pos + size, first_end,
                                 self._walk_piece(end, try_one, succeeded))
            if not ok:
                return done - pos, False
        if done != first_end or chunks < 2 or not first.clean:
            # a chunk that met an injected status is no pattern for the next ones
            return done - pos, True
        delta = first.counters
        giga = {k: v for k, v in delta.items() if k.startswith(f"tdcall.{op}.1g.")}
        per_chunk = delta - Counter(giga)
        calls = first.calls[f"tdcall.{op}"] - sum(giga.values())
        room = self.faults.calls_before_next_fault(f"tdcall.{op}")
        if room is not None:
            chunks = min(chunks, 1 + room // (calls + 1))
        rest_end = pos + chunks * PAGES_PER_2M
        if chunks < 2 or giga and set(giga) != {f"tdcall.{op}.1g.{OPERAND_INVALID}"}:
            return PAGES_PER_2M, True
        after = host.uniform_values(pos, first_end)
        if after is None:
            return PAGES_PER_2M, True
        repeats = chunks - 1
        # try_accept_one tries 1G at each 1G-aligned chunk with >= 1G left
        first_giga = align_up(first_end, PAGES_PER_1G)
        last_giga = min(rest_end - 1, end - PAGES_PER_1G)
        giga_calls = max(0, (last_giga - first_giga) // PAGES_PER_1G + 1)
        first.counters = per_chunk
        first.calls = Counter({f"tdcall.{op}": calls})
        apply(self, first, first_end, rest_end, repeats, after,
              first.merged_events(pos), PAGES_PER_2M)
        self.ctx.count(f"tdcall.{op}.1g.{OPERAND_INVALID}", giga_calls)
        self.faults.skip(f"tdcall.{op}", giga_calls)
        self.ctx.emit("repeat", first_end, rest_end, times=repeats, piece=PAGES_PER_2M)
        return chunks * PAGES_PER_2M, True

    # -- the arch API ----------------------------------------------------

    def accept_memory(self, start: int, end: int, *, ignore: tuple[str, ...] = ()) -> bool:
        """tdx_accept_memory over ``[start, end)``. ``ignore=("already_accepted",)`` is
        the notifier series' patch 1: ``try_accept_one`` fails only on
        ``status & TDX_ERROR`` (bit 63), so ALREADY_ACCEPTED counts as success."""
        tolerate_already_accepted = ALREADY_ACCEPTED in ignore

        def try_one(page: int, level: str) -> str:
            status = self._accept_one(page, level)
            npages = dict(_LEVELS)[level]
            tolerated = tolerate_already_accepted and status == ALREADY_ACCEPTED
            if status == ALREADY_ACCEPTED:
                self.ctx.emit("accept.already", page, page + npages, tolerated=tolerated)
            if status == OK or tolerated:
                self.ctx.emit("accept.done", page, page + npages)
            return status

        def succeeded(status: str) -> bool:
            # try_accept_one: any non-zero status fails; patched, bit 63 clear is success.
            if tolerate_already_accepted:
                return not STATUS_CODES.get(status, 1 << 63) >> 63
            return status == OK

        self.ctx.emit("call", start, end, fn="tdx_accept_memory")
        return self._repeatable("accept", start, end, tolerate_already_accepted,
                                lambda: self._walk("accept", start, end, try_one, succeeded)) == end

    # -- a call like the last one, on a range in the same state ------------

    def _repeatable(self, op: str, start: int, end: int, flag: bool,
                    walk: Callable[[], int]) -> int:
        """Vendor.repeatable, keyed also by the offset in its 1 GiB where a 1G call
        would be tried."""
        giga = start % PAGES_PER_1G if end - start >= PAGES_PER_1G else None
        return self.repeatable(op, start, end, walk, key=(flag, giga), fn=f"tdx_{op}_memory")

    def release_memory(self, start: int, end: int) -> bool:
        """tdx_release_memory (RFC v1 patch 5; RFC v2's tdx_unaccept_memory is the same):
        nothing to do without PAGE_RELEASE; RELEASE 1G -> 2M -> 4K; when a RELEASE
        fails, re-accept what was released, and panic if that fails too."""
        if not self.options.page_release:
            self.ctx.emit("call", start, end, fn="tdx_release_memory",
                          note="no PAGE_RELEASE: nothing to do, returns true")
            return True
        self.ctx.emit("call", start, end, fn="tdx_release_memory")
        released = self._repeatable("release", start, end, False, lambda: self._walk(
            "release", start, end, self._release_one, lambda status: status == OK))
        if released == end:
            return True
        if released > start and not self.accept_memory(start, released):
            raise GuestCrash("accept-panic", start, released,
                             "tdx_release_memory: failed to re-accept released memory")
        return False

    def _map_gpa_call(self, start: int, end: int, to: str) -> tuple[str, int]:
        """One TDVMCALL MapGPA; KVM exits to the VMM once per 2 MiB chunk (tdx_map_gpa
        in KVM). Returns the status and R11, where a RETRY resumes."""
        injected = self.faults.take("tdvmcall.map_gpa")
        if injected in ("ok", "align_error"):
            return self._map_gpa_status(start, end, to, injected), start
        if injected:  # the VMM's answer to the first chunk's exit
            self._map_gpa_exit(start, min(end, start + PAGES_PER_2M), chunks=1)
            return self._map_gpa_status(start, end, to, injected), start
        self._map_gpa_exit(start, end, chunks=-(-(end - start) // PAGES_PER_2M))
        self.host.convert(start, end, to)
        return self._map_gpa_status(start, end, to, "ok"), end

    def _map_gpa_exit(self, start: int, end: int, chunks: int) -> None:
        self.ctx.count("exit.map_gpa", chunks)
        self.ctx.emit("exit", start, end, reason="map_gpa", chunks=chunks)

    def _map_gpa_status(self, start: int, end: int, to: str, status: str) -> str:
        self.ctx.count(f"tdvmcall.map_gpa.{status if status in ('ok', 'retry') else 'error'}")
        self.ctx.emit("tdvmcall", start, end, op="map_gpa", to=to, status=status)
        return status

    def _map_gpa(self, start: int, end: int, to: str) -> bool:
        """tdx_map_gpa: retry from R11, giving up after 3 tries without progress."""
        retries = 0
        while retries < 3:
            status, resume = self._map_gpa_call(start, end, to)
            if status != "retry":
                return status == "ok"
            if resume == start:
                retries += 1
            else:
                start, retries = resume, 0
        return False

    def set_memory_encrypted(self, start: int, end: int) -> bool:
        return self._map_gpa(start, end, PRIVATE) and self.accept_memory(start, end)

    def set_memory_decrypted(self, start: int, end: int) -> bool:
        return self._map_gpa(start, end, SHARED)

    def touch(self, start: int, end: int) -> None:
        """Run the exits of the first private access that would fault (the TD dies there).

        KVM's tdx_handle_ept_violation: a FREE page is added (exit + AUG), the access
        is retried and hits a PENDING page; a PENDING-type violation is fatal (one
        more exit, then kvm_vm_dead)."""
        host = self.host
        bad = host.private.runs_where(start, end, FREE, PENDING_4K, PENDING_2M)
        if not bad:
            return
        page = bad[0][0]
        for _ in range(_MAX_REEXECUTIONS):
            if host.private[page] != FREE:
                break
            host.fault_in(page, "4k")
        if host.private[page] in (PENDING_4K, PENDING_2M):
            host.count_fault(page, fatal="PENDING page: kvm_vm_dead")

    def inaccessible(self, start: int, end: int) -> list[tuple[int, int]]:
        return self.host.private.runs_where(start, end, FREE, PENDING_4K, PENDING_2M)


@hookimpl
def register_vendors(register):
    register(Tdx)

