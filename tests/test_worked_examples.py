"""Counters and page states worked out by hand from the kernel's algorithms.

Each case names the function whose algorithm gives the numbers. Geometry
unless said otherwise: a 1 GiB device at 4 GiB (1 GiB-aligned), 2 MiB device
blocks and subblocks, 128 MiB memory blocks (64 subblocks), TDX, a
start-private VMM that discards only the shared plane on unplug.
"""

from __future__ import annotations

from collections import Counter

import pytest
from scenario_builder import make_run

from cocomem.host import ACK, ERROR, NACK
from cocomem.state import (
    ABSENT,
    BUDDY,
    FAKE_OFFLINE,
    FREE,
    MAPPED_2M,
    MAPPED_4K,
    MB_MOVABLE,
    MB_MOVABLE_PARTIAL,
    MB_UNUSED,
    PENDING_4K,
    PRIVATE,
    SHARED,
)

MIB = 256  # 4 KiB pages per MiB
GIB = 1024 * MIB


def counters(run, prefix: str = "") -> dict[str, int]:
    return {k: v for k, v in run.ctx.counters.items() if k.startswith(prefix)}


def runs(runmap, start: int = 0, end: int | None = None) -> list:
    return [tuple(r) for r in runmap.runs(start, end)]


# -- tdx_accept_memory / try_accept_one (arch/x86/coco/tdx/tdx-shared.c) -----

def test_accept_2m_aligned_range_at_4k_mapping(registry):
    # try_accept_one(2M) on a GFN KVM has not mapped: EPT violation, KVM AUGs a
    # 4K page at the base (it maps 4K), the re-executed TDCALL sees a 4K leaf
    # under a 2M request: TDX_PAGE_SIZE_MISMATCH. tdx_accept_memory falls back
    # to 4K: 512 accepts, 511 of which fault first (the base is already AUGed).
    run = make_run(registry, [{"plug": "128MiB"}])
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 64,
                                       "tdcall.accept.4k.ok": 64 * 512}
    assert counters(run, "exit") == {"exit.ept_violation": 64 * 512}
    assert counters(run, "host") == {"host.aug.4k": 64 * 512}
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.ack": 1}
    assert runs(run.host.private) == [(0, 128 * MIB, MAPPED_4K), (128 * MIB, GIB, FREE)]


def test_accept_2m_aligned_range_at_2m_mapping(registry):
    # KVM maps 2M where the whole 2 MiB is private: one fault, one 2M AUG, one ACCEPT.
    run = make_run(registry, [{"plug": "128MiB"}], mapping="2m")
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.ok": 64}
    assert counters(run, "exit") == {"exit.ept_violation": 64}
    assert counters(run, "host") == {"host.aug.2m": 64}
    assert runs(run.host.private) == [(0, 128 * MIB, MAPPED_2M), (128 * MIB, GIB, FREE)]


def test_accept_1g_aligned_range_tries_1g_first(registry):
    # With 1 GiB memory blocks the post-plug range is one 1 GiB-aligned GiB:
    # try_accept_one(1G) returns TDX_OPERAND_INVALID (KVM never maps 1G for a
    # TD) without an exit; the 2M walk follows.
    run = make_run(registry, [{"plug": "1GiB"}], region="2GiB", memory_block="1GiB",
                   mapping="2m")
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.1g.operand_invalid": 1,
                                       "tdcall.accept.2m.ok": 512}
    assert counters(run, "exit") == {"exit.ept_violation": 512}


def test_accept_two_gib_tries_1g_at_each_gib(registry):
    run = make_run(registry, [{"plug": "2GiB"}], region="2GiB", memory_block="2GiB",
                   mapping="2m")
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.1g.operand_invalid": 2,
                                       "tdcall.accept.2m.ok": 1024}


def test_accept_less_than_1g_left_makes_no_1g_attempt(registry):
    # 1 GiB memory blocks, 768 MiB plugged: 1G-aligned start, < 1 GiB left.
    run = make_run(registry, [{"plug": "768MiB"}], region="2GiB", memory_block="1GiB",
                   mapping="2m")
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.ok": 384}


def test_a_memory_block_beyond_the_usable_region_is_not_added(registry):
    # virtio_mem_refresh_config: last_usable_mb_id is the last memory block
    # that ends inside the usable region (QEMU: requested + 256 MiB). With 1 GiB
    # memory blocks, 512 MiB requested gives 768 MiB usable: no block fits,
    # virtio_mem_sbm_plug_request returns -ENOSPC and nothing is plugged.
    run = make_run(registry, [{"plug": "512MiB"}], region="2GiB", memory_block="1GiB")
    run.run()
    assert run.driver.last_usable_mb == -1
    assert dict(run.ctx.counters) == {}
    assert runs(run.host.plugged) == [(0, 2 * GIB, False)]


