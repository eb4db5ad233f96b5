"""AMD SEV-SNP: counters and page states worked out by hand from the posted code.

Each case names the function whose algorithm gives the numbers: Linux
``arch/x86/coco/sev/core.c`` (``set_pages_state``, ``__set_pages_state``,
``vmgexit_psc``, ``pval_pages``), KVM ``arch/x86/kvm/svm/sev.c``
(``snp_begin_psc``, ``sev_gmem_prepare``, ``sev_handle_rmp_fault``) and QEMU
(``kvm_handle_hc_map_gpa_range``). Geometry unless said otherwise: a 1 GiB
device at 4 GiB, 2 MiB device blocks and subblocks, 128 MiB memory blocks, a
start-private VMM that maps private memory at 4K (upstream guest_memfd:
order-0 folios) and discards only the shared plane on unplug.
"""

from __future__ import annotations

from collections import Counter

import pytest
from cocomem_plugins.snp import Snp, _layout, _segments
from scenario_builder import scenario_yaml
from typer.testing import CliRunner

from cocomem import bulk
from cocomem.cli import app
from cocomem.engine import BackendRun
from cocomem.run import GuestCrash
from cocomem.scenario import parse_scenario
from cocomem.state import FREE, MAPPED_2M, MAPPED_4K, PENDING_4K, PRIVATE, SHARED

MIB = 256  # 4 KiB pages per MiB
GIB = 1024 * MIB


def snp_run(registry, steps: list, backend: str = "start-shared", *,
            prefault: bool | None = None, **settings) -> BackendRun:
    """A run of ``backend`` on SNP over ``steps``, not started yet."""
    text = scenario_yaml(steps, vendor="snp", **settings)
    if prefault is not None:
        text += f"snp: {{prefault: {str(prefault).lower()}}}\n"
    loaded = parse_scenario(text, "<test>", set(registry.vendors))
    return BackendRun(loaded, registry, backend, "snp")


def counters(run, *prefixes: str) -> dict[str, int]:
    return {k: v for k, v in run.ctx.counters.items() if k.startswith(prefixes or ("",))}


def runs(runmap, start: int = 0, end: int | None = None) -> list:
    return [tuple(r) for r in runmap.runs(start, end)]


def kinds(result) -> set[str]:
    return {v["kind"] for v in result.violations}


# -- snp_accept_memory = set_pages_state(PRIVATE) ------------------------------

def test_plug_128m_at_4k_mapping(registry):
    # start-shared's set_memory_encrypted is snp_set_memory_private, the same
    # set_pages_state(PRIVATE) as snp_accept_memory. __set_pages_state: 128 MiB
    # from a 2 MiB-aligned address = 64 2M entries = one descriptor, one VMGEXIT.
    # snp_begin_psc merges the 64 adjacent 2M entries into one KVM_HC_MAP_GPA_RANGE
    # exit (nothing to convert: the VMM starts private). pval_pages: each 2M
    # PVALIDATE faults in its base page (NPF, sev_gmem_prepare assigns it at 4K:
    # order-0 folios), is re-executed and returns FAIL_SIZEMISMATCH; then 512 4K
    # PVALIDATEs, 511 of which fault first.
    run = snp_run(registry, [{"plug": "128MiB"}])
    run.run()
    assert counters(run, "snp") == {"snp.psc.ok": 1, "snp.psc_entries.2m": 64,
                                    "snp.pvalidate.2m.fail_sizemismatch": 64,
                                    "snp.pvalidate.4k.ok": 32768}
    assert counters(run, "exit") == {"exit.map_gpa": 1, "exit.npf": 32768}
    assert counters(run, "host") == {"host.rmp_make_private.4k": 32768}
    assert runs(run.host.private) == [(0, 128 * MIB, MAPPED_4K), (128 * MIB, GIB, FREE)]


