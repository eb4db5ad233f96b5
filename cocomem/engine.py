"""One backend through one scenario: build the layers, run the steps, collect results."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from .backend import Unregistered
from .bulk import Recording
from .checks import KINDS, VMM, Check, verdict
from .cost import run_cost
from .driver import VirtioMem
from .errors import CocomemError
from .faults import FaultPlan
from .host import Host
from .registry import Registry
from .results import EXIT, HOST, REQUEST, Result, declare
from .run import Event, GuestCrash, RunContext
from .scenario import LoadedScenario, Step
from .state import ABSENT, BUDDY, PAGE_STATES, USED
from .steady import SteadyUse
from .unaccepted import UnacceptedMemory
from .units import PAGE_SIZE, format_size


def _options(loaded: LoadedScenario, model: type, raw: dict, key: tuple) -> Any:
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        message = ("unknown key" if err["type"] == "extra_forbidden"
                   else err["msg"].removeprefix("Value error, "))
        raise loaded.error(key + tuple(err["loc"]), message) from None


#: counters the core itself makes, whatever the vendor
CORE_COUNTERS = {
    **declare(REQUEST, "virtio_mem.{plug,unplug,unplug_all,state}.{ack,nack,busy,error}"),
    "exit.memory_fault": EXIT,
    **declare(HOST, "host.convert.{private,shared}"),
}


def counter_classes(vendor_cls: type) -> dict[str, str]:
    """Counter pattern -> class for a run on ``vendor_cls``: the core's counters, the
    host's under the vendor's words, and the vendor's own."""
    words = vendor_cls.host_words
    classes = dict(CORE_COUNTERS)
    classes[words.fault] = EXIT
    classes.update({pattern: HOST for pattern in words.counters()[1:]})
    classes.update(vendor_cls.counters)
    return classes


def fault_calls(vendor_cls: type) -> dict[str, tuple[str, ...]]:
    """The calls a fault may name on ``vendor_cls``, with their statuses."""
    from .host import RESPONSES

    calls = {f"virtio_mem.{r}": RESPONSES for r in ("plug", "unplug", "unplug_all")}
    calls.update(vendor_cls.fault_calls)
    return calls


def validate_faults(loaded: LoadedScenario, registry: Registry) -> None:
    """Every ``faults:`` entry names a call some loaded vendor (or the device) makes,
    with one of its statuses. A fault on another vendor's call does not apply to a
    run on this one (a TDX fault leaves an SEV-SNP run alone)."""
    known: dict[str, set[str]] = {}
    for vendor_cls in registry.vendors.values():
        for call, statuses in fault_calls(vendor_cls).items():
            known.setdefault(call, set()).update(statuses)
    for index, fault in enumerate(loaded.scenario.faults):
        if fault.call not in known:
            raise loaded.error(("faults", index, "call"),
                               f"unknown call {fault.call!r}; calls: {', '.join(sorted(known))}")
        if fault.status not in known[fault.call]:
            statuses = next(s for v in registry.vendors.values()
                            if (s := fault_calls(v).get(fault.call)))
            raise loaded.error(("faults", index, "status"),
                               f"{fault.call} has no status {fault.status!r}; statuses: "
                               f"{', '.join(statuses)}")


