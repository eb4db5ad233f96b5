"""The Arm CCA realm vendor: counters and RIPAS worked out by hand (docs/cca.md).

Each case names the function whose algorithm gives the numbers. Geometry unless
said otherwise: a 1 GiB device at 4 GiB (so 1 GiB-aligned), 2 MiB device blocks
and subblocks, 128 MiB memory blocks, a start-private VMM that discards only the
shared plane on unplug.
"""

from __future__ import annotations

import pytest
from cocomem_plugins.cca import (
    DESTROYED,
    EMPTY,
    PTE_INVALID,
    PTE_SHARED,
    PTE_VALID,
    RAM,
    Cca,
)
from scenario_builder import make_run

from cocomem.run import GuestCrash
from cocomem.state import FREE, MAPPED_4K, PRIVATE, SHARED
from cocomem.trace import format_event

MIB = 256  # 4 KiB pages per MiB
GIB = 1024 * MIB


def cca_run(registry, steps, backend="mainline", **settings):
    return make_run(registry, steps, backend=backend, vendor="cca", **settings)


def counters(run, *prefixes: str) -> dict[str, int]:
    return {k: v for k, v in run.ctx.counters.items() if k.startswith(prefixes)}


def runs(runmap, start: int = 0, end: int | None = None) -> list:
    return [tuple(r) for r in runmap.runs(start, end)]


def result_of(run):
    return run.run()


def _events(run, action) -> list:
    """The SMCs (``rsi`` events) ``action`` makes."""
    events: list = []
    run.ctx.listeners.append(events.append)
    action()
    run.ctx.listeners.remove(events.append)
    return [e for e in events if e.name == "rsi"]


# -- RIPAS at the start; what an access does (RMM v1.0 A5.3.1) -------------------

def test_hotplugged_memory_starts_empty_and_a_touch_is_an_sea(registry):
    # set_ripas_of_protected_regions sets RAM only over memslots present at
    # activation (cca-hotplug-starts-empty); EMPTY + UNASSIGNED: "SEA to Realm",
    # no REC exit: mainline dies at its first write with no exit at all.
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "4KiB"}])
    result = result_of(run)
    assert result.verdict == "crashed"
    assert [v["kind"] for v in result.violations] == ["access-unaccepted"]
    assert result.crashed_at == 1
    assert counters(run, "cca", "exit", "host") == {}
    assert runs(run.vendor.ripas) == [(0, GIB, EMPTY)]


def test_a_touch_of_ram_exits_once_and_the_host_creates_a_zeroed_granule(registry):
    # RAM + UNASSIGNED: "REC exit due to Data Abort"; KVM gmem_abort ->
    # realm_map_protected at PAGE_SIZE (RMI_DATA_CREATE_UNKNOWN, zeroed by the RMM)
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "4KiB"}], backend="start-shared")
    result = result_of(run)
    assert result.verdict == "ok"
    assert counters(run, "exit.data_abort", "host.data") == {"exit.data_abort": 1,
                                                             "host.data_create.4k": 1}
    assert runs(run.host.private, 0, 2) == [(0, 1, MAPPED_4K), (1, 2, FREE)]


def test_use_of_a_block_costs_one_exit_and_one_granule_per_4k(registry):
    # gmem_abort maps PAGE_SIZE ("FIXME: Should be able to use bigger than
    # PAGE_SIZE mappings"): 128 MiB = 32768 exits and DATA_CREATEs, at 2m too
    for mapping in ("4k", "2m"):
        run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}],
                      backend="start-shared", mapping=mapping)
        result_of(run)
        assert counters(run, "exit.data_abort", "host.data") == {
            "exit.data_abort": 32768, "host.data_create.4k": 32768}


# -- rsi_set_memory_range (arch/arm64/include/asm/rsi.h) ---------------------------

def test_accept_of_128m_is_one_smc_one_exit_one_rtt(registry):
    # rsi_set_memory_range_protected_safe: one RSI_IPA_STATE_SET; the RMM exits
    # (RMI_EXIT_RIPAS_CHANGE), rec_exit_ripas_change exits to the VMM
    # (KVM_EXIT_MEMORY_FAULT), kvm_complete_ripas_change loops ripas_change to
    # top on the next entry: the whole range in one pass. The 128 MiB are
    # 2 MiB-aligned and inside one 1 GiB L2 table: one RMI_RTT_SET_RIPAS.
    run = cca_run(registry, [{"plug": "128MiB"}])
    result_of(run)
    assert run.vendor.accept_memory(0, 128 * MIB) is True
    assert counters(run, "cca", "exit", "host") == {
        "cca.rsi_ipa_state_set.ram.ok": 1,
        "exit.ripas_change": 1,
        "exit.memory_fault": 1,
        "host.rtt_set_ripas": 1,
    }
    assert runs(run.vendor.ripas) == [(0, 128 * MIB, RAM), (128 * MIB, GIB, EMPTY)]
    # RIPAS RAM creates nothing: the granules come at the first touch
    assert runs(run.host.private) == [(0, GIB, FREE)]


