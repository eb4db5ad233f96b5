"""After every step, the host backs no more memory than the device has plugged.

A VMM that keeps memory the guest unplugged (upstream QEMU discards only the
shared plane) breaks the promise virtio-mem makes to the host's owner: that
unplugged memory can be given to someone else. The built-in
``private-residue`` check looks at the end of the run; this one reports the
step where it starts, for shared and private memory alike.
"""

from __future__ import annotations

from cocomem import Check, Event, hookimpl
from cocomem.checks import VMM
from cocomem.state import PRESENT


class HostWithinPlugged(Check):
    name = "host-within-plugged"
    description = "after every step the host backs no more memory than the device plugged"
    kinds = {"host-over-plugged": VMM}
    events = ("step.end",)

    def on_event(self, event: Event) -> None:
        host = self.run.host
        excess = host.present_pages - host.plugged_pages
        if excess <= 0:
            return
        for start, end in host.plugged.runs_where(0, host.npages, False):
            backed = (host.shared.runs_where(start, end, True)
                      + host.private.runs_where(start, end, *PRESENT))
            for s, e in sorted(backed):
                self.run.ctx.violation("host-over-plugged", s, e,
                                       f"the host backs {excess} pages more than plugged")


@hookimpl
def register_checks(register):
    register(HostWithinPlugged)