def test_plug_128m_at_2m_mapping(registry):
    # A 2M guest_memfd folio with the whole 2 MiB unassigned: sev_gmem_prepare
    # makes a 2M RMP entry (is_large_rmp_possible); the 2M PVALIDATE succeeds.
    run = snp_run(registry, [{"plug": "128MiB"}], mapping="2m")
    run.run()
    assert counters(run, "snp") == {"snp.psc.ok": 1, "snp.psc_entries.2m": 64,
                                    "snp.pvalidate.2m.ok": 64}
    assert counters(run, "exit") == {"exit.map_gpa": 1, "exit.npf": 64}
    assert counters(run, "host") == {"host.rmp_make_private.2m": 64}
    assert runs(run.host.private) == [(0, 128 * MIB, MAPPED_2M), (128 * MIB, GIB, FREE)]


def test_lazy_4m_chunk_costs_1024_npf_exits(registry):
    # The allocator accepts 4 MiB chunks: one VMGEXIT with 2 x 2M entries, one exit
    # to QEMU, 2 FAIL_SIZEMISMATCH + 1024 4K PVALIDATEs and 1024 NPF exits: the
    # "1024 additional exits" of T. Lendacky's QEMU commit "i386/kvm: Prefault
    # memory on page state change".
    run = snp_run(registry, [])
    assert run.vendor.accept_memory(0, 1024)
    assert counters(run) == {"snp.psc.ok": 1, "snp.psc_entries.2m": 2, "exit.map_gpa": 1,
                             "snp.pvalidate.2m.fail_sizemismatch": 2,
                             "snp.pvalidate.4k.ok": 1024, "exit.npf": 1024,
                             "host.rmp_make_private.4k": 1024}


def test_prefault_removes_the_npf_exits(registry):
    # QEMU >= 10.1 (kvm_handle_hc_map_gpa_range): KVM_PRE_FAULT_MEMORY over the range
    # after the PSC exit assigns every page; the PVALIDATEs then fault nothing.
    run = snp_run(registry, [], prefault=True)
    assert run.vendor.accept_memory(0, 1024)
    assert counters(run) == {"snp.psc.ok": 1, "snp.psc_entries.2m": 2, "exit.map_gpa": 1,
                             "snp.pvalidate.2m.fail_sizemismatch": 2,
                             "snp.pvalidate.4k.ok": 1024,
                             "host.rmp_make_private.4k": 1024}


def test_prefault_at_2m_mapping(registry):
    run = snp_run(registry, [], prefault=True, mapping="2m")
    assert run.vendor.accept_memory(0, 1024)
    assert counters(run, "snp.pvalidate", "exit", "host") == {
        "snp.pvalidate.2m.ok": 2, "exit.map_gpa": 1, "host.rmp_make_private.2m": 2}


def test_prefault_option_in_a_scenario(registry):
    # plugged-bitmap, lazy: use 64 MiB of a 128 MiB block; with prefault no NPF at all
    run = snp_run(registry, [{"plug": "128MiB"}, {"use": "64MiB"}], "plugged-bitmap",
                  prefault=True)
    result = run.run()
    assert result.verdict == "ok"
    assert "exit.npf" not in result.counters
    assert result.counters["host.rmp_make_private.4k"] == 512 * result.counters[
        "snp.pvalidate.2m.fail_sizemismatch"]


