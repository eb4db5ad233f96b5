"""Arm CCA realm: RIPAS changes with RSI_IPA_STATE_SET, as arm64 Linux issues them.

Follows ``arch/arm64/include/asm/rsi.h`` (``rsi_set_memory_range`` and its
``_protected``, ``_protected_safe`` and ``_shared`` wrappers),
``arch/arm64/include/asm/rsi_cmds.h`` (``rsi_set_addr_range_state``),
``arch/arm64/kernel/rsi.c`` (``arm64_rsi_setup_memory``),
``arch/arm64/mm/pageattr.c`` (``__set_memory_enc_dec``), the RMM specification
v1.0 (A5.3 host view of memory, A5.4 RIPAS change, B4.3.21
RMI_RTT_SET_RIPAS) and the host side of the unmerged KVM CCA series ("arm64:
Support for Arm CCA in KVM", Steven Price et al.: ``rec_exit_ripas_change``,
``kvm_complete_ripas_change``, ``ripas_change``, ``realm_unmap_private_range``).
There is no realm memory hotplug upstream: ``ASSUMPTIONS`` names every choice
the sources do not decide. The derivation is docs/cca.md.

Per 4 KiB granule the vendor keeps the RIPAS (EMPTY, RAM, DESTROYED) and the
state of the guest's linear-map PTE; the host's ``private`` map is the HIPAS
(FREE = UNASSIGNED, MAPPED = ASSIGNED: a DATA granule exists).
"""

from __future__ import annotations

from pydantic import BaseModel

from cocomem.faults import FaultPlan
from cocomem.hookspecs import hookimpl
from cocomem.host import Host, HostWords
from cocomem.results import CALL, EXIT, HOST, declare
from cocomem.run import Event, GuestCrash, RunContext
from cocomem.state import (
    FREE,
    MAPPED_4K,
    PAGES_PER_1G,
    PAGES_PER_2M,
    PENDING_4K,
    PRESENT,
    PRIVATE,
    SHARED,
)
from cocomem.units import PAGE_SIZE, format_size
from cocomem.vendor import CostEntry, CostProfile, Vendor

# RIPAS, per granule (enum ripas, arch/arm64/include/asm/rsi_cmds.h)
EMPTY, RAM, DESTROYED = "empty", "ram", "destroyed"
# the guest's linear-map PTE of a page (arch/arm64/mm/pageattr.c)
PTE_VALID = "valid"      # protected mapping (NS bit clear)
PTE_INVALID = "invalid"  # broken by __set_memory_enc_dec whose RSI call failed
PTE_SHARED = "shared"    # valid with PROT_NS_SHARED: accesses go to the unprotected alias

#: the fault-injectable call and what an injected status stands for (cca-injected-statuses)
CALL_NAME = "cca.rsi_ipa_state_set"
STATUSES = ("partial", "no_progress", "reject", "error_input", "error_state")