def test_accept_unaligned_range_walks_4k_head_and_tail(registry):
    # tdx_accept_memory over pages [1, 1025): 4K until 2 MiB-aligned (511 calls),
    # the 2 MiB-aligned chunk [512, 1024) tries 2M first (size mismatch), then
    # 4K again for page 1024.
    run = make_run(registry, [])
    assert run.vendor.accept_memory(1, 1025)
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 1,
                                       "tdcall.accept.4k.ok": 511 + 512 + 1}
    assert counters(run, "exit") == {"exit.ept_violation": 1024}
    assert runs(run.host.private, 0, 2048) == [(0, 1, FREE), (1, 1025, MAPPED_4K),
                                               (1025, 2048, FREE)]


def test_accept_stops_at_the_first_failure(registry):
    # try_accept_one fails -> tdx_accept_memory returns false at once: the
    # callbacks design marks the device broken and leaks the plugged memory.
    faults = [{"call": "tdcall.accept", "nth": 3, "status": "operand_busy"}]
    run = make_run(registry, [{"plug": "128MiB"}], faults=faults)
    result = run.run()
    # call 1: 2M size_mismatch, call 2: 4K ok, call 3: 4K operand_busy, stop.
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 1,
                                       "tdcall.accept.4k.ok": 1,
                                       "tdcall.accept.4k.operand_busy": 1}
    assert run.driver.broken
    assert {v["kind"] for v in result.violations} == {"device-broken", "leak"}


def test_already_accepted_2m_leaf(registry):
    # ACCEPT of a MAPPED 2M leaf: TDX_PAGE_ALREADY_ACCEPTED, no exit.
    run = make_run(registry, [], mapping="2m")
    assert run.vendor.accept_memory(0, 512)
    before = Counter(run.ctx.counters)
    assert not run.vendor.accept_memory(0, 512)
    # try_accept_one fails at 2M, so tdx_accept_memory tries 4K at the same
    # address (inside a MAPPED 2M leaf: ALREADY_ACCEPTED too), then gives up.
    assert run.ctx.counters - before == Counter({"tdcall.accept.2m.already_accepted": 1,
                                                 "tdcall.accept.4k.already_accepted": 1})


def test_notifier_accepts_the_whole_memory_block(registry):
    # The notifier calls accept_memory on the memory block at MEM_GOING_ONLINE:
    # 2 MiB plugged, 128 MiB accepted, 126 MiB of it outside plugged_size.
    run = make_run(registry, [{"plug": "2MiB"}], backend="notifier")
    result = run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 64,
                                       "tdcall.accept.4k.ok": 64 * 512}
    assert counters(run, "host") == {"host.aug.4k": 64 * 512}
    assert result.host_bytes["peak"] == 128 << 20
    unbacked = [v for v in result.violations if v["kind"] == "accept-unbacked"]
    assert unbacked == [{"kind": "accept-unbacked", "step": 0, "start": (4 << 30) + (2 << 20),
                         "size": 126 << 20, "by": "design"}]


def test_notifier_reaccept_after_noop_unplug(registry):
    # Upstream QEMU keeps private pages on unplug. Re-plug: the 2M attempt sees
    # 4K leaves (size mismatch), each 4K ACCEPT returns ALREADY_ACCEPTED, which
    # the series' first patch treats as success.
    steps = [{"plug": "128MiB"}, {"use": "all"}, {"unplug": "128MiB"}, {"plug": "128MiB"}]
    run = make_run(registry, steps, backend="notifier")
    result = run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 128,
                                       "tdcall.accept.4k.ok": 32768,
                                       "tdcall.accept.4k.already_accepted": 32768}
    kinds = {(v["kind"], v["step"]) for v in result.violations}
    assert ("stale-assumed-zero", 3) in kinds and ("double-accept", 3) in kinds


# -- TDG.MEM.PAGE.RELEASE (the seed RFC's tdx_release_memory) ----------------

def test_release_before_unplug_at_4k_and_2m(registry):
    steps = [{"plug": "128MiB"}, {"unplug": "128MiB"}]
    run4k = make_run(registry, steps)
    run4k.run()
    assert counters(run4k, "tdcall.release") == {"tdcall.release.2m.size_mismatch": 64,
                                                 "tdcall.release.4k.ok": 32768}
    run2m = make_run(registry, steps, mapping="2m")
    run2m.run()
    assert counters(run2m, "tdcall.release") == {"tdcall.release.2m.ok": 64}
    # released pages are PENDING again: the host still holds them (no-op unplug)
    assert runs(run4k.host.private, 0, 128 * MIB) == [(0, 128 * MIB, PENDING_4K)]