def test_unaligned_130m_range_splits_into_4k_entries(registry):
    # __set_pages_state over pages [1, 1 + 130 MiB): an entry is 2M only where the
    # address is 2 MiB-aligned with >= 2 MiB left. Pages 1..511 are 511 4K entries,
    # then 64 2M entries, then 1 4K entry: 576 entries, 9 descriptors of <= 64.
    # Descriptors 0-6 hold 64 4K entries each (one run, one exit each); descriptor
    # 7 holds 63 4K + 1 2M (two runs, two exits); descriptor 8 holds 63 2M + 1 4K
    # (two exits): 9 VMGEXITs, 11 exits to QEMU (snp_begin_psc).
    start, end = 1, 1 + 130 * MIB
    assert _layout(start, end) == [(1, 511), (512, 64), (1, 1)]
    run = snp_run(registry, [])
    assert run.vendor.accept_memory(start, end)
    assert counters(run, "snp.psc", "exit.map_gpa") == {
        "snp.psc.ok": 9, "snp.psc_entries.4k": 512, "snp.psc_entries.2m": 64,
        "exit.map_gpa": 11}
    assert counters(run, "snp.pvalidate") == {"snp.pvalidate.4k.ok": 512 + 64 * 512,
                                              "snp.pvalidate.2m.fail_sizemismatch": 64}
    assert counters(run, "exit.npf", "host") == {"exit.npf": 33280,
                                                 "host.rmp_make_private.4k": 33280}
    assert runs(run.host.private) == [(0, 1, FREE), (1, end, MAPPED_4K), (end, GIB, FREE)]


def test_more_than_64_entries_take_several_vmgexits(registry):
    # 256 MiB = 128 2M entries: two descriptors, two VMGEXITs, one exit each.
    run = snp_run(registry, [], mapping="2m")
    assert run.vendor.accept_memory(0, 256 * MIB)
    assert counters(run, "snp.psc", "exit") == {"snp.psc.ok": 2, "snp.psc_entries.2m": 128,
                                                "exit.map_gpa": 2, "exit.npf": 128}


def test_2m_then_4k_tail_in_one_descriptor(registry):
    # [0, 512 + 100): 1 2M entry then 100 4K entries (< 2 MiB left). Descriptor 0:
    # 1 2M + 63 4K entries, two runs, two exits; descriptor 1: 37 4K, one exit.
    assert _segments(0, 612) == [(0, 575), (575, 612)]
    run = snp_run(registry, [])
    assert run.vendor.accept_memory(0, 612)
    assert counters(run, "snp.psc", "exit.map_gpa") == {
        "snp.psc.ok": 2, "snp.psc_entries.2m": 1, "snp.psc_entries.4k": 100,
        "exit.map_gpa": 3}


def test_segments_are_descriptor_boundaries():
    # runs of descriptors of one shape; a descriptor that mixes sizes stands alone
    assert _segments(0, 128 * MIB) == [(0, 128 * MIB)]
    assert _segments(0, 300 * MIB) == [(0, 256 * MIB), (256 * MIB, 300 * MIB)]
    assert _segments(1, 1 + 130 * MIB) == [(1, 449), (449, 1024), (1024, 1 + 130 * MIB)]
    assert _segments(0, 100) == [(0, 64), (64, 100)]


def test_start_shared_vmm_is_converted_by_the_psc(registry):
    # Linux always issues a PSC before PVALIDATE: on a start-shared VMM the PSC's one
    # exit converts the whole 128 MiB (kvm_convert_memory); no page is converted
    # implicitly (no KVM_EXIT_MEMORY_FAULT), unlike TDX's 32768.
    run = snp_run(registry, [{"plug": "128MiB"}], memory="start-shared")
    run.run()
    assert counters(run, "exit", "host.convert") == {
        "exit.map_gpa": 1, "exit.npf": 32768, "host.convert.private": 32768}
    assert runs(run.host.attr) == [(0, 128 * MIB, PRIVATE), (128 * MIB, GIB, SHARED)]


# -- failures: everything but a 2M size mismatch terminates the guest -----------