def test_a_start_shared_vmm_converts_at_the_ripas_exit(registry):
    # the VMM answers KVM_EXIT_MEMORY_FAULT(private) with kvm_convert_memory
    run = cca_run(registry, [{"plug": "128MiB"}], memory="start-shared")
    result_of(run)
    run.vendor.accept_memory(0, 128 * MIB)
    assert counters(run, "host.convert") == {"host.convert.private": 32768}
    assert runs(run.host.attr) == [(0, 128 * MIB, PRIVATE), (128 * MIB, GIB, SHARED)]


def test_accept_of_2g_is_one_smc_over_two_l2_tables(registry):
    # RMI_RTT_SET_RIPAS changes the entries of one RTT (out_top = min(top,
    # walk_top)): an L2 table covers 1 GiB, so [4 GiB, 6 GiB) takes two calls
    run = cca_run(registry, [], region="4GiB", memory_block="2GiB")
    run.vendor.accept_memory(0, 2 * GIB)
    assert counters(run, "cca", "host.rtt") == {"cca.rsi_ipa_state_set.ram.ok": 1,
                                                "host.rtt_set_ripas": 2}


@pytest.mark.parametrize("start, end, calls", [
    (1, 517, 2),                   # two 2 MiB slots, each covered in part: two L3 tables
    (256, 3 * 512 + 256, 3),       # L3, then slots 1-2 in one L2 table, then L3
    (0, 512, 1),                   # one 2 MiB entry of an L2 table
    (GIB - 512, GIB, 1),           # the last 2 MiB before the device's end
])
def test_rtt_set_ripas_calls_follow_the_tables(registry, start, end, calls):
    run = cca_run(registry, [])
    run.vendor.accept_memory(start, end)
    assert run.ctx.counters["host.rtt_set_ripas"] == calls
    assert runs(run.vendor.ripas, start, end) == [(start, end, RAM)]


def test_granules_holding_data_need_one_call_per_l3_table(registry):
    # data is mapped at 4 KiB, so a 2 MiB holding a granule has an L3 table:
    # setting RAM again over 128 MiB of used memory is 64 RMI calls (and keeps
    # the data: RAM over RAM changes nothing, cca-ram-to-ram-silent)
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}], backend="start-shared")
    result_of(run)
    before = run.ctx.counters["host.rtt_set_ripas"]
    assert run.vendor.set_memory_encrypted(0, 128 * MIB) is True
    assert run.ctx.counters["host.rtt_set_ripas"] - before == 64
    assert runs(run.host.private, 0, 128 * MIB) == [(0, 128 * MIB, MAPPED_4K)]
    assert "double-accept" not in {v.kind for v in run.ctx.violations}


def test_partial_top_and_repeat(registry):
    # an injected partial: KVM stops after its first RMI_RTT_SET_RIPAS (one L2
    # table, up to 5 GiB); rsi_set_memory_range loops from top: a second SMC,
    # exit and VMM exit (which converts nothing more) finish the range
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 1, "status": "partial"}]
    run = cca_run(registry, [], region="4GiB", memory_block="2GiB", faults=faults,
                  memory="start-shared")
    smcs = _events(run, lambda: run.vendor.accept_memory(0, 2 * GIB))
    assert [(e.start, e.info["result"], e.info["top"]) for e in smcs] == [
        (0, "partial", 5 << 30), (GIB, "ok", 6 << 30)]
    assert counters(run, "cca", "exit", "host") == {
        "cca.rsi_ipa_state_set.ram.partial": 1,
        "cca.rsi_ipa_state_set.ram.ok": 1,
        "exit.ripas_change": 2,
        "exit.memory_fault": 2,
        "host.rtt_set_ripas": 2,
        "host.convert.private": 2 * GIB,
    }
    assert runs(run.vendor.ripas) == [(0, 2 * GIB, RAM), (2 * GIB, 4 * GIB, EMPTY)]