def test_release_without_page_release_issues_no_tdcall_and_unplugs(registry):
    # RFC v1 patch 5, tdx_release_memory: "if (!tdx_page_release_supported)
    # return true;" - no TDCALL, the UNPLUG is sent and ACKed; the unplug
    # of a whole online block (virtio_mem_sbm_unplug_any_sb_online) is one
    # request, and the block is removed.
    steps = [{"plug": "128MiB"}, {"unplug": "128MiB"}]
    run = make_run(registry, steps, tdx={"page_release": False})
    result = run.run()
    assert counters(run, "tdcall.release") == {}
    assert run.ctx.counters["virtio_mem.unplug.ack"] == 1
    # upstream QEMU keeps the private pages: still MAPPED, the VMM's finding
    assert runs(run.host.private, 0, 128 * MIB) == [(0, 128 * MIB, MAPPED_4K)]
    assert result.verdict == "ok"
    assert [v["kind"] for v in result.violations] == ["private-residue"]
    assert runs(run.driver.page, 0, 128 * MIB) == [(0, 128 * MIB, ABSENT)]


def test_failed_release_re_accepts_what_it_released(registry):
    # tdx_release_memory: the 2M RELEASE over 4K leaves fails (size
    # mismatch), 4K RELEASEs succeed until the injected failure at call 11
    # (the 10th 4K); "if (!tdx_accept_memory(start, released)) panic" re-
    # accepts the 9 released pages (PENDING -> MAPPED, no exit), and the
    # callback fails: -EINVAL, device broken, no UNPLUG sent.
    faults = [{"call": "tdcall.release", "nth": 11, "status": "operand_busy"}]
    run = make_run(registry, [{"plug": "2MiB"}, {"unplug": "2MiB"}], faults=faults)
    result = run.run()
    assert counters(run, "tdcall.release") == {"tdcall.release.2m.size_mismatch": 1,
                                               "tdcall.release.4k.ok": 9,
                                               "tdcall.release.4k.operand_busy": 1}
    assert run.ctx.counters["tdcall.accept.4k.ok"] == 512 + 9
    assert run.ctx.counters["exit.ept_violation"] == 512
    assert "virtio_mem.unplug.ack" not in run.ctx.counters
    assert runs(run.host.private, 0, 2 * MIB) == [(0, 2 * MIB, MAPPED_4K)]
    assert [v["kind"] for v in result.violations] == ["device-broken"]


def test_failed_re_accept_after_a_failed_release_panics(registry):
    # The same, with the rollback's first ACCEPT failing too: tdx_release_memory
    # panics ("Failed to re-accept memory").
    faults = [{"call": "tdcall.release", "nth": 11, "status": "operand_busy"},
              {"call": "tdcall.accept", "nth": 514, "status": "operand_busy"}]
    run = make_run(registry, [{"plug": "2MiB"}, {"unplug": "2MiB"}], faults=faults)
    result = run.run()
    assert result.verdict == "crashed"
    assert [v["kind"] for v in result.violations] == ["accept-panic"]


def test_unplug_all_is_not_wrapped_by_rfc_v1(registry):
    # RFC v1 patch 3 wraps virtio_mem_send_plug_request and
    # virtio_mem_send_unplug_request only: after kexec the UNPLUG_ALL
    # releases nothing, and on upstream QEMU the re-plug's accept meets
    # ALREADY_ACCEPTED: 1 size mismatch (2M over 4K leaves), 1 already
    # accepted, -EINVAL, device broken, the 128 MiB plugged memory leaked.
    steps = [{"plug": "128MiB"}, "kexec"]
    run = make_run(registry, steps)
    result = run.run()
    assert counters(run, "tdcall.release") == {}
    assert run.ctx.counters["virtio_mem.unplug_all.ack"] == 1
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 64 + 1,
                                       "tdcall.accept.4k.ok": 32768,
                                       "tdcall.accept.4k.already_accepted": 1}
    assert {v["kind"] for v in result.violations} == {"double-accept", "device-broken", "leak"}


def test_notifier_failure_cancels_the_online_without_panic(registry):
    # Notifier patch 2/2: "if (!tdx_accept_memory(start, end)) { pr_err(...);
    # return NOTIFY_BAD; }": MEM_CANCEL_ONLINE, the block stays offline,
    # the plugged memory is lost to the guest (leak), nothing panics.
    faults = [{"call": "tdcall.accept", "nth": 1, "status": "operand_busy", "count": 2}]
    run = make_run(registry, [{"plug": "128MiB"}], backend="notifier", faults=faults)
    result = run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.operand_busy": 1,
                                       "tdcall.accept.4k.operand_busy": 1}
    assert run.driver.mb_state[0] == "offline"
    assert runs(run.driver.page, 0, 128 * MIB) == [(0, 128 * MIB, "offline")]
    assert result.verdict == "degraded"
    assert [(v["kind"], v["size"]) for v in result.violations] == [("leak", 128 << 20)]


