"""The built-in invariants (docs/model.md, section 7)."""

from __future__ import annotations

from collections import Counter

from cocomem.checks import VMM, Check
from cocomem.hookspecs import hookimpl
from cocomem.run import Event, GuestCrash
from cocomem.runmap import differences
from cocomem.state import BUDDY, MANAGED, PRESENT
from cocomem.units import PAGE_SIZE


class AccessUnaccepted(Check):
    name = "access-unaccepted"
    description = "a guest access to a private page that is PENDING or FREE kills the TD"
    kinds = {"access-unaccepted": "crashed"}
    events = ("guest.access",)

    def on_event(self, event: Event) -> None:
        bad = self.run.vendor.inaccessible(event.start, event.end)
        if bad:
            page = bad[0][0]  # the TD dies at the first such page
            raise GuestCrash("access-unaccepted", page, page + 1,
                             "guest touched memory it has not accepted")


class UseAfterUnplug(Check):
    name = "use-after-unplug"
    description = "the guest uses memory it asked the device to unplug"
    kinds = {"use-after-unplug": "unsafe"}
    events = ("guest.access",)

    def on_event(self, event: Event) -> None:
        for plugged in (self.run.driver.sb_plugged, self.run.host.plugged):
            for start, end in plugged.runs_where(event.start, event.end, False):
                self.run.ctx.violation("use-after-unplug", start, end)


class AcceptUnbacked(Check):
    name = "accept-unbacked"
    description = "memory the device has not plugged was accepted (host memory spent)"
    kinds = {"accept-unbacked": "unsafe"}
    events = ("accept.done",)

    def on_event(self, event: Event) -> None:
        for start, end in self.run.host.plugged.runs_where(event.start, event.end, False):
            self.run.ctx.violation("accept-unbacked", start, end)


class DoubleAccept(Check):
    name = "double-accept"
    description = "ACCEPT hit an already accepted page"
    kinds = {"double-accept": "degraded"}
    events = ("accept.already",)

    def on_event(self, event: Event) -> None:
        self.run.ctx.violation("double-accept", event.start, event.end)


class StaleAssumedZero(Check):
    name = "stale-assumed-zero"
    description = ("an accept treated as success left data in place that left the guest "
                   "(unplugged) after it was written")
    kinds = {"stale-assumed-zero": "unsafe"}
    events = ("accept.already",)

    def on_event(self, event: Event) -> None:
        if not event.info.get("tolerated"):
            return
        for start, end, content in self.run.host.content.runs(event.start, event.end):
            if content < 0:
                self.run.ctx.violation("stale-assumed-zero", start, end,
                                       f"holds data written at step {-content - 1}, "
                                       f"unplugged since")


class StateMismatch(Check):
    name = "state-mismatch"
    description = "the guest and the device disagree on what is plugged (checked after each step)"
    kinds = {"state-mismatch": "unsafe"}
    events = ("step.end",)

    def on_event(self, event: Event) -> None:
        if self.run.driver.broken:
            return
        for start, end in differences(self.run.driver.sb_plugged, self.run.host.plugged):
            self.run.ctx.violation("state-mismatch", start, end)


class DeviceBroken(Check):
    name = "device-broken"
    description = "the driver marked the device broken"
    kinds = {"device-broken": "degraded"}
    events = ("driver.broken",)

    def on_event(self, event: Event) -> None:
        self.run.ctx.violation("device-broken", event.start, event.end, event.info["why"])


class Leak(Check):
    name = "leak"
    description = ("plugged memory the guest can never use again: the device is broken, "
                   "or a notifier refused to online its block")
    kinds = {"leak": "degraded"}
    events = ()

    def on_finish(self) -> None:
        run = self.run
        driver, host = run.driver, run.host
        plugged = host.plugged.runs_where(0, host.npages, True)
        if driver.broken:
            for start, end in plugged:
                for s, e, page in driver.page.runs(start, end):
                    if page not in MANAGED:
                        run.ctx.violation("leak", s, e, "the device is broken")
            return
        for mb_start, mb_end in driver.online_cancelled.runs_where(0, driver.nmb, True):
            start, end = mb_start * driver.mb_pages, mb_end * driver.mb_pages
            for s, e in host.plugged.runs_where(start, end, True):
                run.ctx.violation("leak", s, e, "MEM_CANCEL_ONLINE: the block never came online")


class PrivateResidue(Check):
    name = "private-residue"
    description = ("the host still holds private memory for unplugged blocks at the end "
                   "(the VMM's finding: no verdict on the design)")
    kinds = {"private-residue": VMM}
    events = ()

    def on_finish(self) -> None:
        host = self.run.host
        for start, end in host.plugged.runs_where(0, host.npages, False):
            for s, e in host.private.runs_where(start, end, *PRESENT):
                self.run.ctx.violation("private-residue", s, e)


class AcceptPanic(Check):
    name = "accept-panic"
    description = ("an accept or release failed where the kernel panics (arch_accept_memory, "
                   "arch_unaccept_memory, tdx_release_memory's re-accept)")
    kinds = {"accept-panic": "crashed"}
    events = ()


class Exercised(Check):
    """Reports no violation: it records what the run exercised, in the run's facts,
    for the verdict's honesty and the cost model (docs/costs.md)."""

    name = "exercised"
    description = ("what the run exercised: whether the guest touched hot-plugged memory, "
                   "memory online but not accepted at the end, and the counts made by "
                   "allocations on every vCPU (`use` steps)")
    kinds = {}
    events = ("step", "step.end", "crash", "guest.access")

    def __init__(self, run) -> None:
        super().__init__(run)
        self.touched = False
        self.before: Counter[str] | None = None
        self.parallel: Counter[str] = Counter()

    def on_event(self, event: Event) -> None:
        if event.name == "guest.access" or (event.name == "crash"
                                            and event.info["kind"] == "access-unaccepted"):
            self.touched = True
        elif event.name == "step":
            step = self.run.scenario.steps[event.info["index"]]
            # allocations run on every vCPU at once (use-runs-on-all-vcpus)
            self.before = Counter(self.run.ctx.counters) if step.op == "use" else None
        if event.name in ("step.end", "crash") and self.before is not None:
            self.parallel.update(Counter(self.run.ctx.counters) - self.before)
            self.before = None

    def on_finish(self) -> None:
        run = self.run
        dead = 0
        if run.crashed_at is None:
            for start, end in run.driver.page.runs_where(0, run.host.npages, BUDDY):
                dead += sum(e - s for s, e in run.vendor.inaccessible(start, end))
        run.ctx.facts.update(touched=self.touched, unaccepted_online=dead * PAGE_SIZE)
        if self.parallel:
            run.ctx.facts["parallel_counters"] = dict(self.parallel)


BUILTIN_CHECKS = (AccessUnaccepted, AcceptPanic, StaleAssumedZero, AcceptUnbacked,
                  UseAfterUnplug, StateMismatch, DoubleAccept, DeviceBroken, Leak,
                  PrivateResidue, Exercised)


@hookimpl
def register_checks(register):
    for check in BUILTIN_CHECKS:
        register(check)