def test_no_progress_is_repeated(registry):
    # new_base == base with RSI_ACCEPT: "Call RSI_IPA_STATE_SET again" (RMM A5.4)
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 1, "status": "no_progress", "count": 2}]
    run = cca_run(registry, [], faults=faults)
    assert run.vendor.accept_memory(0, 128 * MIB) is True
    assert counters(run, "cca") == {"cca.rsi_ipa_state_set.ram.partial": 2,
                                    "cca.rsi_ipa_state_set.ram.ok": 1}
    assert run.ctx.counters["host.rtt_set_ripas"] == 1


def test_an_error_midway_keeps_what_was_changed(registry):
    # rsi_set_memory_range returns -EINVAL on an error status; nothing is rolled
    # back (cca-no-rollback)
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 1, "status": "partial"},
              {"call": "cca.rsi_ipa_state_set", "nth": 2, "status": "error_input"}]
    run = cca_run(registry, [], region="4GiB", memory_block="2GiB", faults=faults)
    assert run.vendor.accept_memory(0, 2 * GIB) is False
    assert counters(run, "cca") == {"cca.rsi_ipa_state_set.ram.partial": 1,
                                    "cca.rsi_ipa_state_set.ram.error": 1}
    # the RMM refuses a malformed request itself: no exit for the second call
    assert run.ctx.counters["exit.ripas_change"] == 1
    assert runs(run.vendor.ripas) == [(0, GIB, RAM), (GIB, 4 * GIB, EMPTY)]


# -- __set_memory_enc_dec (arch/arm64/mm/pageattr.c) --------------------------------

def test_a_host_reject_fails_set_memory_encrypted_and_start_shared_breaks(registry):
    # rsi_set_addr_range_state returns -EPERM on RSI_REJECT, rsi_set_memory_range
    # -EINVAL; __set_memory_enc_dec leaves the PTEs invalid and
    # realm_set_memory_encrypted WARNs "pages will be leaked". start-shared's
    # post-plug hook fails: virtio_mem_run_wq marks the device broken.
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 1, "status": "reject"}]
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}], backend="start-shared",
                  faults=faults)
    result = result_of(run)
    assert result.verdict == "degraded"
    assert {v["kind"] for v in result.violations} == {"device-broken", "leak"}
    assert counters(run, "cca", "exit", "host") == {
        "cca.rsi_ipa_state_set.ram.reject": 1,
        "exit.ripas_change": 1,
        "exit.memory_fault": 1,  # the VMM saw the request and refused it
    }
    assert runs(run.vendor.ripas) == [(0, GIB, EMPTY)]
    assert runs(run.vendor.pte) == [(0, 128 * MIB, PTE_INVALID), (128 * MIB, GIB, PTE_VALID)]


def test_the_host_cannot_reject_an_empty_request(registry):
    # RMM A5.4: the REJECT response is reported only when the request was RAM;
    # for EMPTY it is a pass without progress, and the loop goes on
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 2, "status": "reject"}]
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}, {"unplug": "128MiB"}],
                  backend="start-shared", faults=faults)
    result = result_of(run)
    assert result.verdict == "ok"
    assert counters(run, "cca") == {"cca.rsi_ipa_state_set.ram.ok": 1,
                                    "cca.rsi_ipa_state_set.empty.partial": 1,
                                    "cca.rsi_ipa_state_set.empty.ok": 1}
    assert runs(run.vendor.ripas) == [(0, GIB, EMPTY)]


def test_decrypt_then_unplug_destroys_the_data_and_leaves_empty(registry):
    # set_memory_decrypted: the VMM converts to shared first (guest_memfd punched:
    # RMI_DATA_DESTROY of RAM granules leaves them DESTROYED, RMM A5.3.5), then
    # RMI_RTT_SET_RIPAS EMPTY with RSI_CHANGE_DESTROYED: EMPTY, no data left
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}, {"unplug": "128MiB"}],
                  backend="start-shared")
    result = result_of(run)
    assert result.verdict == "ok"
    assert counters(run, "host.data", "host.convert") == {
        "host.data_create.4k": 32768, "host.data_destroy.4k": 32768,
        "host.convert.shared": 32768}
    assert runs(run.vendor.ripas) == [(0, GIB, EMPTY)]
    assert runs(run.vendor.pte) == [(0, 128 * MIB, PTE_SHARED), (128 * MIB, GIB, PTE_VALID)]


