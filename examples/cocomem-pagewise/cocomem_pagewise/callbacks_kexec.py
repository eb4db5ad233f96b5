"""RFC v1's callbacks, plus a release before UNPLUG_ALL.

RFC v1 accepts exactly the plugged range after a PLUG and releases it before
an UNPLUG, but leaves ``virtio_mem_send_unplug_all_request`` alone, so after
kexec the new kernel's re-plug meets pages the old kernel accepted
(``scenarios/kexec-replug.yaml``: device broken, memory leaked). This backend
adds the missing release, and calls only the arch-neutral API, so it runs on
any vendor.
"""

from __future__ import annotations

from cocomem import Backend, Revision, hookimpl


class CallbacksKexec(Backend):
    name = "callbacks-kexec"
    description = "RFC v1's callbacks plus a release before UNPLUG_ALL (kexec)"
    order = 35
    revision = Revision(
        subject="[RFC PATCH 0/6] Support virtio-mem memory hotplug in TDX guests",
        date="2026-06-04",
        message_id="<20260604093551.1511079-1-zhenzhong.duan@intel.com>",
    )
    departures = {
        "release-before-unplug-all": "not in the posted series: release_memory over the "
                                     "whole region before UNPLUG_ALL, as RFC v2 does",
        "any-platform": "the series hooks TDX only; this backend calls the arch-neutral "
                        "API on every vendor",
    }

    def post_plug(self, start: int, end: int) -> bool:
        return self.vendor.accept_memory(start, end)

    def pre_unplug(self, start: int, end: int) -> bool:
        return self.vendor.release_memory(start, end)

    def unplug_failed(self, start: int, end: int) -> bool:
        return self.vendor.accept_memory(start, end)

    def pre_unplug_all(self, start: int, end: int) -> bool:
        return self.vendor.release_memory(start, end)


@hookimpl
def register_backends(register):
    register(CallbacksKexec)