#: Model rules where no public source decides; each is a modelling choice.
ASSUMPTIONS = {
    "cca-hotplug-starts-empty": "every granule of the device region starts RIPAS EMPTY (and "
                                "again after a reset): KVM sets RAM only over the guest_memfd "
                                "memslots present at kvm_activate_realm "
                                "(set_ripas_of_protected_regions), and the device's memory is "
                                "taken to be added later, as J-P. Brucker's realm hotplug patch "
                                "assumes ('switches their RIPAS EMPTY -> RAM')",
    "cca-accept-is-protected-safe": "accept_memory is rsi_set_memory_range_protected_safe (RAM, "
                                    "RSI_NO_CHANGE_DESTROYED) over the range, as "
                                    "arm64_rsi_setup_memory does for boot memory: no realm "
                                    "hotplug code is upstream",
    "cca-release-is-shared": "release_memory is rsi_set_memory_range_shared (EMPTY, "
                             "RSI_CHANGE_DESTROYED), as the hotplug patch's remove path "
                             "switches RAM -> EMPTY",
    "cca-no-rollback": "a failed rsi_set_memory_range leaves [start, new_base) in the new RIPAS "
                       "(rsi.h has no rollback) and accept_memory/release_memory return false "
                       "without undoing it",
    "cca-injected-statuses": "an injected partial is KVM stopping after its first "
                             "RMI_RTT_SET_RIPAS (-ENOMEM after progress in "
                             "kvm_complete_ripas_change; complete when one RTT covers the "
                             "range), no_progress stopping before it; "
                             "reject is the VMM refusing at its KVM_EXIT_MEMORY_FAULT (nothing "
                             "converted) and KVM entering with REC_ENTER_FLAG_RIPAS_RESPONSE, "
                             "which the RMM reports only for a RAM request: on an EMPTY request "
                             "it is a pass without progress; error_input and error_state are "
                             "the RMM's own statuses, returned before any exit",
    "cca-vmm-converts": "the VMM answers each KVM_EXIT_MEMORY_FAULT of a RIPAS change with "
                        "kvm_convert_memory over the whole [base, top) (QEMU's generic handler, "
                        "written for TDX and SNP; its use for CCA is assumed)",
    "cca-rtt-level": "RMI_RTT_SET_RIPAS calls are counted one per RTT: an L3 table (2 MiB of "
                     "4 KiB entries) where the range covers a 2 MiB only in part or the 2 MiB "
                     "holds a DATA granule or mixed RIPAS, else an L2 table (up to 1 GiB of "
                     "2 MiB entries); the level is read from the current state as if KVM folded "
                     "every uniform table; RTT creation and the ERROR_RTT calls before it are "
                     "not counted, and 1 GiB L1 entries are never used",
    "cca-4k-data": "DATA granules are created at 4 KiB whatever vmm.mapping_level says (the "
                   "series' 'arm64: RME: Always use 4k pages for realms'; gmem_abort maps "
                   "PAGE_SIZE, 'FIXME: Should be able to use bigger than PAGE_SIZE mappings')",
    "cca-kernel-abort-fatal": "a kernel-mode Synchronous External Abort (RIPAS EMPTY) or a "
                              "translation fault on a linear-map PTE a failed "
                              "__set_memory_enc_dec left invalid ends the run as a crash (die(): "
                              "an oops, a panic with panic_on_oops; arm64_rsi_setup_memory: an "
                              "SEA 'which we can't handle')",
    "cca-destroyed-access": "an access to a DESTROYED granule exits to KVM (data abort) once; "
                            "KVM cannot make it accessible (RMI_DATA_CREATE_UNKNOWN leaves the "
                            "RIPAS DESTROYED, the series has no DESTROYED handling), so the realm "
                            "makes no progress: access-unaccepted",
    "cca-destroyed-no-change": "a RAM request with RSI_NO_CHANGE_DESTROYED that meets a "
                               "DESTROYED granule P is applied up to P (RMM A5.4 IGXDDX); KVM's "
                               "ripas_change then retries the ERROR_RTT at P without bound, so "
                               "the realm never runs again: ripas-change-stuck",
    "cca-ram-to-ram-silent": "setting RAM over RAM succeeds and keeps the granule and its data: "
                             "no double-accept (RSI_IPA_STATE_SET defines no such status) and no "
                             "stale-data finding (RSI promises no zeroing, and the data never "
                             "left the realm's protection)",
    "cca-linear-map": "the linear map of the device memory is valid and protected unless "
                      "__set_memory_enc_dec changed it; a new kernel (kexec, the kdump capture "
                      "kernel, a reboot) maps it afresh",
    "cca-costs": "every cost is an assumption: no published figure gives the time of "
                 "RSI_IPA_STATE_SET, RMI_RTT_SET_RIPAS, RMI_DATA_CREATE or a REC exit",
}

