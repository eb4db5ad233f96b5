"""RFC v2: a "plugged" bitmap beside the EFI unaccepted-memory bitmap.

No callbacks: the unaccepted-memory table covers every SRAT hot-pluggable
range (patches 1-2) and gets a plugged bitmap (patch 3); memory is accepted
by the core (``accept_memory`` over plugged and unaccepted units, eagerly at
online or lazily on allocation, as ``guest.accept_memory`` says) and given
back by ``unaccept_memory`` (patch 4: ``tdx_unaccept_memory``, the RELEASE
walk; any failure panics in ``arch_unaccept_memory``). Hook points:
- patch 6, ``virtio_mem_send_plug_request``: PLUG ACK sets the plugged bits;
- patch 5, ``add_memory_resource``: plugged bits for the whole added block;
- patch 6, ``virtio_mem_send_unplug_request``: ``unaccept_memory`` before the
  request, plugged bits cleared on ACK;
- patch 6, ``virtio_mem_send_unplug_all_request``: ``unaccept_memory`` over
  the region before the request, plugged bits cleared on ACK;
- patch 5, ``try_remove_memory``: ``unaccept_memory`` over the block, then
  its plugged bits cleared;
- patch 6, ``virtio_mem_fake_online``: ``accept_memory`` before
  ``free_contig_range`` of pages taken by ``alloc_contig_range``.
"""

from __future__ import annotations

from cocomem.backend import Backend, Revision
from cocomem.hookspecs import hookimpl
from cocomem.run import GuestCrash


class PluggedBitmap(Backend):
    name = "plugged-bitmap"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "RFC v2: plugged bitmap + unaccepted bitmap; core accept, unaccept on unplug"
    order = 40
    covers_hotplug_memory = True
    revision = Revision(
        subject="[RFCv2 PATCH 0/6] Support memory hotplug/unplug for TDX CoCo guests",
        date="2026-06-23",
        message_id="<20260623101739.79695-1-zhenzhong.duan@intel.com>",
        url="https://lkml.iu.edu/hypermail/linux/kernel/2606.2/10991.html",
    )
    departures = {
        "srat-covers-device": "the SRAT hot-pluggable range is exactly the device region "
                              "(QEMU's build_srat emits one entry for the whole device-memory "
                              "area; one device fills it)",
        "no-lock": "unaccept_memory holds unaccepted_memory_lock across the RELEASE TDCALLs "
                   "(Kiryl: 'will kill scalability'); one vCPU is modelled, so no contention",
        "no-acpi-dimm": "patch 5's ACPI DIMM and memmap_on_memory paths are not modelled: "
                        "virtio-mem uses neither",
    }

    def arch_unaccept_memory(self, start: int, end: int) -> None:
        """Patch 4's x86 arch_unaccept_memory: ``tdx_unaccept_memory`` on a TDX guest
        (panic when it fails), and on any other platform
        ``panic("Cannot unaccept memory: unknown platform")``."""
        if self.vendor.name != "tdx":
            raise GuestCrash("accept-panic", start, end,
                             "arch_unaccept_memory: Cannot unaccept memory: unknown platform")
        if not self.vendor.release_memory(start, end):
            raise GuestCrash("accept-panic", start, end,
                             "arch_unaccept_memory: TDX: Failed to unaccept memory")

    def post_plug(self, start: int, end: int) -> bool:
        self.unaccepted.set_plugged(start, end, True)
        return True

    def memory_added(self, start: int, end: int) -> None:
        self.unaccepted.set_plugged(start, end, True)

    def pre_unplug(self, start: int, end: int) -> bool:
        self.unaccepted.unaccept_memory(start, end, self.arch_unaccept_memory)
        return True

    def unplugged(self, start: int, end: int) -> None:
        self.unaccepted.set_plugged(start, end, False)

    def pre_unplug_all(self, start: int, end: int) -> bool:
        self.unaccepted.unaccept_memory(start, end, self.arch_unaccept_memory)
        return True

    def unplugged_all(self, start: int, end: int) -> None:
        self.unaccepted.set_plugged(start, end, False)

    def memory_removing(self, start: int, end: int) -> None:
        self.unaccepted.unaccept_memory(start, end, self.arch_unaccept_memory)
        self.unaccepted.set_plugged(start, end, False)

    def fake_online(self, start: int, end: int) -> None:
        self.unaccepted.accept_memory(start, end)


@hookimpl
def register_backends(register):
    register(PluggedBitmap)