def test_injected_fail_input_terminates_the_guest(registry):
    # pval_pages: call 1 is the 2M PVALIDATE (FAIL_SIZEMISMATCH, retried at 4K), call
    # 2 a 4K ok, call 3 is made to fail: __pval_terminate, the guest is gone.
    faults = [{"call": "snp.pvalidate", "nth": 3, "status": "fail_input"}]
    run = snp_run(registry, [{"plug": "128MiB"}, {"use": "all"}], faults=faults)
    result = run.run()
    assert result.verdict == "crashed"
    assert kinds(result) == {"accept-panic"}
    assert result.crashed_at == 0
    assert counters(run, "snp.pvalidate") == {"snp.pvalidate.2m.fail_sizemismatch": 1,
                                              "snp.pvalidate.4k.ok": 1,
                                              "snp.pvalidate.4k.fail_input": 1}
    assert "fail_input".upper() in result.why


def test_injected_2m_size_mismatch_falls_back_to_4k(registry):
    # at a 2M mapping the first 2M PVALIDATE is made to return FAIL_SIZEMISMATCH:
    # pval_pages retries it as 512 4K PVALIDATEs; the first faults on the 2M RMP
    # entry (SIZEM), KVM PSMASHes it (sev_handle_rmp_fault), the rest succeed.
    faults = [{"call": "snp.pvalidate", "nth": 1, "status": "fail_sizemismatch"}]
    run = snp_run(registry, [{"plug": "128MiB"}], mapping="2m", faults=faults)
    result = run.run()
    assert result.verdict == "ok"
    assert counters(run, "snp.pvalidate") == {"snp.pvalidate.2m.fail_sizemismatch": 1,
                                              "snp.pvalidate.4k.ok": 512,
                                              "snp.pvalidate.2m.ok": 63}
    assert counters(run, "host") == {"host.rmp_make_private.2m": 64, "host.psmash.2m": 1}
    assert counters(run, "exit.npf") == {"exit.npf": 65}


def test_injected_psc_error_terminates_without_an_exit(registry):
    faults = [{"call": "snp.psc", "nth": 1, "status": "error"}]
    run = snp_run(registry, [{"plug": "128MiB"}], faults=faults)
    result = run.run()
    assert result.verdict == "crashed" and kinds(result) == {"accept-panic"}
    assert "GHCB_TERM_PSC" in result.why
    assert counters(run, "snp", "exit") == {"snp.psc.error": 1, "snp.psc_entries.2m": 64}


def test_revalidating_validated_pages_is_fatal(registry):
    # A VMM whose unplug kept the private pages: the re-plug's PSC changes nothing
    # (private -> private), the 2M PVALIDATE over 4K RMP entries returns
    # FAIL_SIZEMISMATCH (pvalidate-size-first), the 4K one FAIL_NOUPDATE (rFLAGS.CF
    # = 1): __pval_terminate. It hit an already validated page: double-accept too.
    run = snp_run(registry, [])
    run.vendor.accept_memory(0, 512)
    before = Counter(run.ctx.counters)
    with pytest.raises(GuestCrash) as crash:
        run.vendor.accept_memory(0, 512)
    assert crash.value.kind == "accept-panic"
    assert "FAIL_NOUPDATE" in crash.value.detail
    assert run.ctx.counters - before == Counter({
        "snp.psc.ok": 1, "snp.psc_entries.2m": 1, "exit.map_gpa": 1,
        "snp.pvalidate.2m.fail_sizemismatch": 1, "snp.pvalidate.4k.fail_noupdate": 1})


def test_revalidating_a_2m_entry_fails_at_2m(registry):
    run = snp_run(registry, [], mapping="2m")
    run.vendor.accept_memory(0, 512)
    before = Counter(run.ctx.counters)
    with pytest.raises(GuestCrash):
        run.vendor.accept_memory(0, 512)
    assert (run.ctx.counters - before)["snp.pvalidate.2m.fail_noupdate"] == 1


def test_kexec_replug_kills_start_shared(registry):
    # UNPLUG_ALL after kexec is a no-op for private memory on upstream QEMU and
    # start-shared converts nothing before it: the re-plug's set_memory_encrypted
    # re-validates validated pages -> FAIL_NOUPDATE -> terminated (on TDX the same
    # sequence returns ALREADY_ACCEPTED and breaks the device instead).
    run = snp_run(registry, [{"plug": "128MiB"}, {"use": "all"}, "kexec"])
    result = run.run()
    assert result.verdict == "crashed"
    assert kinds(result) == {"double-accept", "accept-panic"}
    assert result.counters["snp.pvalidate.4k.fail_noupdate"] == 1