_ASSUMED = "assumption"
COST_TABLE = {
    "cca.rsi_ipa_state_set.*": CostEntry(us=1.0, source=_ASSUMED + ": an SMC to the RMM"),
    "exit.ripas_change": CostEntry(us=2.0, source=_ASSUMED + ": a REC exit and entry"),
    "host.rtt_set_ripas": CostEntry(us=2.0, source=_ASSUMED + ": one RMI call over one RTT"),
    "exit.data_abort": CostEntry(us=2.0, source=_ASSUMED + ": a REC exit and entry"),
    "host.data_create.4k": CostEntry(us=1.5, source=_ASSUMED + ": GRANULE_DELEGATE + "
                                     "DATA_CREATE_UNKNOWN, the RMM zeroes 4 KiB"),
    "host.data_destroy.4k": CostEntry(us=1.0, source=_ASSUMED + ": DATA_DESTROY + "
                                      "GRANULE_UNDELEGATE"),
    "host.rtt_create.*": CostEntry(us=2.0, source=_ASSUMED),
}

#: one profile: no CCA measurement disagrees with the table, since none is published
COST_PROFILES = (
    CostProfile(name="assumed", source=_ASSUMED + ": every entry (cca-costs)", serial_share=1.0,
                serial_source=_ASSUMED + ": no published CCA vCPU scaling, so more "
                                         "vCPUs gain nothing"),
)

HOST_WORDS = HostWords(
    fault="exit.data_abort",
    fault_fn="KVM rec_exit_sync_dabt -> gmem_abort (RMI_EXIT_SYNC, data abort)",
    add="host.data_create",
    add_fn="KVM realm_map_protected (RMI_GRANULE_DELEGATE + RMI_DATA_CREATE_UNKNOWN)",
    remove="host.data_destroy",
    remove_fn="KVM realm_unmap_private_range (RMI_DATA_DESTROY + RMI_GRANULE_UNDELEGATE)",
    demote="host.rtt_create",
    demote_fn="KVM realm_create_rtt_levels (RMI_RTT_CREATE)",
    keeps_4k_tables=False,
)

#: the response and the status as the trace prints them (rsi_smc.h)
_SHOWN = {"ok": ("ACCEPT", "SUCCESS"), "partial": ("ACCEPT", "SUCCESS"),
          "reject": ("REJECT", "SUCCESS"), "error_input": (None, "ERROR_INPUT"),
          "error_state": (None, "ERROR_STATE")}
#: consecutive passes without progress before the model calls the realm stuck
_NO_PROGRESS_LIMIT = 16


