"""Accept whole memory blocks from a MEM_GOING_ONLINE memory notifier.

"x86/tdx: Fix memory hotplug in TDX guests" (2026-03): the notifier calls
``accept_memory`` on the whole block, plugged subblocks or not, and its first
patch makes ``try_accept_one`` treat "already accepted" as success.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cocomem.backend import MEM_GOING_ONLINE, Backend
from cocomem.hookspecs import hookimpl


class NotifierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: the series' first patch: ALREADY_ACCEPTED (bit 63 clear) counts as success
    ignore_already_accepted: bool = True


class Notifier(Backend):
    name = "notifier"
    description = "accept whole memory blocks on MEM_GOING_ONLINE"
    order = 10
    Options = NotifierOptions

    def memory_notify(self, action: str, start: int, end: int) -> bool:
        if action == MEM_GOING_ONLINE:
            # accept_memory() -> arch_accept_memory(), which panics on failure
            self.vendor.arch_accept_memory(
                start, end, tolerate_already_accepted=self.options.ignore_already_accepted)
        return True


@hookimpl
def register_backends(register):
    register(Notifier)