class BackendRun:
    """The simulated guest + VMM + platform for one backend."""

    def __init__(self, loaded: LoadedScenario, registry: Registry, backend: str,
                 vendor: str, trace: list[Event] | None = None) -> None:
        self.loaded = loaded
        self.scenario = s = loaded.scenario
        self.registry = registry
        self.backend_name = backend
        self.vendor_cls = registry.vendors[vendor]
        self.backend_cls = registry.backends[backend]
        self.vendor_options = _options(loaded, self.vendor_cls.Options,
                                       s.vendor_options.get(vendor, {}), ("vendor_options", vendor))
        self.backend_options = _options(loaded, self.backend_cls.Options,
                                        s.backend_options.get(backend, {}),
                                        ("backend_options", backend))
        self.ctx = RunContext(s.device.addr)
        applicable = fault_calls(self.vendor_cls)
        self.faults = FaultPlan(f for f in s.faults if f.status in applicable.get(f.call, ()))
        self.host = Host(self.ctx, s, self.faults, confidential=self.vendor_cls.confidential,
                         words=self.vendor_cls.host_words)
        self.vendor = self.vendor_cls(self.ctx, self.host, self.faults, self.vendor_options)
        self.host.removing = self.vendor.removing_private
        platforms = self.backend_cls.platforms
        #: the posted series hooks only these platforms' arch code; on any other it
        #: registers nothing, and the kernel behaves as mainline
        self.registered = platforms is None or vendor in platforms
        if not self.registered:
            self.backend_cls = Unregistered
        self.unaccepted = UnacceptedMemory(self.ctx, self.host.npages, self.vendor,
                                           covers=self.backend_cls.covers_hotplug_memory)
        self.plugin_errors: list[str] = []
        self.checks: list[Check] = []
        #: per event name, the checks that read it
        self._listening: dict[str, list[Check]] = {}
        for cls in registry.checks.values():
            try:
                self.checks.append(cls(self))
            except (Exception, SystemExit) as exc:
                self.plugin_errors.append(f"{registry.label('check', cls.name)} failed: "
                                          f"{type(exc).__name__}: {exc}; left out of this run")
        self.kinds = dict(KINDS)
        self.kinds.update(self.vendor_cls.kinds)
        for check in self.checks:
            self.kinds.update(check.kinds)
        watched: set[str] | None = set()
        for check in self.checks:
            watched = (None if watched is None or check.events is None
                       else watched | set(check.events))
        self.ctx.watched = watched
        if trace is not None:
            self.ctx.listeners.append(trace.append)
        self.ctx.listeners.append(self._dispatch)
        self.crashed_at: int | None = None
        self.new_kernel()

    def new_kernel(self) -> None:
        """Boot (or kexec into) a guest kernel: a fresh driver and backend."""
        self.vendor.new_kernel()
        self.backend = self.backend_cls(self.ctx, self.vendor, self.backend_options,
                                        self.unaccepted)
        self.driver = VirtioMem(self.ctx, self.scenario, self.host, self.backend,
                                self.unaccepted)

    def _dispatch(self, event: Event) -> None:
        listeners = self._listening.get(event.name)
        if listeners is None:
            listeners = self._listening[event.name] = [
                check for check in self.checks
                if check.events is None or event.name in check.events]
        for check in listeners:  # a check dropped meanwhile is not in a new list
            try:
                check.on_event(event)
            except GuestCrash:
                raise
            except (Exception, SystemExit) as exc:
                self._drop_check(check, exc)

    def _drop_check(self, check: Check, exc: BaseException) -> None:
        """A check's own exception costs only that check: it is left out of this run,
        and the result says so in one line."""
        self.checks.remove(check)
        self._listening.clear()  # who hears which event, worked out again
        self.plugin_errors.append(f"{self.registry.label('check', check.name)} failed: "
                                  f"{type(exc).__name__}: {exc}; left out of this run")

    # -- steps -----------------------------------------------------------

    def run(self) -> Result:
        for index, step in enumerate(self.scenario.steps):
            if not self.step(index, step):
                break
        return self.finish()

    def step(self, index: int, step: Step) -> bool:
        """Run ``step`` as step ``index``; False when the guest crashed (the run ends)."""
        self.ctx.step = index
        try:
            self.ctx.emit("step", index=index, what=step.describe())
            self.do_step(step)
            self.ctx.emit("step.end")
        except GuestCrash as crash:
            self.crashed_at = index
            self.ctx.violation(crash.kind, crash.start, crash.end, crash.detail)
            self.ctx.emit("crash", crash.start, crash.end, kind=crash.kind, detail=crash.detail)
            return False
        return True

    def finish(self) -> Result:
        """After the last step (or the crash): end-of-run checks, then the result."""
        self.ctx.emit("finish")
        for check in list(self.checks):
            try:
                check.on_finish()
            except GuestCrash:
                raise
            except (Exception, SystemExit) as exc:
                self._drop_check(check, exc)
        return self.result(self.crashed_at)

    def do_step(self, step: Step) -> None:
        host, op = self.host, step.op
        if op in ("plug", "unplug"):
            delta = step.size // PAGE_SIZE
            host.set_requested(host.requested_pages + (delta if op == "plug" else -delta))
        elif op == "use":
            self.use(step.size // PAGE_SIZE if step.size else None)
        elif op == "free":
            self.free(step.size // PAGE_SIZE if step.size else None)
        elif op == "vmm":
            host.apply(step.vmm)
        elif op == "kexec":
            self.new_kernel()
        elif op == "reboot":
            self.reset()
        elif op == "kdump":
            self.vendor.new_kernel()  # the capture kernel
            self.kdump()
            self.reset()
        elif op in ("offline_block", "online_block"):
            self.change_block(step.block, online=op == "online_block")
        self.driver.virtio_mem_run_wq()

    def reset(self) -> None:
        """System reset: a new TD with a new EFI table, and a new kernel."""
        self.host.reset()
        self.unaccepted.boot()
        self.new_kernel()

    def access(self, start: int, end: int, what: str = "writes") -> None:
        """A guest access to ``[start, end)``."""
        self.vendor.touch(start, end)
        self.ctx.emit("guest.access", start, end, what=what)

    def use(self, npages: int | None) -> None:
        """Order-0 allocations of the lowest-addressed free pages, each written; every
        allocation first tops the zone up (cond_accept_memory). Cycles like the last
        one (accept one chunk, allocate one chunk's worth) are applied at once."""
        todo = npages
        steady = SteadyUse(self.vendor, self.host, self.driver)
        while todo is None or todo > 0:
            begun = steady.begin()
            if begun is None:
                batch = self.driver.zone.allocations_before_top_up(todo)
                accepted = None
            else:
                with Recording(self.vendor) as accept_record:
                    batch = self.driver.zone.allocations_before_top_up(todo)
                accepted = steady.topped_up(begun, accept_record)
            if not batch:
                return
            alloc, free_before = steady.free_pages(batch) if accepted else (0, None)
            if free_before is None:
                self._allocate(batch)
                cycle = None
            else:
                with Recording(self.vendor) as alloc_record:
                    self._allocate(batch)
                cycle = steady.cycle(accepted, alloc, batch, free_before, alloc_record)
            if todo is not None:
                todo -= batch
            if cycle:
                done = steady.repeat(cycle, todo)
                if todo is not None:
                    todo -= done

    def _allocate(self, npages: int) -> None:
        todo = npages
        done: list[tuple[int, int]] = []
        try:
            for s, e in self.driver.page.runs_where(0, self.host.npages, BUDDY):
                e = min(e, s + todo)
                self.access(s, e)
                done.append((s, e))
                todo -= e - s
                if not todo:
                    return
        finally:  # one pass over each map, also when the guest died part way
            self.driver.page.set_many(done, USED)
            self.host.content.set_many(done, self.ctx.step + 1)

    def free(self, npages: int | None) -> None:
        """Free the highest-addressed used pages (their data stays)."""
        todo = npages
        freed: list[tuple[int, int]] = []
        for s, e in reversed(self.driver.page.runs_where(0, self.host.npages, USED)):
            if todo is not None:
                s = max(s, e - todo)
                todo -= e - s
            freed.append((s, e))
            if todo == 0:
                break
        self.driver.page.set_many(freed[::-1], BUDDY)

    def change_block(self, mb: int, *, online: bool) -> None:
        driver = self.driver
        state = driver.mb_state[mb]
        if online and state in ("offline", "offline_partial"):
            driver.online_mb(mb)
        elif not online and state in ("movable", "movable_partial"):
            driver.offline_mb(mb)
        else:
            self.ctx.emit("ignored", *driver.mb_range(mb), why=f"memory block is {state}")

    def kdump(self) -> None:
        """The capture kernel reads every page of added memory into the vmcore, in
        order. pfn_is_ram asks the unaccepted-memory table first (registered first):
        a page it calls unaccepted is not read and costs no request; for the others
        virtio_mem_vmcore_pfn_is_ram asks STATE once per device block (it caches the
        last block) and only plugged blocks are read."""
        driver, host = self.driver, self.host
        block = host.block_pages
        added = driver.page.runs_where(0, host.npages, *(PAGE_STATES - {ABSENT}))
        for s, e in added:
            skipped = self.unaccepted.not_ram_in_vmcore(s, e)
            readable = _complement(s, e, skipped)
            blocks = _blocks_touched(readable, block)
            self.ctx.count("virtio_mem.state.ack", blocks)
            self.ctx.emit("kdump.state", s, e, blocks=blocks, fn="virtio_mem_vmcore_pfn_is_ram")
            for rs, re_ in readable:
                for ps, pe in host.plugged.runs_where(rs, re_, True):
                    self.access(ps, pe, what="reads (vmcore)")

    # -- results ---------------------------------------------------------

    def why(self, judged: str) -> str:
        """The first violation whose kind implies the verdict, in words."""
        note = self.note()
        note = f" ({note})" if note else ""
        for v in self.ctx.violations:
            if self.kinds.get(v.kind, "unsafe") == judged:
                detail = f": {v.detail}" if v.detail else ""
                return (f"{v.kind} at step {v.step}, {v.start:#x}+"
                        f"{format_size(v.size)}{detail}{note}")
        return "no violation of the design" + note

    def note(self) -> str:
        if self.registered:
            return ""
        platforms = ", ".join(self.registry.backends[self.backend_name].platforms)
        return (f"the posted series registers nothing on {self.vendor_cls.name}: "
                f"it hooks {platforms} only")

    def result(self, crashed_at: int | None) -> Result:
        kinds = {v.kind for v in self.ctx.violations}
        counters = dict(sorted(self.ctx.counters.items()))
        judged = verdict(kinds, self.kinds)
        return Result(
            backend=self.backend_name,
            verdict=judged,
            why=self.why(judged),
            violations=[dict(v.as_dict(), by="vmm" if self.kinds.get(v.kind) == VMM else "design")
                        for v in self.ctx.violations],
            counters=counters,
            cost=run_cost(counters, self.vendor_cls, self.scenario, self.ctx.facts),
            facts=dict(self.ctx.facts),
            host_bytes={"peak": self.host.peak_pages * PAGE_SIZE,
                        "end": self.host.present_pages * PAGE_SIZE},
            crashed_at=crashed_at,
            counter_classes=counter_classes(self.vendor_cls),
            plugin_errors=self.plugin_errors,
            note=self.note(),
        )


def _complement(start: int, end: int, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, pos = [], start
    for s, e in holes:
        if pos < s:
            out.append((pos, s))
        pos = max(pos, e)
    if pos < end:
        out.append((pos, end))
    return out


def _blocks_touched(ranges: list[tuple[int, int]], block: int) -> int:
    """Device blocks with at least one page in ``ranges`` (sorted, disjoint)."""
    count, last = 0, -1
    for s, e in ranges:
        first, final = s // block, (e - 1) // block
        count += final - max(first, last + 1) + 1 if final > last else 0
        last = max(last, final)
    return count


class TimedOut(BaseException):
    """A backend's run took longer than ``--timeout`` (a BaseException, so that a
    plugin's ``except Exception`` cannot swallow it)."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TimedOut in this thread after ``seconds`` (Unix, main thread only)."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        # raised where the run happens to be; if that is somewhere an exception is
        # lost (a garbage-collector callback), the timer fires again soon
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        raise TimedOut(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_backend(loaded: LoadedScenario, registry: Registry, backend: str, vendor: str,
                trace: list[Event] | None = None, timeout: float | None = None) -> Result:
    """Run one backend; a plugin's own exception (or SystemExit) anywhere in the run,
    or a run longer than ``timeout`` seconds, becomes an ``error`` result naming the
    plugin, and the other backends go on."""
    run = None
    try:
        with _time_limit(timeout):
            run = BackendRun(loaded, registry, backend, vendor, trace)
            return run.run()
    except CocomemError:
        raise  # bad input: the options of a backend or vendor
    except (Exception, SystemExit, TimedOut) as exc:  # one backend must not lose the others
        culprit = registry.culprit(exc.__traceback__)
        return Result(backend=backend, verdict="error", error=f"{type(exc).__name__}: {exc}",
                      culprit=culprit,
                      counters=dict(sorted(run.ctx.counters.items())) if run else {},
                      counter_classes=counter_classes(registry.vendors[vendor]),
                      plugin_errors=run.plugin_errors if run else [])
