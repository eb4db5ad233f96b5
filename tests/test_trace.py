"""``cocomem run --trace``: one line per event, pinned for a small scenario so
that a change in what the model does (or how it says it) shows up here."""

from __future__ import annotations

from typer.testing import CliRunner

from cocomem.cli import app

TINY = """\
name: tiny
vendor: tdx
device: {region_size: 256MiB, block_size: 2MiB}
guest: {memory_block_size: 128MiB}
vmm: {memory: start-private, mapping_level: MAPPING}
steps:
  - plug: 4MiB
  - use: 8KiB
  - unplug: 2MiB
"""

CALLBACKS_2M = """\
step 0: plug 4MiB
  host sets requested_size=4MiB usable_region_size=256MiB  [QEMU virtio_mem_resize_usable_region]
  virtio-mem PLUG 0x100000000+4MiB  [virtio_mem_send_plug_request]
  virtio-mem PLUG -> ACK  [QEMU virtio_mem_state_change_request]
  tdx_accept_memory 0x100000000+4MiB
    exit EPT_VIOLATION 0x100000000+4KiB level=2m  [KVM tdx_handle_ept_violation]
    host aug 0x100000000+2MiB level=2m  [KVM tdx_sept_set_private_spte (TDH.MEM.PAGE.AUG)]
  TDCALL TDG.MEM.PAGE.ACCEPT 0x100000000+2MiB level=2m -> OK  [try_accept_one]
  ... the same again for 1 more 2MiB piece: 0x100200000+2MiB
  add_memory 0x100000000+128MiB  [add_memory_driver_managed]
  memory notifier MEM_GOING_ONLINE 0x100000000+128MiB  [online_pages: memory_notify]
  memory notifier MEM_ONLINE 0x100000000+128MiB  [online_pages: memory_notify]
step 1: use 8KiB
  guest writes 0x100000000+8KiB
step 2: unplug 2MiB
  host sets requested_size=2MiB usable_region_size=256MiB  [QEMU virtio_mem_resize_usable_region]
  tdx_release_memory 0x100200000+2MiB
  TDCALL TDG.MEM.PAGE.RELEASE 0x100200000+2MiB level=2m -> OK  [try_release_one]
  virtio-mem UNPLUG 0x100200000+2MiB  [virtio_mem_send_unplug_request]
    host discard 0x100200000+2MiB planes=shared  [QEMU virtio_mem_set_block_state]
  virtio-mem UNPLUG -> ACK  [QEMU virtio_mem_state_change_request]
  violation private-residue 0x100200000+2MiB

callbacks: ok (no violation of the design)
  private-residue at step 2: 0x100200000 size 0x200000
  exit.ept_violation = 2
  host.aug.2m = 2
  tdcall.accept.2m.ok = 2
  tdcall.release.2m.ok = 1
  virtio_mem.plug.ack = 1
  virtio_mem.unplug.ack = 1
"""


def trace(tmp_path, backend: str, mapping: str) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("MAPPING", mapping))
    result = CliRunner().invoke(app, ["run", str(path), "--backend", backend, "--trace"])
    assert result.exit_code == 0, result.output
    return result.output


def test_callbacks_trace_at_2m_is_pinned(tmp_path):
    assert trace(tmp_path, "callbacks", "2m") == CALLBACKS_2M


def test_mainline_trace_shows_the_fatal_touch(tmp_path):
    lines = trace(tmp_path, "mainline", "4k").splitlines()
    # tdx_handle_ept_violation: the FREE page is added, the retried access hits
    # a PENDING page and the second exit is fatal; the TD dies at that page
    assert lines[lines.index("step 1: use 8KiB") + 1:][:6] == [
        "    exit EPT_VIOLATION 0x100000000+4KiB level=4k  [KVM tdx_handle_ept_violation]",
        "    host aug 0x100000000+4KiB level=4k  "
        "[KVM tdx_sept_set_private_spte (TDH.MEM.PAGE.AUG)]",
        "    exit EPT_VIOLATION 0x100000000+4KiB fatal=PENDING page: kvm_vm_dead  "
        "[KVM tdx_handle_ept_violation]",
        "  guest writes 0x100000000+8KiB",
        "  violation access-unaccepted 0x100000000+4KiB: guest touched memory it has not "
        "accepted",
        "  crash 0x100000000+4KiB kind=access-unaccepted "
        "detail=guest touched memory it has not accepted",
    ]


def test_4k_trace_counts_one_line_per_call_and_exit(tmp_path):
    # The walk's first calls are traced one by one (1 size-mismatched 2M ACCEPT,
    # then two 4K ACCEPTs with their exits and AUGs); the 510 identical 4K calls
    # after them are one "the same again" line, and so is the identical second
    # 2 MiB chunk. Every line adds up to the counters.
    lines = trace(tmp_path, "callbacks", "4k").splitlines()
    plug = lines[:lines.index("step 1: use 8KiB")]
    assert sum("ACCEPT" in line and "level=2m -> SIZE_MISMATCH" in line for line in plug) == 1
    assert sum("ACCEPT" in line and "level=4k -> OK" in line for line in plug) == 2
    assert sum(line.startswith("    exit EPT_VIOLATION") for line in plug) == 2
    assert sum(line.startswith("    host aug") for line in plug) == 2
    assert "  ... the same again for 510 more 4KiB pieces: 0x100002000+2040KiB" in plug
    assert "  ... the same again for 1 more 2MiB piece: 0x100200000+2MiB" in plug
    assert "  tdcall.accept.4k.ok = 1024" in lines