# -- to shared: rescind first, then PSC -----------------------------------------

def test_set_memory_decrypted_rescinds_then_converts(registry):
    # __set_pages_state(SHARED): "Page validation must be rescinded before changing
    # to shared": per 2 MiB 1 rescind FAIL_SIZEMISMATCH + 512 4K rescinds, then one
    # VMGEXIT, one exit; QEMU converts and punches guest_memfd: sev_gmem_invalidate
    # makes the 4K RMP entries shared.
    run = snp_run(registry, [])
    run.vendor.accept_memory(0, 1024)
    before = Counter(run.ctx.counters)
    assert run.vendor.set_memory_decrypted(0, 1024)
    assert run.ctx.counters - before == Counter({
        "snp.rescind.2m.fail_sizemismatch": 2, "snp.rescind.4k.ok": 1024,
        "snp.psc.ok": 1, "snp.psc_entries.2m": 2, "exit.map_gpa": 1,
        "host.convert.shared": 1024, "host.rmp_make_shared.4k": 1024})
    assert runs(run.host.private, 0, 2048) == [(0, 2048, FREE)]
    assert runs(run.host.attr, 0, 2048) == [(0, 1024, SHARED), (1024, 2048, PRIVATE)]


def test_release_is_snp_unaccept_memory(registry):
    # Sampat's snp_unaccept_memory = set_pages_state(SHARED) (release-is-unaccept)
    run = snp_run(registry, [], mapping="2m")
    run.vendor.accept_memory(0, 512)
    before = Counter(run.ctx.counters)
    assert run.vendor.release_memory(0, 512)
    assert run.ctx.counters - before == Counter({
        "snp.rescind.2m.ok": 1, "snp.psc.ok": 1, "snp.psc_entries.2m": 1,
        "exit.map_gpa": 1, "host.convert.shared": 512, "host.rmp_make_shared.2m": 1})


def test_rescinding_an_unvalidated_page_is_fatal(registry):
    # set_memory_decrypted of memory never accepted: the rescind faults the page in
    # (NPF, assigned), then finds it not validated: FAIL_NOUPDATE, terminated.
    run = snp_run(registry, [])
    with pytest.raises(GuestCrash) as crash:
        run.vendor.set_memory_decrypted(0, 1)
    assert crash.value.kind == "accept-panic"
    assert counters(run) == {"exit.npf": 1, "host.rmp_make_private.4k": 1,
                             "snp.rescind.4k.fail_noupdate": 1}


def test_4k_rescind_in_a_2m_entry_psmashes(registry):
    # sev_handle_rmp_fault: a 4K PVALIDATE on a 2M RMP entry is an NPF with SIZEM;
    # KVM PSMASHes the entry and the PVALIDATE is re-executed (psmash-one-exit).
    run = snp_run(registry, [], mapping="2m")
    run.vendor.accept_memory(0, 512)
    before = Counter(run.ctx.counters)
    assert run.vendor.set_memory_decrypted(7, 8)
    assert run.ctx.counters - before == Counter({
        "exit.npf": 1, "host.psmash.2m": 1, "snp.rescind.4k.ok": 1, "snp.psc.ok": 1,
        "snp.psc_entries.4k": 1, "exit.map_gpa": 1, "host.convert.shared": 1,
        "host.rmp_make_shared.4k": 1})
    assert runs(run.host.private, 0, 512) == [(0, 7, MAPPED_4K), (7, 8, FREE),
                                              (8, 512, MAPPED_4K)]