# -- KVM keeps 4K S-EPT page tables (tdx_sept_free_private_spt) -------------

def test_a_2m_range_once_mapped_at_4k_is_accepted_at_4k_again(registry):
    # At a 4K mapping the first accept of a 2 MiB range makes KVM build a 4K
    # page table; a VMM that punches both planes removes the leaves but not
    # the table. Switched to 2M mappings, the re-plug's 2M ACCEPT meets a
    # non-free non-leaf entry: SIZE_MISMATCH with no exit (TDX module,
    # tdg_mem_page_accept.c case 3), so the range is accepted at 4K again.
    steps = [{"plug": "2MiB"}, {"unplug": "2MiB"},
             {"vmm": {"mapping_level": "2m"}}, {"plug": "2MiB"}]
    run = make_run(registry, steps, discards=("shared", "private"))
    run.run()
    assert counters(run, "tdcall.accept") == {"tdcall.accept.2m.size_mismatch": 2,
                                              "tdcall.accept.4k.ok": 1024}
    assert run.ctx.counters["exit.ept_violation"] == 1024
    assert counters(run, "host.aug") == {"host.aug.4k": 1024}
    fresh = make_run(registry, [{"plug": "2MiB"}], mapping="2m")
    fresh.run()
    assert counters(fresh, "tdcall.accept") == {"tdcall.accept.2m.ok": 1}


def test_partial_removal_of_a_2m_leaf_counts_a_demote(registry):
    # A 2M leaf whose first 4K the guest converts to shared: KVM splits the
    # leaf (BLOCK + TRACK + DEMOTE) before it removes one 4K page.
    run = make_run(registry, [{"plug": "4MiB"}], mapping="2m", backend="start-shared",
                   memory="start-private")
    run.run()
    run.host.convert(0, 1, SHARED)
    assert run.ctx.counters["host.demote.2m"] == 1
    assert run.ctx.counters["host.remove.4k"] == 1
    assert runs(run.host.private, 0, 2 * MIB) == [(0, 1, FREE), (1, 2 * MIB, MAPPED_4K)]
    assert run.host.pt_4k[0] and not run.host.pt_4k[2 * MIB]


# -- MapGPA (tdx_map_gpa, arch/x86/coco/tdx/tdx.c) ---------------------------

def test_map_gpa_exits_once_per_2m_chunk(registry):
    # set_memory_encrypted on 128 MiB: one MapGPA; KVM exits to the VMM per
    # 2 MiB chunk (64), which converts 32768 pages; then tdx_accept_memory.
    run = make_run(registry, [{"plug": "128MiB"}], backend="start-shared",
                   memory="start-shared")
    run.run()
    assert counters(run, "tdvmcall") == {"tdvmcall.map_gpa.ok": 1}
    assert run.ctx.counters["exit.map_gpa"] == 64
    assert run.ctx.counters["host.convert.private"] == 32768
    assert run.ctx.counters["tdcall.accept.4k.ok"] == 32768
    assert runs(run.host.attr, 0, 128 * MIB) == [(0, 128 * MIB, PRIVATE)]


def test_map_gpa_retry_resumes_where_the_host_stopped(registry):
    # kvm-x86 3e2dec1ede0a: QEMU answers the first chunk's exit with EAGAIN,
    # KVM returns TDVMCALL_STATUS_RETRY with R11 at that chunk; tdx_map_gpa
    # reissues from R11 (no progress: one retry consumed); both calls count,
    # and the retried chunk exits twice: 1 + 64 exits.
    faults = [{"call": "tdvmcall.map_gpa", "nth": 1, "status": "retry"}]
    run = make_run(registry, [{"plug": "128MiB"}], backend="start-shared",
                   memory="start-shared", faults=faults)
    run.run()
    assert counters(run, "tdvmcall") == {"tdvmcall.map_gpa.retry": 1, "tdvmcall.map_gpa.ok": 1}
    assert run.ctx.counters["exit.map_gpa"] == 1 + 64
    assert run.ctx.counters["host.convert.private"] == 32768


def test_map_gpa_gives_up_after_three_retries_without_progress(registry):
    # tdx_map_gpa: max_retries_per_page = 3 RETRYs with R11 == start, then
    # false; set_memory_encrypted fails, the post-plug hook fails, broken.
    faults = [{"call": "tdvmcall.map_gpa", "nth": 1, "status": "retry", "count": 3}]
    run = make_run(registry, [{"plug": "2MiB"}], backend="start-shared",
                   memory="start-shared", faults=faults)
    result = run.run()
    assert counters(run, "tdvmcall") == {"tdvmcall.map_gpa.retry": 3}
    assert run.ctx.counters["exit.map_gpa"] == 3
    assert run.ctx.counters.get("host.convert.private", 0) == 0
    assert run.driver.broken and result.verdict == "degraded"


