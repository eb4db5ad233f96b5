"""Accept whole memory blocks from a MEM_GOING_ONLINE memory notifier.

Patch 1/2 makes ``try_accept_one`` fail only on ``status & TDX_ERROR``, so
ALREADY_ACCEPTED (bit 63 clear) counts as success; patch 2/2 registers
``tdx_guest_memory_notifier``, which calls ``tdx_accept_memory`` over the
whole memory block at MEM_GOING_ONLINE, plugged subblocks or not, and returns
NOTIFY_BAD when it fails: the block does not go online (MEM_CANCEL_ONLINE),
nothing panics.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cocomem.backend import MEM_GOING_ONLINE, Backend, Revision
from cocomem.hookspecs import hookimpl


class NotifierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    #: patch 1/2: ALREADY_ACCEPTED (bit 63 clear) counts as success; false
    #: models patch 2/2 alone
    ignore_already_accepted: bool = True


class Notifier(Backend):
    name = "notifier"
    state_in_maps = True  # every effect is in the page maps (cocomem.bulk)
    description = "accept whole memory blocks on MEM_GOING_ONLINE"
    order = 10
    platforms = ("tdx",)
    Options = NotifierOptions
    revision = Revision(
        subject="[PATCH 0/2] x86/tdx: Fix memory hotplug in TDX guests",
        date="2026-03-24",
        message_id="<20260324-tdx-hotplug-fixes-v1-0-8f29f2c17278@redhat.com>",
        url="https://lore.kernel.org/kvm/20260324-tdx-hotplug-fixes-v1-0-8f29f2c17278@redhat.com/",
    )
    departures = {
        "notifier-first": "the TDX notifier runs before virtio-mem's own memory notifier; "
                          "the model has no other notifier that could refuse the block",
    }

    def memory_notify(self, action: str, start: int, end: int) -> bool:
        if action != MEM_GOING_ONLINE:
            return True
        ignore = ("already_accepted",) if self.options.ignore_already_accepted else ()
        return self.vendor.accept_memory(start, end, ignore=ignore)


@hookimpl
def register_backends(register):
    register(Notifier)