def test_4k_validate_in_a_fresh_2m_folio(registry):
    # npf-maps-largest: the NPF carries no access size, KVM assigns the whole fresh
    # 2 MiB folio at 2M; the 4K PVALIDATE then faults with SIZEM: PSMASH.
    run = snp_run(registry, [], mapping="2m")
    assert run.vendor.accept_memory(1, 2)
    assert counters(run, "exit", "host", "snp.pvalidate") == {
        "exit.map_gpa": 1, "exit.npf": 2, "host.rmp_make_private.2m": 1,
        "host.psmash.2m": 1, "snp.pvalidate.4k.ok": 1}
    assert runs(run.host.private, 0, 512) == [(0, 1, PENDING_4K), (1, 2, MAPPED_4K),
                                              (2, 512, PENDING_4K)]


# -- guest accesses: #VC PAGE_NOT_VALIDATED -------------------------------------

def test_touching_unvalidated_memory_raises_vc_0x404(registry):
    # mainline never validates hot-plugged memory: the first write faults (NPF, KVM
    # assigns the page), the re-executed access meets an assigned, unvalidated page:
    # #VC 0x404, which vc_handle_exitcode cannot handle: the guest terminates.
    run = snp_run(registry, [{"plug": "128MiB"}, {"use": "4KiB"}], "mainline")
    result = run.run()
    assert result.verdict == "crashed" and kinds(result) == {"access-unaccepted"}
    assert "0x404" in result.why
    assert counters(run, "exit", "host") == {"exit.npf": 1, "host.rmp_make_private.4k": 1}


def test_touching_a_shared_gfn_converts_then_raises_vc(registry):
    # start-shared VMM: the private access to a shared GFN goes to QEMU
    # (KVM_EXIT_MEMORY_FAULT, one page converted), faults again, is assigned, #VC.
    run = snp_run(registry, [{"plug": "128MiB"}, {"use": "4KiB"}], "mainline",
                  memory="start-shared")
    result = run.run()
    assert result.verdict == "crashed"
    assert counters(run, "exit", "host") == {"exit.npf": 2, "exit.memory_fault": 1,
                                             "host.convert.private": 1,
                                             "host.rmp_make_private.4k": 1}


def test_tdx_only_designs_run_as_mainline_on_snp(registry):
    # notifier and callbacks hook TDX code only (platforms = ("tdx",)): on SNP the
    # kernel is mainline's, and the verdict says why.
    for backend in ("notifier", "callbacks"):
        result = snp_run(registry, [{"plug": "128MiB"}, {"use": "4KiB"}], backend).run()
        assert result.verdict == "crashed"
        assert "registers nothing on snp" in result.why


# -- RFC v2 on SNP ----------------------------------------------------------------

def test_rfc_v2_unplug_panics_on_snp(registry):
    # RFC v2 patch 4, x86 arch_unaccept_memory: only TDX is handled; on any other
    # platform panic("Cannot unaccept memory: unknown platform"). The lazy accepts
    # work (accept_memory -> arch_accept_memory -> snp_accept_memory); the first
    # unplug panics before the UNPLUG is sent.
    steps = [{"plug": "256MiB"}, {"use": "all"}, {"unplug": "128MiB"}]
    run = snp_run(registry, steps, "plugged-bitmap")
    result = run.run()
    assert result.verdict == "crashed" and kinds(result) == {"accept-panic"}
    assert result.crashed_at == 2
    assert "unknown platform" in result.why
    assert result.counters["snp.pvalidate.4k.ok"] == 65536
    assert "virtio_mem.unplug.ack" not in result.counters
    assert not any(k.startswith("snp.rescind") for k in result.counters)


# -- the bulk mechanism changes nothing ------------------------------------------