def test_map_gpa_align_error_takes_no_exit(registry):
    # KVM checks the GPA's alignment before any exit to userspace.
    faults = [{"call": "tdvmcall.map_gpa", "nth": 1, "status": "align_error"}]
    run = make_run(registry, [{"plug": "2MiB"}], backend="start-shared",
                   memory="start-shared", faults=faults)
    run.run()
    assert counters(run, "tdvmcall") == {"tdvmcall.map_gpa.error": 1}
    assert "exit.map_gpa" not in run.ctx.counters


def test_implicit_conversion_costs_a_vmm_exit_per_4k_page(registry):
    # A start-private guest (callbacks) on a start-shared VMM: each first
    # private touch of a shared GFN exits to the VMM (KVM_EXIT_MEMORY_FAULT),
    # which converts that page; the re-executed TDCALL faults again and KVM
    # AUGs it. Per 4 KiB page: 2 EPT violations, 1 memory fault, 1 AUG.
    run = make_run(registry, [{"plug": "2MiB"}], memory="start-shared")
    result = run.run()
    assert result.verdict == "ok"
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 1,
                                       "tdcall.accept.4k.ok": 512}
    assert counters(run, "exit") == {"exit.ept_violation": 1024, "exit.memory_fault": 512}
    assert counters(run, "host") == {"host.aug.4k": 512, "host.convert.private": 512}


# -- virtio-mem driver, subblock mode (drivers/virtio/virtio_mem.c) ----------

def test_plug_fills_the_partial_block_before_adding_one(registry):
    # virtio_mem_sbm_plug_request: MOVABLE_PARTIAL blocks first
    # (virtio_mem_sbm_plug_any_sb: one request for the run of unplugged
    # subblocks, fake-onlined), then a new block (virtio_mem_sbm_plug_and_add_mb).
    run = make_run(registry, [{"plug": "64MiB"}, {"plug": "128MiB"}])
    run.run()
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.ack": 3}
    assert runs(run.host.plugged) == [(0, 192 * MIB, True), (192 * MIB, GIB, False)]
    assert runs(run.driver.mb_state, 0, 2) == [(0, 1, MB_MOVABLE), (1, 2, MB_MOVABLE_PARTIAL)]
    assert runs(run.driver.page, 0, 256 * MIB) == [(0, 192 * MIB, BUDDY),
                                                   (192 * MIB, 256 * MIB, FAKE_OFFLINE)]


def test_unplug_goes_in_reverse_one_subblock_at_a_time(registry):
    # virtio_mem_sbm_unplug_request visits online blocks last-first;
    # virtio_mem_sbm_unplug_any_sb_online unplugs a whole block only when asked
    # for all of it, else single subblocks from the top down: 32 requests.
    run = make_run(registry, [{"plug": "256MiB"}, {"unplug": "64MiB"}])
    run.run()
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.ack": 2,
                                           "virtio_mem.unplug.ack": 32}
    assert runs(run.host.plugged) == [(0, 192 * MIB, True), (192 * MIB, GIB, False)]
    assert run.ctx.counters["tdcall.release.2m.size_mismatch"] == 32


def test_unplug_of_a_whole_block_removes_it(registry):
    run = make_run(registry, [{"plug": "256MiB"}, {"unplug": "128MiB"}])
    run.run()
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.ack": 2,
                                           "virtio_mem.unplug.ack": 1}
    assert runs(run.driver.mb_state, 0, 2) == [(0, 1, MB_MOVABLE), (1, 2, MB_UNUSED)]
    assert runs(run.driver.page, 128 * MIB, 256 * MIB) == [(128 * MIB, 256 * MIB, ABSENT)]


def test_replug_reuses_the_unused_block(registry):
    # virtio_mem_sbm_plug_request: UNUSED blocks before next_mb_id.
    steps = [{"plug": "256MiB"}, {"unplug": "128MiB"}, {"plug": "128MiB"}]
    run = make_run(registry, steps)
    run.run()
    assert run.driver.next_mb == 2
    assert runs(run.host.plugged) == [(0, 256 * MIB, True), (256 * MIB, GIB, False)]


def test_plug_nack_is_retried_at_once(registry):
    # virtio_mem_send_plug_request: NACK -> -EAGAIN; virtio_mem_run_wq retries
    # immediately ("goto retry").
    faults = [{"call": "virtio_mem.plug", "nth": 1, "status": "nack"}]
    run = make_run(registry, [{"plug": "128MiB"}], faults=faults)
    result = run.run()
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.nack": 1, "virtio_mem.plug.ack": 1}
    assert result.verdict == "ok"


