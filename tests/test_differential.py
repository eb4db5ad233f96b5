"""The run-length engine against the dense reference model, on random step
sequences (plug, unplug, use, free, offline/online a block, VMM setting
changes, kexec, reboot, kdump): identical counters, violations, page states,
host memory, S-EPT page tables, the unaccepted-memory table (and its plugged
bitmap), the zone's lazy-accept list and cancelled onlines after every step,
for every backend, both mapping levels, every VMM setting, accept_memory
lazy and eager, and TDX with and without PAGE_RELEASE.

The CI profile runs a few hundred sequences; ``--hypothesis-profile
thorough`` runs thousands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from reference import ATTR_CODES, CHUNK, PAGE_CODES, PRIVATE_CODES, TALLY, ReferenceRun
from scenario_builder import scenario_yaml

from cocomem.engine import BackendRun
from cocomem.registry import load_registry
from cocomem.scenario import Step, parse_scenario
from cocomem.units import parse_size

REGISTRY = load_registry()
BACKENDS = ("mainline", "notifier", "start-shared", "callbacks", "plugged-bitmap")
DISCARDS = (["shared"], ["shared", "private"], ["private"], [])
TDX_STATUSES = ("ok", "already_accepted", "size_mismatch", "operand_invalid", "operand_busy")
FAULT_STATUSES = {
    "virtio_mem.plug": ("ack", "nack", "busy", "error"),
    "virtio_mem.unplug": ("ack", "nack", "busy", "error"),
    "virtio_mem.unplug_all": ("ack", "nack", "busy", "error"),
    "tdcall.accept": TDX_STATUSES,
    "tdcall.release": TDX_STATUSES,
    "tdvmcall.map_gpa": ("ok", "retry", "invalid_operand", "align_error"),
}


@st.composite
def faults(draw: st.DrawFn) -> dict:
    call = draw(st.sampled_from(sorted(FAULT_STATUSES)))
    # accept/release calls come by the thousand, requests by the handful
    # a 2 MiB chunk at 4K is 513 calls: aim at chunk edges too, where the
    # engine stops repeating a chunk's effect in bulk
    near_chunk_edge = st.builds(lambda k, j: max(1, 513 * k + j), st.integers(1, 6),
                                st.integers(-2, 2))
    nth = draw(st.one_of(st.integers(1, 40), near_chunk_edge, st.integers(1, 3000))
               if call.startswith("tdcall") else st.integers(1, 4))
    return {"call": call, "nth": nth, "status": draw(st.sampled_from(FAULT_STATUSES[call])),
            "count": draw(st.integers(1, 3))}


def make_run(backend: str, *, accept_memory: str, **settings: Any) -> BackendRun:
    """scenario_builder's scenario with ``guest: {accept_memory: ...}`` added (the
    builder has no keyword for it)."""
    data = yaml.safe_load(scenario_yaml([], **settings))
    data["guest"]["accept_memory"] = accept_memory
    loaded = parse_scenario(yaml.safe_dump(data, sort_keys=False), "<differential>",
                            set(REGISTRY.vendors))
    return BackendRun(loaded, REGISTRY, backend, loaded.scenario.vendor)


def dense(runmap, codes: dict | None = None) -> np.ndarray:
    out = np.empty(runmap.size, np.int64)
    for s, e, value in runmap.runs():
        out[s:e] = codes[value] if codes else value
    return out


def engine_first_steps(run, npages: int) -> dict[str, np.ndarray]:
    """The engine's violations as 'first step each page was reported', per kind."""
    first: dict[str, np.ndarray] = {}
    for v in run.ctx.violations:
        start = (v.start - run.ctx.region_addr) // 4096
        pages = first.setdefault(v.kind, np.full(npages, -1, np.int64))[
            start:start + v.size // 4096]
        pages[pages < 0] = v.step
    return first


def assert_same(run, ref: ReferenceRun, where: str) -> None:
    host, driver = run.host, run.driver
    assert +run.ctx.counters == +ref.counters, where
    pairs = {
        "host.plugged": (dense(host.plugged), ref.plugged),
        "host.attr": (dense(host.attr, ATTR_CODES), ref.attr),
        "host.shared": (dense(host.shared), ref.shared),
        "host.private": (dense(host.private, PRIVATE_CODES), ref.private),
        "host.content": (dense(host.content), ref.content),
        "driver.sb_plugged": (dense(driver.sb_plugged), ref.sb_plugged),
        "driver.page": (dense(driver.page, PAGE_CODES), ref.page),
        "host.pt_4k": (dense(host.pt_4k), ref.pt_4k),
        "unaccepted.unaccepted": (dense(run.unaccepted.unaccepted), ref.unaccepted),
        "unaccepted.plugged": (dense(run.unaccepted.plugged), ref.plugged_bits),
        "driver.online_cancelled": (dense(driver.online_cancelled), ref.online_cancelled),
    }
    for name, (fast, slow) in pairs.items():
        differs = np.flatnonzero(fast != slow)
        assert not len(differs), f"{where}: {name} differs from page {differs[0]}"
    assert [driver.mb_state[mb] for mb in range(len(ref.mb_state))] == ref.mb_state, where
    deferred = [c for s, e in driver.zone.deferred for c in range(s, e, CHUNK)]
    assert deferred == ref.deferred, f"{where}: the zone's unaccepted list"
    assert (driver.next_mb, driver.broken, host.usable_pages) == (ref.next_mb, ref.broken,
                                                                ref.usable), where
    assert (host.present_pages, host.peak_pages) == (ref.present, ref.peak), where
    first = engine_first_steps(run, ref.n)
    for kind, slow in ref.first.items():
        fast = first.get(kind, np.full(ref.n, -1, np.int64))
        differs = np.flatnonzero(fast != slow)
        assert not len(differs), (f"{where}: {kind} first reported at step "
                                  f"{fast[differs[0]]} (engine) vs {slow[differs[0]]} "
                                  f"(reference) at page {differs[0]}")
    TALLY["pages"] += 10 * ref.n + len(ref.online_cancelled)


class Differential(RuleBasedStateMachine):
    """Small geometry: 64 MiB device, 8 MiB memory blocks of four 2 MiB subblocks,
    a usable extent of 16 MiB so that the usable region limits plugging."""

    REGION, MEMORY_BLOCK, EXTENT = "64MiB", "8MiB", "16MiB"
    UNIT = 2 << 20
    MAX_UNITS = 8
    #: a first plug (as step 0) of up to this many units
    FIRST_PLUG_UNITS = 4
    USE_PAGES = (None, 1, 100, 512, 700, 2048, 5000)

    # plugged-bitmap twice: it has the most paths (the unaccepted table, lazy
    # acceptance, page isolation, kdump's skipping)
    @initialize(backend=st.sampled_from((*BACKENDS, "plugged-bitmap")),
                mapping=st.sampled_from(("4k", "2m")),
                memory=st.sampled_from(("start-private", "start-shared")),
                discards=st.sampled_from(DISCARDS), implicit=st.booleans(),
                accept=st.sampled_from(("lazy", "eager")), page_release=st.booleans(),
                injected=st.lists(faults(), max_size=4), data=st.data())
    def boot(self, backend: str, mapping: str, memory: str, discards: list[str],
             implicit: bool, accept: str, page_release: bool, injected: list[dict],
             data: st.DataObject) -> None:
        self.run = make_run(backend, accept_memory=accept, region=self.REGION,
                            memory_block=self.MEMORY_BLOCK, usable_extent=self.EXTENT,
                            mapping=mapping, memory=memory, discards=tuple(discards),
                            implicit=implicit, faults=injected,
                            tdx={"page_release": page_release})
        self.ref = ReferenceRun(self.run.scenario, backend)
        self.region = parse_size(self.REGION)
        self.blocks = self.region // parse_size(self.MEMORY_BLOCK)
        self.requested = 0
        self.index = 0
        self.alive = True
        self.where = (f"{backend} {mapping} {memory} discards={discards} implicit={implicit} "
                      f"accept_memory={accept} page_release={page_release} faults={injected}")
        TALLY["runs"] += 1
        # start with memory plugged: the rules that use it need not wait for a plug
        first_plug = data.draw(st.integers(0, self.FIRST_PLUG_UNITS), label="first plug")
        if first_plug:
            self._plug(first_plug)

    def apply(self, raw: Any) -> None:
        if not self.alive:  # the guest crashed: the run is over
            return
        step = Step.model_validate(raw)
        where = f"{self.where}, step {self.index} ({step.describe()})"
        alive = self.run.step(self.index, step)
        assert self.ref.step(self.index, step) == alive, where
        self.alive = alive
        self.index += 1
        TALLY["steps"] += 1
        TALLY[f"step.{step.op}"] += 1
        assert_same(self.run, self.ref, where)

    # sizes are drawn inside the rules: a subclass's class attributes apply
    # (a strategy in a decorator is evaluated once, in this class)

    def _plug(self, units: int) -> None:
        size = min(units * self.UNIT, self.region - self.requested)
        if size:
            self.requested += size
            self.apply({"plug": size})

    @rule(data=st.data())
    def plug(self, data: st.DataObject) -> None:
        self._plug(data.draw(st.integers(1, self.MAX_UNITS), label="units"))

    @rule(data=st.data())
    def unplug(self, data: st.DataObject) -> None:
        units = data.draw(st.integers(1, self.MAX_UNITS), label="units")
        size = min(units * self.UNIT, self.requested)
        if size:
            self.requested -= size
            self.apply({"unplug": size})

    @rule(data=st.data())
    def use(self, data: st.DataObject) -> None:
        pages = data.draw(st.sampled_from(self.USE_PAGES), label="pages")
        self.apply({"use": pages * 4096 if pages else "all"})

    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        pages = data.draw(st.sampled_from(self.USE_PAGES), label="pages")
        self.apply({"free": pages * 4096 if pages else "all"})

    @rule(data=st.data(), online=st.booleans())
    def change_block(self, data: st.DataObject, online: bool) -> None:
        block = data.draw(st.integers(0, self.blocks - 1))
        self.apply({"online_block" if online else "offline_block": block})

    @rule(mapping=st.sampled_from((None, "4k", "2m")),
          discards=st.sampled_from((None, *DISCARDS)),
          implicit=st.sampled_from((None, True, False)))
    def vmm(self, mapping: str | None, discards: list[str] | None, implicit: bool | None) -> None:
        patch = {"mapping_level": mapping, "unplug_discards": discards,
                 "implicit_conversion": implicit}
        self.apply({"vmm": {k: v for k, v in patch.items() if v is not None}})

    @rule(op=st.sampled_from(("kexec", "reboot", "kdump")))
    def new_kernel(self, op: str) -> None:
        self.apply(op)

    def teardown(self) -> None:
        if hasattr(self, "run"):
            self.run.finish()
            self.ref.finish()
            assert_same(self.run, self.ref, f"{self.where}, end of run")
            calls = self.ref.faults.calls
            TALLY["faults fired"] += sum(calls[f.call] >= f.nth for f in self.ref.faults.faults)


class DifferentialGiB(Differential):
    """1 GiB memory blocks in a 2 GiB device, so that tdx_accept_memory and the
    release walk try 1G where try_accept_one would."""

    REGION, MEMORY_BLOCK, EXTENT = "2GiB", "1GiB", "256MiB"
    UNIT = 256 << 20
    MAX_UNITS = 5
    FIRST_PLUG_UNITS = 0
    USE_PAGES = (None, 1, 262144, 300000)


TestDifferential = Differential.TestCase
TestDifferential.settings = settings(stateful_step_count=12)
TestDifferentialGiB = DifferentialGiB.TestCase
TestDifferentialGiB.settings = settings(
    max_examples=max(4, settings.default.max_examples // 25), stateful_step_count=6)