@pytest.mark.parametrize("mapping", ["4k", "2m"])
@pytest.mark.parametrize("backend", ["start-shared", "plugged-bitmap"])
def test_bulk_and_call_by_call_agree(registry, monkeypatch, backend, mapping):
    steps = [{"plug": "64MiB"}, {"use": "16MiB"}, {"unplug": "2MiB"}, {"plug": "4MiB"},
             {"use": "all"}]

    def result_of():
        run = snp_run(registry, steps, backend, mapping=mapping, region="256MiB")
        result = run.run()
        maps = [runs(m) for m in run.host.page_maps]
        return result.verdict, result.counters, maps

    fast = result_of()
    monkeypatch.setattr(bulk, "ENABLED", False)
    assert result_of() == fast


@pytest.mark.parametrize("start,end", [(0, 1024), (1, 1 + 130 * MIB), (5, 700), (0, 612),
                                       (511, 1537)])
def test_unaligned_accepts_agree_with_call_by_call(registry, monkeypatch, start, end):
    def accept():
        run = snp_run(registry, [], mapping="2m")
        run.vendor.accept_memory(start, end)
        return dict(run.ctx.counters), [runs(m) for m in run.host.page_maps]

    fast = accept()
    monkeypatch.setattr(bulk, "ENABLED", False)
    assert accept() == fast


# -- the plugin's declarations ------------------------------------------------------

def test_every_cost_entry_is_an_assumption():
    assert Snp.cost_table
    assert all("assumption" in entry.source for entry in Snp.cost_table.values())


def test_declarations():
    assert Snp.host_words.fault == "exit.npf"
    assert not Snp.host_words.keeps_4k_tables
    assert Snp.calls_are == "VMGEXIT(PSC), PVALIDATE"
    statuses = ("ok", "fail_input", "fail_sizemismatch", "fail_noupdate")
    assert Snp.fault_calls == {"snp.psc": ("ok", "error"), "snp.pvalidate": statuses,
                               "snp.rescind": statuses}


def test_unknown_snp_option_is_bad_input(registry):
    text = scenario_yaml([], vendor="snp") + "snp: {prefault: true, colour: red}\n"
    loaded = parse_scenario(text, "<test>", set(registry.vendors))
    with pytest.raises(Exception, match="colour"):
        BackendRun(loaded, registry, "mainline", "snp")


TINY = """\
name: tiny
vendor: snp
device: {region_size: 256MiB, block_size: 2MiB}
guest: {memory_block_size: 128MiB}
vmm: {memory: start-private, mapping_level: 4k}
steps:
  - plug: 4MiB
  - use: 8KiB
  - unplug: 2MiB
"""


def test_trace_names_the_calls(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    result = CliRunner().invoke(app, ["run", str(path), "--backend", "start-shared",
                                      "--trace"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in [
        "  snp_set_memory_private 0x100000000+4MiB",
        "    exit MAP_GPA 0x100000000+4MiB to=private size=2m  [KVM snp_begin_psc "
        "(KVM_HC_MAP_GPA_RANGE exit to QEMU kvm_handle_hc_map_gpa_range)]",
        "  VMGEXIT PSC 0x100000000+4MiB to=private entries=2x2m -> OK  [vmgexit_psc]",
        "    exit NPF 0x100000000+4KiB level=4k  [KVM npf_interception (#VMEXIT(NPF))]",
        "    host rmp_make_private 0x100000000+4KiB level=4k  "
        "[KVM sev_gmem_prepare (rmp_make_private)]",
        "  PVALIDATE 0x100000000+2MiB level=2m -> FAIL_SIZEMISMATCH  [pval_pages]",
        "  PVALIDATE 0x100000000+4KiB level=4k -> OK  [pval_pages]",
        "  snp_set_memory_shared 0x100200000+2MiB",
        "  PVALIDATE (rescind) 0x100200000+2MiB level=2m -> FAIL_SIZEMISMATCH  [pval_pages]",
        "  VMGEXIT PSC 0x100200000+2MiB to=shared entries=1x2m -> OK  [vmgexit_psc]",
    ]:
        assert line in lines

