"""AMD SEV-SNP: Page State Change VMGEXITs and PVALIDATE, as Linux issues them.

Follows ``arch/x86/coco/sev/core.c`` (``snp_accept_memory``,
``set_pages_state``, ``__set_pages_state``, ``vmgexit_psc``,
``pvalidate_pages``, ``pval_pages``), KVM's ``arch/x86/kvm/svm/sev.c``
(``snp_begin_psc``, ``sev_gmem_prepare``, ``sev_gmem_invalidate``,
``sev_handle_rmp_fault``) and QEMU's ``kvm_handle_hc_map_gpa_range``.
Rules, counters and sources: docs/snp.md. Model assumptions: ``ASSUMPTIONS``.

The host's private map holds the RMP entry of each page: FREE (not assigned
to the guest), PENDING (assigned, not validated) or MAPPED (assigned and
validated), at the RMP page size (4K or 2M).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cocomem.hookspecs import hookimpl
from cocomem.host import HostWords
from cocomem.results import CALL, EXIT, INFO, declare
from cocomem.run import Event, GuestCrash
from cocomem.state import (
    FREE,
    LEAF_2M,
    MAPPED,
    MAPPED_4K,
    PAGES_PER_2M,
    PENDING,
    PENDING_2M,
    PENDING_4K,
    PRIVATE,
    SHARED,
    with_level,
)
from cocomem.units import align_up
from cocomem.vendor import CostEntry, CostProfile, Vendor

# PVALIDATE results (arch/x86/include/asm/sev.h). FAIL_NOUPDATE (255) is
# Linux's value for rFLAGS.CF = 1 (no RMP update), not a hardware code.
OK = "ok"
FAIL_INPUT = "fail_input"                  # 1
FAIL_SIZEMISMATCH = "fail_sizemismatch"    # 6
FAIL_NOUPDATE = "fail_noupdate"            # 255
PVALIDATE_CODES = {OK: 0, FAIL_INPUT: 1, FAIL_SIZEMISMATCH: 6, FAIL_NOUPDATE: 255}
PSC_STATUSES = ("ok", "error")

#: VMGEXIT_PSC_MAX_ENTRY: entries in Linux's PSC descriptor (64 since commit
#: 69dcb1e3bb; the GHCB protocol allows 253)
PSC_MAX_ENTRIES = 64
#: #VC error code of an access to an assigned page that is not validated
PAGE_NOT_VALIDATED = 0x404

#: Model rules where no public source decides; each is a modelling choice.
ASSUMPTIONS = {
    "pvalidate-size-first": "a 2M PVALIDATE over 4K RMP entries returns FAIL_SIZEMISMATCH "
                            "whatever their Validated bits (the size check comes first), so "
                            "re-validating validated 4K pages fails at 4K with "
                            "FAIL_NOUPDATE after the 512-page fallback; the guest is "
                            "terminated either way",
    "validate-keeps-content": "PVALIDATE does not clear the page; a page KVM assigns "
                              "(RMPUPDATE on a fresh guest_memfd folio) holds no data of the "
                              "guest, and re-validating a validated page is fatal "
                              "(FAIL_NOUPDATE), so no PVALIDATE can hand the guest stale data "
                              "as fresh: stale-assumed-zero never comes from PVALIDATE",
    "release-is-unaccept": "release_memory is Sampat's snp_unaccept_memory: "
                           "set_pages_state(SHARED), i.e. rescind then PSC to shared, after "
                           "which QEMU converts the range and punches guest_memfd; a "
                           "rescind-only primitive (closest to TDX RELEASE) is not modelled",
    "npf-maps-largest": "an NPF carries no access size: KVM assigns the RMP entry and maps "
                        "at the largest level guest_memfd and the RMP allow, so a 4K "
                        "PVALIDATE or access in a fresh 2 MiB folio (vmm.mapping_level 2m) "
                        "gets a 2M RMP entry, then an NPF with SIZEM and a PSMASH",
    "psmash-one-exit": "a 4K PVALIDATE on a 2M RMP entry costs one NPF exit (PSMASH, then "
                       "the PVALIDATE is re-executed); the re-mapping faults after KVM zaps "
                       "the 2 MiB NPT mapping are not counted (no NPT state is kept apart "
                       "from the RMP)",
    "psc-injected": "an injected snp.psc error is KVM's own answer "
                    "(VMGEXIT_PSC_ERROR_GENERIC) before any exit to the VMM: nothing is "
                    "converted and Linux terminates the guest (GHCB_TERM_PSC); an injected "
                    "ok converts nothing",
    "direct-map-aligned": "a 2M PSC entry needs a 2 MiB-aligned direct-map address "
                          "(__set_pages_state tests the virtual address); the model tests "
                          "the guest physical one, i.e. PAGE_OFFSET is taken to be at least "
                          "2 MiB-aligned",
    "no-migration-hypercall": "set_memory_encrypted/decrypted issue no "
                              "notify_page_enc_status_changed hypercall "
                              "(KVM_FEATURE_MIGRATION_CONTROL is not exposed to the guest)",
}

_ASSUMED = "assumption"
_NO_FIGURE = ("assumption: no per-page SEV-SNP figure is published (the only SNP figure is "
              "a count: 1024 additional exits per 4 MiB chunk without prefault, T. Lendacky, "
              "QEMU 'i386/kvm: Prefault memory on page state change')")
_ZERO_US_PER_4K = 0.4  # assumption: ~10 GB/s for clearing a fresh guest_memfd page
COST_TABLE = {
    "snp.psc.*": CostEntry(us=1.0, source=_ASSUMED + ": one GHCB VMGEXIT round trip to KVM, "
                                                     "as a TDVMCALL"),
    "snp.psc_entries.*": CostEntry(us=0.0, source=_ASSUMED + ": KVM's work per entry is in "
                                                             "the VMGEXIT and its exits"),
    "snp.pvalidate.4k.ok": CostEntry(us=0.5, source=_NO_FIGURE + "; one RMP update, the page "
                                                                 "is not cleared"),
    "snp.pvalidate.2m.ok": CostEntry(us=2.0, source=_ASSUMED + ": one RMP update of 512 "
                                                               "entries, nothing cleared"),
    "snp.pvalidate.*": CostEntry(us=0.3, source=_ASSUMED + ": a PVALIDATE that changes "
                                                           "nothing"),
    "snp.rescind.4k.ok": CostEntry(us=0.5, source=_ASSUMED + ": as a 4K validate"),
    "snp.rescind.2m.ok": CostEntry(us=2.0, source=_ASSUMED + ": as a 2M validate"),
    "snp.rescind.*": CostEntry(us=0.3, source=_ASSUMED + ": a PVALIDATE that changes nothing"),
    "exit.npf": CostEntry(us=0.8, source=_NO_FIGURE + "; the TDX EPT-violation figure"),
    "host.rmp_make_private.4k": CostEntry(us=0.6 + _ZERO_US_PER_4K,
                                          source=_NO_FIGURE + "; RMPUPDATE plus clearing "
                                                              "the fresh page"),
    "host.rmp_make_private.2m": CostEntry(us=5.0 + 512 * _ZERO_US_PER_4K,
                                          source=_ASSUMED + ": RMPUPDATE plus clearing "
                                                            "2 MiB"),
    "host.rmp_make_shared.4k": CostEntry(us=0.5, source=_ASSUMED + ": RMPUPDATE and clflush"),
    "host.rmp_make_shared.2m": CostEntry(us=5.0, source=_ASSUMED + ": RMPUPDATE and clflush "
                                                                   "of 2 MiB"),
    "host.psmash.2m": CostEntry(us=5.0, source=_ASSUMED + ": PSMASH and the NPT zap"),
    "exit.map_gpa": CostEntry(us=10.0, source=_ASSUMED + ": exit to QEMU per merged run of "
                                                         "PSC entries"),
}

#: one profile: no SEV-SNP measurement disagrees with the table, since none is published
COST_PROFILES = (
    CostProfile(name="assumed", source=_NO_FIGURE, serial_share=1.0,
                serial_source=_ASSUMED + ": no published SEV-SNP vCPU scaling, so more "
                                         "vCPUs gain nothing"),
)

HOST_WORDS = HostWords(
    fault="exit.npf", fault_fn="KVM npf_interception (#VMEXIT(NPF))",
    add="host.rmp_make_private", add_fn="KVM sev_gmem_prepare (rmp_make_private)",
    remove="host.rmp_make_shared", remove_fn="KVM sev_gmem_invalidate (rmp_make_shared)",
    demote="host.psmash", demote_fn="KVM snp_rmptable_psmash (PSMASH)",
    keeps_4k_tables=False,
)


class SnpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    #: QEMU >= 10.1 ("i386/kvm: Prefault memory on page state change"): after each
    #: KVM_HC_MAP_GPA_RANGE exit, KVM_PRE_FAULT_MEMORY over the converted range, so
    #: the RMP entries are made without NPF exits. Off by default, so that counts
    #: compare with TDX (whose model does not prefault either).
    prefault: bool = False


class Snp(Vendor):
    name = "snp"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "AMD SEV-SNP guest (VMGEXIT Page State Change, PVALIDATE)"
    Options = SnpOptions
    fault_calls = {
        "snp.psc": PSC_STATUSES,
        "snp.pvalidate": tuple(PVALIDATE_CODES),
        "snp.rescind": tuple(PVALIDATE_CODES),
    }
    cost_table = COST_TABLE
    cost_profiles = COST_PROFILES
    assumptions = ASSUMPTIONS
    counters = {
        **declare(CALL, "snp.psc.{ok,error}",
                  "snp.{pvalidate,rescind}.{4k,2m}.{ok,fail_input,fail_sizemismatch,"
                  "fail_noupdate}"),
        **declare(INFO, "snp.psc_entries.{4k,2m}"),
        "exit.map_gpa": EXIT,
    }
    host_words = HOST_WORDS
    calls_are = "VMGEXIT(PSC), PVALIDATE"
    functions = {
        "exit.map_gpa": "KVM snp_begin_psc (KVM_HC_MAP_GPA_RANGE exit to QEMU "
                        "kvm_handle_hc_map_gpa_range)",
        "vmgexit": "vmgexit_psc",
        "pvalidate": "pval_pages",
        "host.prefault": "QEMU kvm_handle_hc_map_gpa_range (KVM_PRE_FAULT_MEMORY)",
    }

    @classmethod
    def describe(cls, event: Event, where: str) -> str | None:
        info = event.info
        if event.name == "vmgexit":
            sizes = ", ".join(f"{n}x{size}" for size, n in (("2m", info["entries_2m"]),
                                                            ("4k", info["entries_4k"])) if n)
            return (f"VMGEXIT PSC {where} to={info['to']} entries={sizes}"
                    f" -> {info['status'].upper()}")
        if event.name == "pvalidate":
            what = "PVALIDATE" if info["validate"] else "PVALIDATE (rescind)"
            return f"{what} {where} level={info['level']} -> {info['status'].upper()}"
        if event.name == "vc":
            return f"#VC {where} error_code={info['code']:#x} (PAGE_NOT_VALIDATED)"
        return None

    # -- KVM and QEMU: faults --------------------------------------------

    def _fault(self, page: int) -> None:
        """An NPF at ``page`` that KVM resolves (npf-maps-largest): a private GFN is
        assigned at 2M where guest_memfd has a 2M folio (vmm.mapping_level 2m) and the
        whole 2 MiB is unassigned (is_large_rmp_possible), else at 4K; a shared GFN
        goes to the VMM (KVM_EXIT_MEMORY_FAULT) and is converted."""
        host = self.host
        base = page - page % PAGES_PER_2M
        if (host.mapping_level == "2m" and base + PAGES_PER_2M <= host.npages
                and host.attr.all(base, base + PAGES_PER_2M, PRIVATE)
                and host.private.all(base, base + PAGES_PER_2M, FREE)):
            host.fault_in(page, "2m")
        else:
            host.fault_in(page, "4k")

    def _prefault(self, start: int, end: int) -> None:
        """KVM_PRE_FAULT_MEMORY over ``[start, end)`` (QEMU's prefault after a PSC exit):
        unassigned private pages are assigned as a fault would, without an exit;
        shared pages are populated."""
        host = self.host
        self.ctx.emit("host.prefault", start, end)
        for s, e in host.attr.runs_where(start, end, SHARED):
            host.populate_shared(s, e)
        for s, e in host.private.runs_where(start, end, FREE):
            for ps, pe in host.attr.runs_where(s, e, PRIVATE):
                self._assign(ps, pe)

    def _assign(self, start: int, end: int) -> None:
        """sev_gmem_prepare over free private ``[start, end)``: 2M entries where the VMM
        has 2M folios and a whole 2 MiB lies in the range, 4K elsewhere."""
        host = self.host
        pieces: list[tuple[int, int, str]] = []
        first, last = align_up(start, PAGES_PER_2M), end - end % PAGES_PER_2M
        if host.mapping_level == "2m" and first < last:
            pieces = [(start, first, "4k"), (first, last, "2m"), (last, end, "4k")]
        else:
            pieces = [(start, end, "4k")]
        for s, e, leaf in pieces:
            if s < e:
                host.add_private(s, e, leaf, prefault=True)

    # -- one PVALIDATE -----------------------------------------------------

    def _result(self, page: int, level: str, validate: bool, status: str) -> str:
        npages = PAGES_PER_2M if level == "2m" else 1
        op = "pvalidate" if validate else "rescind"
        self.ctx.count(f"snp.{op}.{level}.{status}")
        self.ctx.emit("pvalidate", page, page + npages, validate=int(validate), level=level,
                      status=status, fn="pval_pages")
        return status

    def _pvalidate(self, page: int, level: str, validate: bool) -> str:
        """One PVALIDATE (validate = 1) or rescind (validate = 0), re-executed after each
        NPF KVM resolves; one call whatever the exits (docs/snp.md, counting)."""
        host = self.host
        injected = self.faults.take("snp.pvalidate" if validate else "snp.rescind")
        if injected:
            return self._result(page, level, validate, injected)
        npages = PAGES_PER_2M if level == "2m" else 1
        for _ in range(4):  # an NPF is resolved in at most two exits
            state = host.private[page]
            if state == FREE:  # not mapped: NPF, KVM assigns (or the VMM converts)
                self._fault(page)
                continue
            if level == "4k" and state in LEAF_2M:  # NPF with SIZEM: PSMASH, re-execute
                host.count_fault(page, level=level)
                host.demote(page)
                continue
            if level == "2m" and state not in LEAF_2M:  # 4K RMP entry at the base
                return self._result(page, level, validate, FAIL_SIZEMISMATCH)
            if (state in MAPPED) == validate:  # nothing to change: rFLAGS.CF = 1
                if validate:
                    self.ctx.emit("accept.already", page, page + npages, tolerated=False)
                return self._result(page, level, validate, FAIL_NOUPDATE)
            host.private.set(page, page + npages,
                             with_level(MAPPED_4K if validate else PENDING_4K, level))
            if validate:
                self.ctx.emit("accept.done", page, page + npages)
            return self._result(page, level, validate, OK)
        raise AssertionError(f"PVALIDATE at page {page} did not settle")

    def _pval_range(self, start: int, end: int, level: str, validate: bool) -> None:
        """pval_pages over entries of one size: PVALIDATE each; FAIL_SIZEMISMATCH at 2M
        is retried as 512 x 4K; anything else terminates the guest (__pval_terminate)."""
        size = PAGES_PER_2M if level == "2m" else 1

        def piece(page: int, _end: int) -> tuple[int, bool]:
            status = self._pvalidate(page, level, validate)
            if status == FAIL_SIZEMISMATCH and level == "2m":
                self._pval_range(page, page + PAGES_PER_2M, "4k", validate)
            elif status != OK:
                self.ctx.emit("terminate", page, page + size, fn="__pval_terminate",
                              reason="GHCB_TERM_PVALIDATE")
                what = "validate" if validate else "rescind"
                raise GuestCrash("accept-panic", page, page + size,
                                 f"pval_pages: PVALIDATE ({what}) level={level} returned "
                                 f"{status.upper()} ({PVALIDATE_CODES.get(status, '?')}): "
                                 f"__pval_terminate")
            return page + size, True

        self.each(start, end, piece)

    def _pvalidate_pages(self, entries: list[tuple[int, int]], validate: bool) -> None:
        """pvalidate_pages over one descriptor's entries, in runs of one size."""
        for s, e, size in _runs(entries):
            self._pval_range(s, e, "2m" if size == PAGES_PER_2M else "4k", validate)

    # -- one VMGEXIT(PSC) ----------------------------------------------------

    def _vmgexit_psc(self, entries: list[tuple[int, int]], to: str) -> None:
        """vmgexit_psc of one descriptor. KVM (snp_begin_psc) exits to the VMM once per
        run of adjacent entries of one size; QEMU converts each run
        (kvm_convert_memory) and, with prefault, pre-faults it. KVM resumes the guest
        when every entry is done, so the loop makes one VMGEXIT."""
        start, end = entries[0][0], entries[-1][0] + entries[-1][1]
        n2m = sum(1 for _, size in entries if size == PAGES_PER_2M)
        n4k = len(entries) - n2m
        self.ctx.count("snp.psc_entries.2m", n2m)
        self.ctx.count("snp.psc_entries.4k", n4k)
        injected = self.faults.take("snp.psc")
        if injected is None:
            for s, e, size in _runs(entries):
                self.ctx.count("exit.map_gpa")
                self.ctx.emit("exit", s, e, reason="map_gpa", to=to,
                              size="2m" if size == PAGES_PER_2M else "4k")
                self.host.convert(s, e, to)
                if self.options.prefault:
                    self._prefault(s, e)
        status = injected or "ok"
        self.ctx.count(f"snp.psc.{status}")
        self.ctx.emit("vmgexit", start, end, to=to, entries_2m=n2m, entries_4k=n4k,
                      status=status, fn="vmgexit_psc")
        if status != "ok":
            self.ctx.emit("terminate", start, end, fn="__set_pages_state",
                          reason="GHCB_TERM_PSC")
            raise GuestCrash("accept-panic", start, end,
                             "__set_pages_state: PSC VMGEXIT failed: "
                             "sev_es_terminate(SEV_TERM_SET_LINUX, GHCB_TERM_PSC)")

    # -- set_pages_state ---------------------------------------------------

    def _set_pages_state(self, start: int, end: int, to: str) -> None:
        """set_pages_state: one __set_pages_state per descriptor of at most 64 entries.
        Descriptors of one shape are done one by one through the bulk mechanism."""
        validate = to == PRIVATE

        def descriptor(pos: int, seg_end: int) -> tuple[int, bool]:
            entries = _entries(pos, min(seg_end, end), end)
            if not validate:  # "Page validation must be rescinded before changing to shared"
                self._pvalidate_pages(entries, validate=False)
            self._vmgexit_psc(entries, to)
            if validate:  # "Page validation must be performed after changing to private"
                self._pvalidate_pages(entries, validate=True)
            return entries[-1][0] + entries[-1][1], True

        for seg_start, seg_end in _segments(start, end):
            self.each(seg_start, seg_end, descriptor)

    def _repeatable(self, fn: str, to: str, start: int, end: int) -> None:
        """set_pages_state(to), or a replay of the last one of the same direction over
        as many pages of a 2M-aligned range, in the same state."""
        def walk() -> int:
            self._set_pages_state(start, end, to)
            return end

        self.repeatable(to, start, end, walk, key=(self.options.prefault,), fn=fn)

    def _private(self, fn: str, start: int, end: int) -> None:
        self.ctx.emit("call", start, end, fn=fn)
        self._repeatable(fn, PRIVATE, start, end)

    def _shared(self, fn: str, start: int, end: int) -> None:
        self.ctx.emit("call", start, end, fn=fn)
        self._repeatable(fn, SHARED, start, end)

    # -- the arch API ----------------------------------------------------

    def accept_memory(self, start: int, end: int, *, ignore: tuple[str, ...] = ()) -> bool:
        """snp_accept_memory = set_pages_state(PRIVATE). It cannot fail back to its
        caller (a failure terminates the guest), so ``ignore`` has nothing to act on."""
        self._private("snp_accept_memory", start, end)
        return True

    def release_memory(self, start: int, end: int) -> bool:
        """Sampat's snp_unaccept_memory = set_pages_state(SHARED) (release-is-unaccept)."""
        self._shared("snp_unaccept_memory", start, end)
        return True

    def set_memory_encrypted(self, start: int, end: int) -> bool:
        """amd_enc_status_change_finish -> snp_set_memory_private: PSC, then PVALIDATE."""
        self._private("snp_set_memory_private", start, end)
        return True

    def set_memory_decrypted(self, start: int, end: int) -> bool:
        """amd_enc_status_change_prepare -> snp_set_memory_shared: rescind, then PSC."""
        self._shared("snp_set_memory_shared", start, end)
        return True

    def touch(self, start: int, end: int) -> None:
        """The first access that would fault: an unassigned page is assigned first (NPF;
        a shared GFN goes to the VMM and is converted), then the access to an assigned,
        unvalidated page raises #VC PAGE_NOT_VALIDATED (0x404), which Linux does not
        handle (vc_handle_exitcode): the guest terminates."""
        host = self.host
        bad = self.inaccessible(start, end)
        if not bad:
            return
        page = bad[0][0]
        for _ in range(4):
            if host.private[page] != FREE:
                break
            self._fault(page)
        if host.private[page] in PENDING:
            self.ctx.emit("vc", page, page + 1, code=PAGE_NOT_VALIDATED,
                          fn="vc_handle_exitcode -> sev_es_terminate")
            raise GuestCrash("access-unaccepted", page, page + 1,
                             "#VC PAGE_NOT_VALIDATED (0x404) on an assigned, unvalidated "
                             "page: no handler, the guest terminates")

    def inaccessible(self, start: int, end: int) -> list[tuple[int, int]]:
        return self.host.private.runs_where(start, end, FREE, PENDING_4K, PENDING_2M)


# -- the descriptor layout of __set_pages_state ------------------------------

def _layout(start: int, end: int) -> list[tuple[int, int]]:
    """The entries of set_pages_state over ``[start, end)`` as (size, count) blocks:
    an entry is 2M where the address is 2 MiB-aligned and >= 2 MiB is left, else 4K.
    So: 4K entries up to the first 2 MiB boundary (if >= 2 MiB follows it), 2M
    entries while >= 2 MiB is left, 4K entries for the rest."""
    aligned = align_up(start, PAGES_PER_2M)
    if aligned < end and end - aligned >= PAGES_PER_2M:
        rest = end - aligned
        blocks = [(1, aligned - start), (PAGES_PER_2M, rest // PAGES_PER_2M),
                  (1, rest % PAGES_PER_2M)]
    else:
        blocks = [(1, end - start)]
    return [(size, n) for size, n in blocks if n]


def _segments(start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut at descriptor boundaries into runs of descriptors of one
    shape: a run of full descriptors of one entry size, or a single descriptor (one
    that mixes sizes, or the last, short one)."""
    segments: list[tuple[int, int]] = []
    pos = desc_start = start
    room = PSC_MAX_ENTRIES
    for size, n in _layout(start, end):
        if room < PSC_MAX_ENTRIES:  # fill the descriptor the last block began
            take = min(room, n)
            pos, n, room = pos + take * size, n - take, room - take
            if not room:
                segments.append((desc_start, pos))
                desc_start, room = pos, PSC_MAX_ENTRIES
            if not n:
                continue
        full = n // PSC_MAX_ENTRIES
        if full:
            pos += full * PSC_MAX_ENTRIES * size
            segments.append((desc_start, pos))
            desc_start, n = pos, n - full * PSC_MAX_ENTRIES
        if n:
            pos += n * size
            room = PSC_MAX_ENTRIES - n
    if room < PSC_MAX_ENTRIES:
        segments.append((desc_start, pos))
    return segments


def _entries(pos: int, stop: int, end: int) -> list[tuple[int, int]]:
    """The entries (page, pages) of the descriptor __set_pages_state builds at ``pos``
    for a range ending at ``end``, stopping at ``stop`` or after 64 entries."""
    entries = []
    while pos < stop and len(entries) < PSC_MAX_ENTRIES:
        size = PAGES_PER_2M if pos % PAGES_PER_2M == 0 and end - pos >= PAGES_PER_2M else 1
        entries.append((pos, size))
        pos += size
    return entries


def _runs(entries: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Adjacent entries of one size, merged as KVM's snp_begin_psc merges them:
    (start, end, entry size)."""
    runs: list[list[int]] = []
    for page, size in entries:
        if runs and runs[-1][2] == size and runs[-1][1] == page:
            runs[-1][1] = page + size
        else:
            runs.append([page, page + size, size])
    return [(s, e, size) for s, e, size in runs]


@hookimpl
def register_vendors(register):
    register(Snp)