def test_a_failed_decrypt_gives_back_pages_whose_ptes_are_invalid(registry):
    # the unplug's set_memory_decrypted fails at its first SMC: nothing changed,
    # but __set_memory_enc_dec broke the linear map first; the driver gives the
    # pages back (virtio_mem_fake_online) and the next write faults in the kernel
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 2, "status": "error_state"}]
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}, {"unplug": "128MiB"},
                             {"use": "all"}], backend="start-shared", faults=faults)
    result = result_of(run)
    assert result.verdict == "crashed"
    assert [v["kind"] for v in result.violations] == ["device-broken", "linear-map-invalid"]
    assert result.crashed_at == 3
    assert runs(run.vendor.ripas) == [(0, 128 * MIB, RAM), (128 * MIB, GIB, EMPTY)]


def test_a_new_kernel_maps_memory_afresh(registry):
    # the same failure, then kexec: the new kernel's linear map is valid again
    # (cca-linear-map); its UNPLUG_ALL converts nothing, the re-plug's
    # set_memory_encrypted sets RAM over RAM and keeps the granules, so the
    # write that killed the old kernel works in the new one
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 2, "status": "error_state"}]
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}, {"unplug": "128MiB"},
                             "kexec", {"plug": "128MiB"}, {"use": "all"}],
                  backend="start-shared", faults=faults)
    result = result_of(run)
    assert result.verdict == "degraded"
    assert {v["kind"] for v in result.violations} == {"device-broken"}
    assert runs(run.vendor.pte) == [(0, GIB, PTE_VALID)]
    assert counters(run, "cca") == {"cca.rsi_ipa_state_set.ram.ok": 2,
                                    "cca.rsi_ipa_state_set.empty.error": 1}
    assert run.ctx.counters["host.data_create.4k"] == 32768


# -- DESTROYED ------------------------------------------------------------------

def _destroyed_run(registry):
    # start-shared plugs 128 MiB and writes 64 MiB; the VMM punches the block's
    # guest_memfd without a request from the realm: RMI_DATA_DESTROY of a RAM
    # granule leaves it DESTROYED (RMM A5.3.5); the unwritten half has no DATA
    # granule and stays RAM
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "64MiB"}], backend="start-shared")
    result_of(run)
    run.host.remove_private(0, 128 * MIB)
    return run


def test_punching_ram_granules_leaves_them_destroyed(registry):
    run = _destroyed_run(registry)
    assert runs(run.vendor.ripas) == [(0, 64 * MIB, DESTROYED), (64 * MIB, 128 * MIB, RAM),
                                      (128 * MIB, GIB, EMPTY)]
    assert run.ctx.counters["host.data_destroy.4k"] == 16384


def test_kexec_on_a_vmm_that_punches_private_memory_destroys_ram_granules(registry):
    # start-shared converts nothing before UNPLUG_ALL (unplug-all-untouched), so
    # the VMM's discard of private memory meets RAM granules; a host REJECT of
    # the re-plug's RAM request keeps the result in sight
    faults = [{"call": "cca.rsi_ipa_state_set", "nth": 2, "status": "reject"}]
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "64MiB"}, "kexec"],
                  backend="start-shared", discards=("shared", "private"), faults=faults)
    result_of(run)
    assert runs(run.vendor.ripas) == [(0, 64 * MIB, DESTROYED), (64 * MIB, 128 * MIB, RAM),
                                      (128 * MIB, GIB, EMPTY)]
    assert run.ctx.counters["host.data_destroy.4k"] == 16384


def test_set_memory_encrypted_may_change_destroyed(registry):
    # rsi_set_memory_range_protected passes RSI_CHANGE_DESTROYED: the re-plug
    # makes the range RAM again, and its granules are created afresh at use
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "64MiB"}, "kexec", {"use": "all"}],
                  backend="start-shared", discards=("shared", "private"))
    result = result_of(run)
    assert result.verdict == "ok"
    assert runs(run.vendor.ripas) == [(0, 128 * MIB, RAM), (128 * MIB, GIB, EMPTY)]
    assert run.ctx.counters["host.data_create.4k"] == 16384 + 32768


def test_accept_must_not_change_destroyed_and_the_host_loops(registry):
    # rsi_set_memory_range_protected_safe (RSI_NO_CHANGE_DESTROYED): the RMM stops
    # at the first DESTROYED granule (A5.4 IGXDDX) and ripas_change retries
    # there without end (cca-destroyed-no-change)
    run = _destroyed_run(registry)
    with pytest.raises(GuestCrash) as crash:
        run.vendor.accept_memory(0, 128 * MIB)
    assert crash.value.kind == "ripas-change-stuck"
    assert crash.value.start == 0  # the range's first granule: no progress at all
    run = _destroyed_run(registry)
    run.vendor.ripas.set(0, 32 * MIB, EMPTY)
    with pytest.raises(GuestCrash) as crash:
        run.vendor.accept_memory(0, 128 * MIB)
    assert crash.value.start == 32 * MIB
    assert runs(run.vendor.ripas, 0, 64 * MIB) == [(0, 32 * MIB, RAM),
                                                   (32 * MIB, 64 * MIB, DESTROYED)]