def test_plug_error_marks_the_device_broken(registry):
    # ERROR -> -EINVAL: "unknown error, marking device broken".
    faults = [{"call": "virtio_mem.plug", "nth": 1, "status": "error"}]
    run = make_run(registry, [{"plug": "128MiB"}], faults=faults)
    result = run.run()
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.error": 1}
    assert run.driver.broken
    assert [v["kind"] for v in result.violations] == ["device-broken"]


# -- QEMU's request checks (hw/virtio/virtio-mem.c) --------------------------

def test_qemu_nacks_a_plug_beyond_the_requested_size(registry):
    # virtio_mem_state_change_request: plugged_size + size > requested_size -> NACK
    run = make_run(registry, [])
    run.host.set_requested(2 * MIB)
    assert run.host.request("plug", 0, 4 * MIB) == NACK
    assert run.host.request("plug", 0, 2 * MIB) == ACK
    assert run.host.request("plug", 2 * MIB, 4 * MIB) == NACK


def test_qemu_errors_on_an_already_plugged_block(registry):
    # virtio_mem_state_change_request: !virtio_mem_is_range_unplugged -> ERROR;
    # unplugging what is not plugged is an ERROR too.
    run = make_run(registry, [])
    run.host.set_requested(8 * MIB)
    assert run.host.request("plug", 0, 2 * MIB) == ACK
    assert run.host.request("plug", 0, 2 * MIB) == ERROR
    assert run.host.request("unplug", 2 * MIB, 4 * MIB) == ERROR
    assert run.host.request("plug", 1, 2 * MIB) == ERROR  # not block-aligned
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.ack": 1,
                                           "virtio_mem.plug.error": 2,
                                           "virtio_mem.unplug.error": 1}


def test_unplug_discards_the_planes_the_vmm_is_set_to(registry):
    # start-shared: set_memory_decrypted converts to shared (KVM punches the
    # private pages), then the unplug discards the shared plane.
    steps = [{"plug": "128MiB"}, {"use": "all"}, {"unplug": "128MiB"}]
    run = make_run(registry, steps, backend="start-shared", memory="start-shared")
    result = run.run()
    assert result.verdict == "ok"
    assert run.ctx.counters["host.remove.4k"] == 32768
    assert runs(run.host.attr, 0, 128 * MIB) == [(0, 128 * MIB, SHARED)]
    assert result.host_bytes == {"peak": 128 << 20, "end": 0}


@pytest.mark.parametrize("backend", ["notifier", "start-shared", "callbacks"])
def test_kexec_sends_unplug_all_and_replugs(registry, backend):
    # virtio_mem_probe in the new kernel: plugged memory found ->
    # unplug_all_required; the wq sends UNPLUG_ALL, then plugs the requested size.
    run = make_run(registry, [{"plug": "128MiB"}, "kexec"], backend=backend,
                   memory="start-shared" if backend == "start-shared" else "start-private")
    run.run()
    assert run.ctx.counters["virtio_mem.unplug_all.ack"] == 1
    assert run.ctx.counters["virtio_mem.plug.ack"] == 2


def test_usable_region_only_grows_while_the_guest_runs(registry):
    # virtio_mem_resize_usable_region(..., can_shrink=false) on a smaller
    # requested size: the usable region stays, so the guest can still unplug
    # blocks above the new requested size + 256 MiB; UNPLUG_ALL shrinks it.
    steps = [{"plug": "512MiB"}, {"unplug": "512MiB"}]
    run = make_run(registry, steps)
    run.run()
    assert run.host.usable_pages == 768 * MIB
    assert counters(run, "virtio_mem") == {"virtio_mem.plug.ack": 4,
                                           "virtio_mem.unplug.ack": 4}
    assert run.host.unplug_all() == ACK
    assert run.host.usable_pages == 0


def test_kdump_asks_state_once_per_device_block_of_added_memory(registry):
    # The capture kernel's vmcore read (virtio_mem_vmcore_pfn_is_ram) asks
    # STATE per device block of the old kernel's added memory: one 128 MiB
    # memory block = 64 blocks of 2 MiB, however its pages are used.
    steps = [{"plug": "128MiB"}, {"use": "100KiB"}, "kdump"]
    run = make_run(registry, steps)
    run.run()
    assert run.ctx.counters["virtio_mem.state.ack"] == 64
    assert run.ctx.counters["virtio_mem.plug.ack"] == 2  # before, and after the reset


def test_an_injected_status_only_changes_its_own_chunk(registry):
    # 2M mapping, plug 8 MiB: the first 2M ACCEPT is made to fail
    # (size_mismatch), so tdx_accept_memory accepts that chunk at 4K (KVM AUGs
    # 4K pages for 4K accesses); the three chunks after it go the 2M way.
    # (The differential test found the engine repeating the faulted chunk.)
    faults = [{"call": "tdcall.accept", "nth": 1, "status": "size_mismatch"}]
    run = make_run(registry, [{"plug": "8MiB"}], mapping="2m", faults=faults)
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 1,
                                       "tdcall.accept.4k.ok": 512,
                                       "tdcall.accept.2m.ok": 3}
    assert counters(run, "host") == {"host.aug.4k": 512, "host.aug.2m": 3}
    assert counters(run, "exit") == {"exit.ept_violation": 512 + 3}