class Cca(Vendor):
    name = "cca"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "Arm CCA realm (RSI_IPA_STATE_SET: RIPAS EMPTY/RAM/DESTROYED)"
    unaccepted_memory = False  # no CONFIG_UNACCEPTED_MEMORY on arm64
    counters = {**declare(CALL, "cca.rsi_ipa_state_set.{ram,empty}.{ok,partial,reject,error}"),
                "exit.ripas_change": EXIT, "host.rtt_set_ripas": HOST}
    kinds = {"linear-map-invalid": "crashed", "ripas-change-stuck": "crashed"}
    fault_calls = {CALL_NAME: STATUSES}
    cost_table = COST_TABLE
    cost_profiles = COST_PROFILES
    assumptions = ASSUMPTIONS
    host_words = HOST_WORDS
    calls_are = "RSI SMC"
    functions = {
        "exit.ripas_change": "KVM rec_exit_ripas_change (RMI_EXIT_RIPAS_CHANGE)",
        "host.rtt_set_ripas": "KVM kvm_complete_ripas_change -> ripas_change "
                              "(RMI_RTT_SET_RIPAS, one per RTT)",
        "rsi": "rsi_set_addr_range_state (SMC RSI_IPA_STATE_SET)",
    }

    def __init__(self, ctx: RunContext, host: Host, faults: FaultPlan,
                 options: BaseModel) -> None:
        super().__init__(ctx, host, faults, options)
        self.ripas = host.add_map(EMPTY)
        self.pte = host.add_map(PTE_VALID)
        self._first_page = ctx.region_addr // PAGE_SIZE

    def removing_private(self, start: int, end: int) -> None:
        """RMI_DATA_DESTROY of a RIPAS RAM granule leaves it DESTROYED (RMM A5.3.5)."""
        for s, e in self.host.private.runs_where(start, end, *PRESENT):
            for rs, re_ in self.ripas.runs_where(s, e, RAM):
                self.ripas.set(rs, re_, DESTROYED)

    def new_kernel(self) -> None:
        """A new kernel (kexec, the kdump capture kernel, a reboot) builds a fresh
        linear map (cca-linear-map)."""
        self.pte.set(0, self.host.npages, PTE_VALID)

    # -- trace wording -----------------------------------------------------

    @classmethod
    def describe(cls, event: Event, where: str) -> str | None:
        if event.name != "rsi":
            return None
        info = event.info
        response, status = _SHOWN[info["result"]]
        flags = "" if info["ripas"] == "EMPTY" else f" {info['flags']}"
        text = f"RSI_IPA_STATE_SET {where} RIPAS={info['ripas']}{flags} -> "
        if response is None:
            return text + f"RSI_{status}"
        return text + f"top={info['top']:#x} {response}"

    # -- the host's RTT work -------------------------------------------------

    def _slot_range(self, base: int, top: int) -> tuple[int, int]:
        """The 2 MiB slots [first, last) that [base, top) touches, in absolute slot numbers."""
        first = self._first_page + base
        last = self._first_page + top
        return first // PAGES_PER_2M, -(-last // PAGES_PER_2M)

    def _l3_slots(self, base: int, top: int) -> list[tuple[int, int]]:
        """Merged absolute slot intervals whose RIPAS sits in an L3 table (cca-rtt-level):
        covered in part, holding a DATA granule, or of mixed RIPAS."""
        off = self._first_page
        found: list[tuple[int, int]] = []
        lo, hi = self._slot_range(base, top)
        if (off + base) % PAGES_PER_2M:
            found.append((lo, lo + 1))
        if (off + top) % PAGES_PER_2M:
            found.append((hi - 1, hi))
        for s, e in self.host.private.runs_where(base, top, *PRESENT):
            found.append(((off + s) // PAGES_PER_2M, -(-(off + e) // PAGES_PER_2M)))
        runs = list(self.ripas.runs(base, top))
        for s, _, _ in runs[1:]:
            if (off + s) % PAGES_PER_2M:
                slot = (off + s) // PAGES_PER_2M
                found.append((slot, slot + 1))
        merged: list[tuple[int, int]] = []
        for a, b in sorted(found):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def _rtt_chunks(self, base: int, top: int) -> tuple[int, int]:
        """RMI_RTT_SET_RIPAS over [base, top): (calls, out_top of the first call)."""
        if base >= top:
            return 0, base
        lo, hi = self._slot_range(base, top)
        calls, pos, first_top = 0, lo, None
        for a, b in self._l3_slots(base, top) + [(hi, hi)]:
            if pos < a:  # a run of L2 slots: one call per 1 GiB table it spans
                per_table = PAGES_PER_1G // PAGES_PER_2M
                calls += (a - 1) // per_table - pos // per_table + 1
                if first_top is None:
                    first_top = min(a, (pos // per_table + 1) * per_table)
            if a < b:
                calls += b - a
                if first_top is None:
                    first_top = a + 1
            pos = max(pos, b)
        out = first_top * PAGES_PER_2M - self._first_page
        return calls, min(top, out)

    def _rtt_set_ripas(self, base: int, top: int, ripas: str) -> None:
        """KVM's ripas_change over [base, top): one RMI_RTT_SET_RIPAS per RTT."""
        calls, _ = self._rtt_chunks(base, top)
        self.ctx.count("host.rtt_set_ripas", calls)
        self.ctx.emit("host.rtt_set_ripas", base, top, ripas=ripas.upper(), calls=calls)
        self.ripas.set(base, top, ripas)

    # -- one RSI_IPA_STATE_SET -------------------------------------------------

    def _smc(self, base: int, end: int, ripas: str, change_destroyed: bool) -> tuple[str, int]:
        """One rsi_set_addr_range_state: (result, new_base). Results: ok, partial,
        reject, error_input, error_state."""
        ctx, host = self.ctx, self.host
        injected = self.faults.take(CALL_NAME)
        if injected in ("error_input", "error_state"):
            return self._result(base, end, ripas, change_destroyed, injected, base)
        # RMI_EXIT_RIPAS_CHANGE, then KVM exits to the VMM (KVM_EXIT_MEMORY_FAULT)
        ctx.count("exit.ripas_change")
        ctx.emit("exit", base, end, reason="ripas_change", ripas=ripas.upper())
        ctx.count("exit.memory_fault")
        ctx.emit("exit", base, end, reason="memory_fault", private=ripas == RAM)
        if injected == "reject":
            if ripas == RAM:
                return self._result(base, end, ripas, change_destroyed, "reject", base)
            # the RMM reports a REJECT only for a RAM request
            return self._result(base, end, ripas, change_destroyed, "partial", base)
        host.convert(base, end, PRIVATE if ripas == RAM else SHARED)
        if injected == "no_progress":
            return self._result(base, end, ripas, change_destroyed, "partial", base)
        top = end
        if injected == "partial":
            top = self._rtt_chunks(base, end)[1]
        stop = None
        if ripas == RAM and not change_destroyed:
            destroyed = self.ripas.runs_where(base, top, DESTROYED)
            if destroyed:
                stop = top = destroyed[0][0]
        if top > base:
            self._rtt_set_ripas(base, top, ripas)
            if ripas == RAM:
                ctx.emit("accept.done", base, top)
        result = "ok" if top == end else "partial"
        self._result(base, end, ripas, change_destroyed, result, top)
        if stop is not None:
            raise GuestCrash("ripas-change-stuck", stop, stop + 1,
                             "RSI_NO_CHANGE_DESTROYED meets a DESTROYED granule: KVM's "
                             "ripas_change retries RMI_RTT_SET_RIPAS there without end")
        return result, top

    def _result(self, base: int, end: int, ripas: str, change_destroyed: bool, result: str,
                top: int) -> tuple[str, int]:
        counted = "error" if result.startswith("error") else result
        self.ctx.count(f"cca.rsi_ipa_state_set.{ripas}.{counted}")
        flags = "RSI_CHANGE_DESTROYED" if change_destroyed else "RSI_NO_CHANGE_DESTROYED"
        self.ctx.emit("rsi", base, end, ripas=ripas.upper(), flags=flags, result=result,
                      top=self.ctx.gpa(top), fn="rsi_set_addr_range_state")
        return result, top

    def _set_memory_range(self, start: int, end: int, ripas: str,
                          change_destroyed: bool) -> bool:
        """rsi_set_memory_range: loop on top; -EINVAL on an error status, a REJECT or a
        top outside [start, end), with nothing rolled back (cca-no-rollback)."""
        base, idle = start, 0
        while base != end:
            result, top = self._smc(base, end, ripas, change_destroyed)
            if result not in ("ok", "partial") or top < base or top > end:
                self.ctx.emit("warn", start, end, fn="rsi_set_memory_range",
                              why=f"-EINVAL: {result} at {self.ctx.gpa(base):#x}, "
                                  f"{format_size((base - start) * PAGE_SIZE)} changed")
                return False
            idle = idle + 1 if top == base else 0
            if idle >= _NO_PROGRESS_LIMIT:
                raise GuestCrash("ripas-change-stuck", base, base + 1,
                                 "rsi_set_memory_range: the host makes no progress")
            base = top
        return True

    # -- the arch API ----------------------------------------------------------

    def accept_memory(self, start: int, end: int, *, ignore: tuple[str, ...] = ()) -> bool:
        """rsi_set_memory_range_protected_safe (cca-accept-is-protected-safe); CCA has no
        status a caller could ignore."""
        self.ctx.emit("call", start, end, fn="rsi_set_memory_range_protected_safe")
        return self._set_memory_range(start, end, RAM, change_destroyed=False)

    def release_memory(self, start: int, end: int) -> bool:
        """rsi_set_memory_range_shared (cca-release-is-shared)."""
        self.ctx.emit("call", start, end, fn="rsi_set_memory_range_shared")
        return self._set_memory_range(start, end, EMPTY, change_destroyed=True)

    def _set_memory_enc_dec(self, start: int, end: int, encrypt: bool) -> bool:
        """arm64 __set_memory_enc_dec: break the linear map (PTE_VALID cleared, NS bit
        set or cleared), one rsi_set_memory_range, then PTE_VALID again; on failure the
        PTEs stay invalid and realm_set_memory_{en,de}crypted WARNs that the pages leak."""
        self.ctx.emit("call", start, end, fn="__set_memory_enc_dec", encrypt=encrypt)
        self.pte.set(start, end, PTE_INVALID)  # __change_memory_common: break first
        wrapper = "protected" if encrypt else "shared"
        self.ctx.emit("call", start, end, fn=f"rsi_set_memory_range_{wrapper}")
        ok = self._set_memory_range(start, end, RAM if encrypt else EMPTY,
                                    change_destroyed=True)
        if not ok:
            what = "encrypt" if encrypt else "decrypt"
            self.ctx.emit("warn", start, end, fn=f"realm_set_memory_{what}ed",
                          why=f"Failed to {what} memory, {end - start} pages will be leaked")
            return False
        self.pte.set(start, end, PTE_VALID if encrypt else PTE_SHARED)
        return True

    def set_memory_encrypted(self, start: int, end: int) -> bool:
        return self._set_memory_enc_dec(start, end, True)

    def set_memory_decrypted(self, start: int, end: int) -> bool:
        return self._set_memory_enc_dec(start, end, False)

    def touch(self, start: int, end: int) -> None:
        """A guest access, page by page until the first it dies on (RMM A5.3.1): RAM and
        UNASSIGNED exits to KVM, which creates a zeroed 4 KiB DATA granule (after the
        VMM converted a shared GFN); EMPTY is an SEA (the check reports it); DESTROYED
        exits once and never resolves; an invalid linear-map PTE is a kernel paging
        fault; a PTE with the NS bit goes to the unprotected alias (shared memory)."""
        host = self.host

        def piece(pos: int, stop: int) -> tuple[int, bool]:
            pte = self.pte[pos]
            if pte == PTE_INVALID:
                raise GuestCrash("linear-map-invalid", pos, pos + 1,
                                 "the linear-map PTE a failed __set_memory_enc_dec left "
                                 "invalid: kernel paging request fault")
            if pte == PTE_SHARED:
                host.populate_shared(pos, pos + 1)
                return pos + 1, True
            ripas = self.ripas[pos]
            if ripas == EMPTY:
                return pos, False
            if ripas == DESTROYED:
                host.count_fault(pos, fatal="RIPAS DESTROYED: KVM cannot resolve it")
                return pos, False
            for _ in range(3):  # a shared GFN is converted first, then the page created
                if host.private[pos] != FREE:
                    break
                host.fault_in(pos, "4k")
            if host.private[pos] == PENDING_4K:
                host.private.set(pos, pos + 1, MAPPED_4K)  # ASSIGNED: usable at once
            return pos + 1, True

        self.each(start, end, piece)

    def inaccessible(self, start: int, end: int) -> list[tuple[int, int]]:
        """Granules whose protected access raises an SEA (EMPTY) or never completes
        (DESTROYED); pages mapped through the unprotected alias are not among them."""
        out: list[tuple[int, int]] = []
        for s, e in self.ripas.runs_where(start, end, EMPTY, DESTROYED):
            for ps, pe in self.pte.runs_where(s, e, PTE_VALID, PTE_INVALID):
                if out and out[-1][1] == ps:
                    out[-1] = (out[-1][0], pe)
                else:
                    out.append((ps, pe))
        return out


@hookimpl
def register_vendors(register):
    register(Cca)
