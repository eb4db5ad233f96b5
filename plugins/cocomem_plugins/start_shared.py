"""Plugged memory starts shared and is converted before use.

``set_memory_encrypted`` (MapGPA to private + ACCEPT) on each plugged range,
``set_memory_decrypted`` (MapGPA to shared) before it is unplugged, and
``set_memory_encrypted`` again when the unplug request fails.
"""

from __future__ import annotations

from cocomem.backend import Backend, Revision
from cocomem.hookspecs import hookimpl


class StartShared(Backend):
    name = "start-shared"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "convert shared->private after plug, private->shared before unplug"
    order = 20
    revision = Revision(
        subject="[PATCH RFC] virtio-mem: support Confidential Computing (CoCo) environments",
        date="2026-04-01",
        message_id="<20260401-coco-v1-1-b9c3072e2d9c@redhat.com>",
        url="https://patchew.org/linux/20260401-coco-v1-1-b9c3072e2d9c@redhat.com",
    )
    departures = {
        "code-unseen": "the diff was not available, only the commit message and the author's "
                       "replies; the call sites below follow those words",
        "encrypt-at-plug": "converts right after the PLUG ACK (the author: 'On virtio-mem "
                           "plug, set_memory_encrypted() makes the memory private + "
                           "accepted'); the commit message says 'right before fake-onlining', "
                           "which differs only for memory plugged into an offline block",
        "unplug-all-untouched": "nothing is converted before UNPLUG_ALL (kexec): the commit "
                                "message names the plug, online and unplug paths only, and "
                                "set_memory_decrypted needs a direct-map address, which "
                                "memory the new kernel has not added does not have",
        "failed-reaccept": "when re-encryption after a failed unplug fails, the commit message "
                           "says the memory 'is intentionally leaked'; the model marks the "
                           "device broken and, as the upstream driver does after a failed "
                           "unplug, gives the pages back to the allocator",
    }

    def post_plug(self, start: int, end: int) -> bool:
        return self.vendor.set_memory_encrypted(start, end)

    def pre_unplug(self, start: int, end: int) -> bool:
        return self.vendor.set_memory_decrypted(start, end)

    def unplug_failed(self, start: int, end: int) -> bool:
        return self.vendor.set_memory_encrypted(start, end)


@hookimpl
def register_backends(register):
    register(StartShared)