# -- RFC v2: the plugged bitmap and lazy acceptance --------------------------
# drivers/firmware/efi/unaccepted_memory.c (accept_memory, unaccept_memory,
# the guard unit), mm/page_alloc.c (__free_pages_core, cond_accept_memory,
# __setup_per_zone_wmarks), mm/page_isolation.c (set_migratetype_isolate),
# drivers/virtio/virtio_mem.c with RFC v2 patch 6.

def test_promo_watermark_of_a_movable_zone():
    # __setup_per_zone_wmarks with 1 GiB of boot memory (pages_min 1024 over
    # 262144 lowmem pages): min = clamp(managed / 1024, 32, 128), tmp =
    # max((1024 * managed / 262144) >> 2, managed * 10 / 10000), promo =
    # min + 3 tmp.
    from cocomem.zone import promo_wmark_pages

    assert promo_wmark_pages(32768) == 32 + 3 * 32      # 128 MiB
    assert promo_wmark_pages(65536) == 64 + 3 * 65      # 256 MiB
    assert promo_wmark_pages(262144) == 128 + 3 * 262   # 1 GiB
    assert promo_wmark_pages(0) == 0


def test_lazy_plug_defers_whole_chunks_and_costs_no_tdcall(registry):
    # __free_pages_core(order 10) on a chunk with unaccepted units ->
    # __free_unaccepted: onto zone->unaccepted_pages, no TDCALL, no host page.
    run = make_run(registry, [{"plug": "128MiB"}], backend="plugged-bitmap")
    result = run.run()
    assert counters(run, "tdcall") == {}
    assert result.host_bytes == {"peak": 0, "end": 0}
    assert runs(run.driver.page, 0, 128 * MIB) == [(0, 128 * MIB, "unaccepted")]
    assert list(map(tuple, run.driver.zone.deferred)) == [(0, 128 * MIB)]


def test_first_allocation_accepts_one_chunk_and_its_guard(registry):
    # use 4 KiB: free accepted memory 0 < promo watermark 128 pages ->
    # cond_accept_memory accepts one 4 MiB chunk; accept_memory(4 MiB) ends
    # on a unit boundary, so the next unit is accepted too (the guard):
    # 3 units = 3 x (1 size_mismatch + 512 4K ok, 512 exits, 512 AUGs).
    steps = [{"plug": "128MiB"}, {"use": "4KiB"}]
    run = make_run(registry, steps, backend="plugged-bitmap")
    result = run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 3,
                                       "tdcall.accept.4k.ok": 3 * 512}
    assert run.ctx.counters["exit.ept_violation"] == 3 * 512
    assert result.host_bytes["end"] == 6 << 20
    assert runs(run.unaccepted.unaccepted, 0, 8 * MIB) == [(0, 6 * MIB, False),
                                                          (6 * MIB, 8 * MIB, True)]
    assert runs(run.driver.page, 0, 8 * MIB) == [(0, 1, "used"), (1, 4 * MIB, "free"),
                                                 (4 * MIB, 8 * MIB, "unaccepted")]


def test_allocations_top_up_to_the_promo_watermark(registry):
    # 4 MiB + 1 page of order-0 allocations: the first takes chunk 0 (1024
    # free, watermark 128); allocation k starts below the watermark when
    # 1024 - (k - 1) < 128, i.e. at k = 898, which accepts chunk 1 (its
    # unit 2 is already accepted: only unit 3 and the guard unit 4). After
    # that 127 + 1024 pages are free, well above the watermark for the last
    # 128 allocations: no third chunk.
    steps = [{"plug": "128MiB"}, {"use": 1025 * 4096}]
    run = make_run(registry, steps, backend="plugged-bitmap")
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 5,
                                       "tdcall.accept.4k.ok": 5 * 512}
    assert len(run.driver.zone.deferred) == 1
    assert run.driver.zone.deferred[0][0] == 8 * MIB


def test_eager_accept_counts_what_callbacks_counts(registry):
    # accept_memory=eager: __free_unaccepted refuses, each chunk is accepted
    # at once with its guard; over a whole block the guards are the next
    # chunks' units, and the last guard (block 1) is not plugged: 64 units.
    run = make_run(registry, [{"plug": "128MiB"}], backend="plugged-bitmap",
                   accept_memory="eager")
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 64,
                                       "tdcall.accept.4k.ok": 32768}