def test_a_touch_of_destroyed_exits_once_and_never_completes(registry):
    # RMM A5.3.1: DESTROYED is a REC exit (data abort) whatever the HIPAS, and
    # KVM cannot change it (cca-destroyed-access)
    run = _destroyed_run(registry)
    exits = run.ctx.counters["exit.data_abort"]
    run.vendor.touch(0, 1)
    assert run.ctx.counters["exit.data_abort"] == exits + 1
    assert run.vendor.inaccessible(0, 128 * MIB) == [(0, 64 * MIB)]
    assert run.host.private[0] == FREE


# -- release_memory: rsi_set_memory_range_shared ------------------------------------

def test_release_sets_empty_after_the_vmm_destroyed_the_data(registry):
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}], backend="start-shared")
    result_of(run)
    assert run.vendor.release_memory(0, 64 * MIB) is True
    assert counters(run, "cca.rsi_ipa_state_set.empty", "host.data_destroy") == {
        "cca.rsi_ipa_state_set.empty.ok": 1, "host.data_destroy.4k": 16384}
    assert runs(run.vendor.ripas) == [(0, 64 * MIB, EMPTY), (64 * MIB, 128 * MIB, RAM),
                                      (128 * MIB, GIB, EMPTY)]


# -- the designs on a realm ------------------------------------------------------------

def test_no_unaccepted_memory_table_on_arm64(registry):
    # CONFIG_UNACCEPTED_MEMORY is x86-only: RFC v2's core accept and unaccept do
    # nothing, so plugged-bitmap makes no RSI call and dies at the first touch
    run = cca_run(registry, [{"plug": "128MiB"}, {"unplug": "64MiB"}, {"use": "all"}],
                  backend="plugged-bitmap")
    result = result_of(run)
    assert run.unaccepted.covers is False
    assert result.verdict == "crashed"
    assert [v["kind"] for v in result.violations] == ["access-unaccepted"]
    assert counters(run, "cca") == {}


@pytest.mark.parametrize("backend", ["notifier", "callbacks"])
def test_series_that_hook_tdx_register_nothing_on_a_realm(registry, backend):
    run = cca_run(registry, [{"plug": "128MiB"}, {"use": "all"}], backend=backend)
    result = result_of(run)
    assert result.verdict == "crashed"
    assert "registers nothing on cca" in result.why
    assert counters(run, "cca") == {}


def test_trace_names_the_smc(registry):
    run = cca_run(registry, [{"plug": "128MiB"}])
    events = []
    run.ctx.listeners.append(events.append)
    run.vendor.accept_memory(0, 2 * MIB)
    lines = [format_event(e, run.ctx.region_addr, Cca) for e in events]
    assert ("  RSI_IPA_STATE_SET 0x100000000+2MiB RIPAS=RAM RSI_NO_CHANGE_DESTROYED -> "
            "top=0x100200000 ACCEPT  [rsi_set_addr_range_state]") in lines



def test_declarations():
    # every cost is an assumption (no published figure); every counter has a class
    from cocomem.engine import counter_classes
    from cocomem.results import CALL, EXIT, HOST, counter_class

    assert all(entry.source.startswith("assumption") for entry in Cca.cost_table.values())
    classes = counter_classes(Cca)
    assert {name: counter_class(name, classes) for name in (
        "cca.rsi_ipa_state_set.ram.reject", "exit.ripas_change", "exit.memory_fault",
        "exit.data_abort", "host.rtt_set_ripas", "host.data_create.4k",
        "host.data_destroy.4k")} == {
        "cca.rsi_ipa_state_set.ram.reject": CALL, "exit.ripas_change": EXIT,
        "exit.memory_fault": EXIT, "exit.data_abort": EXIT, "host.rtt_set_ripas": HOST,
        "host.data_create.4k": HOST, "host.data_destroy.4k": HOST}
    assert Cca.unaccepted_memory is False
    assert Cca.fault_calls == {"cca.rsi_ipa_state_set": ("partial", "no_progress", "reject",
                                                     "error_input", "error_state")}