def test_unplug_of_a_lazy_block_accepts_then_releases_it(registry):
    # virtio_mem_sbm_unplug_sb_online -> alloc_contig_range isolates the
    # block: set_migratetype_isolate -> accept_page for every listed chunk
    # (64 units accepted); then unaccept_memory RELEASEs the plugged and
    # accepted units before the UNPLUG (RFC v2 patch 6): 64 x (1 2M size
    # mismatch + 512 4K ok).
    steps = [{"plug": "128MiB"}, {"unplug": "128MiB"}]
    run = make_run(registry, steps, backend="plugged-bitmap")
    run.run()
    assert counters(run, "tdcall") == {"tdcall.accept.2m.size_mismatch": 64,
                                       "tdcall.accept.4k.ok": 32768,
                                       "tdcall.release.2m.size_mismatch": 64,
                                       "tdcall.release.4k.ok": 32768}
    assert runs(run.unaccepted.plugged, 0, 128 * MIB) == [(0, 128 * MIB, False)]
    assert runs(run.unaccepted.unaccepted, 0, 128 * MIB) == [(0, 128 * MIB, True)]


def test_failed_unplug_reaccepts_in_fake_online(registry):
    # RFC v2 has no re-accept in virtio_mem_send_unplug_request: the
    # subblock stays released and marked unaccepted; the driver's rollback,
    # virtio_mem_fake_online, now calls accept_memory before
    # free_contig_range: the PENDING pages are accepted again, no exit. The
    # retry timer then unplugs it (a second RELEASE).
    steps = [{"plug": "128MiB"}, {"use": "all"}, {"free": "all"}, {"unplug": "2MiB"}]
    faults = [{"call": "virtio_mem.unplug", "nth": 1, "status": "busy"}]
    run = make_run(registry, steps, backend="plugged-bitmap", faults=faults)
    result = run.run()
    assert counters(run, "tdcall.release") == {"tdcall.release.2m.size_mismatch": 2,
                                               "tdcall.release.4k.ok": 1024}
    assert run.ctx.counters["tdcall.accept.4k.ok"] == 32768 + 512
    assert run.ctx.counters["exit.ept_violation"] == 32768
    assert counters(run, "virtio_mem.unplug") == {"virtio_mem.unplug.busy": 1,
                                                  "virtio_mem.unplug.ack": 1}
    assert result.verdict == "ok"


def test_kdump_skips_what_the_unaccepted_table_calls_not_ram(registry):
    # After a lazy plug and one page of use, units 0-2 are accepted. The
    # capture kernel's pfn_is_ram asks the unaccepted table first
    # (unaccepted_memory_vmcore_pfn_is_ram): units 3-63 are not RAM, and so
    # is the last page of unit 2 (range_contains_unaccepted_memory adds the
    # guard unit to a range ending on a unit boundary). virtio-mem asks
    # STATE only for the 3 device blocks it then reads. Callbacks accepted
    # everything: 64 STATE requests.
    steps = [{"plug": "128MiB"}, {"use": "4KiB"}, "kdump"]
    run = make_run(registry, steps, backend="plugged-bitmap")
    result = run.run()
    assert run.ctx.counters["virtio_mem.state.ack"] == 3
    assert result.verdict == "ok"
    eager = make_run(registry, steps)
    eager.run()
    assert eager.ctx.counters["virtio_mem.state.ack"] == 64


def test_kexec_keeps_the_bitmap_and_releases_before_unplug_all(registry):
    # The EFI table survives kexec; the new kernel's UNPLUG_ALL is preceded by
    # unaccept_memory(vm->addr, vm->region_size) over the plugged and
    # accepted units the old kernel left: units 0-2.
    steps = [{"plug": "128MiB"}, {"use": "4KiB"}, "kexec"]
    run = make_run(registry, steps, backend="plugged-bitmap")
    run.run()
    assert counters(run, "tdcall.release") == {"tdcall.release.2m.size_mismatch": 3,
                                               "tdcall.release.4k.ok": 3 * 512}
    assert run.ctx.counters["virtio_mem.unplug_all.ack"] == 1


def test_rfc_v2_without_page_release_panics_on_a_noop_unplug(registry):
    # tdx_unaccept_memory returns true without PAGE_RELEASE, but
    # unaccept_memory still marks the units unaccepted; upstream QEMU keeps
    # the private pages, so the re-plug's accept_memory meets MAPPED pages:
    # 2M size mismatch, 4K ALREADY_ACCEPTED, tdx_accept_memory fails and
    # arch_accept_memory panics.
    steps = [{"plug": "128MiB"}, {"use": "all"}, {"unplug": "128MiB"}, {"plug": "128MiB"},
             {"use": "all"}]
    run = make_run(registry, steps, backend="plugged-bitmap", tdx={"page_release": False})
    result = run.run()
    assert counters(run, "tdcall.release") == {}
    assert result.verdict == "crashed"
    assert [v["kind"] for v in result.violations][-1] == "accept-panic"
