"""The bulk mechanism changes nothing but the time: for every installed vendor and
every backend, a random scenario run with bulk repetition (cocomem.bulk: pieces of
a uniform range, calls like the last one) gives the same counters, violations,
verdict, host state and fault-call counts as the same run with every piece and
every call made for real. Faults are aimed at piece edges, where bulk repetition
must stop before the faulted call, and writes at different steps put content
boundaries inside ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario_builder import scenario_yaml

from cocomem import bulk
from cocomem.engine import BackendRun
from cocomem.registry import load_registry
from cocomem.scenario import parse_scenario

REGISTRY = load_registry()
VENDORS = sorted(name for name, cls in REGISTRY.vendors.items() if cls.confidential)
BACKENDS = sorted(REGISTRY.backends)
UNIT = 2 << 20  # the subblock size: plugs and unplugs are multiples of it


@st.composite
def fault(draw: st.DrawFn, vendor: str) -> dict:
    calls = REGISTRY.vendors[vendor].fault_calls
    call = draw(st.sampled_from(sorted(calls)))
    # around the edges of 2 MiB of 4K calls, of a 64-entry descriptor, and small
    nth = draw(st.one_of(st.integers(1, 12), st.integers(1, 6).map(lambda k: 512 * k),
                         st.integers(1, 6).map(lambda k: 513 * k + 1),
                         st.integers(1, 4000)))
    return {"call": call, "nth": nth, "status": draw(st.sampled_from(calls[call])),
            "count": draw(st.integers(1, 2))}


STEP = st.one_of(
    st.integers(1, 24).map(lambda n: {"plug": n * UNIT}),
    st.integers(1, 24).map(lambda n: {"unplug": n * UNIT}),
    st.sampled_from([{"use": "all"}, {"use": 4096}, {"use": 3 << 20}, {"free": "all"},
                     {"free": 1 << 20}, "kexec", "reboot",
                     {"vmm": {"unplug_discards": ["shared", "private"]}},
                     {"vmm": {"mapping_level": "2m"}}, {"offline_block": 0},
                     {"online_block": 0}]),
)


def _clamped(steps: list, region: int = 128 << 20) -> list:
    """Plugs and unplugs kept within the region."""
    out, requested = [], 0
    for step in steps:
        if isinstance(step, dict) and ("plug" in step or "unplug" in step):
            size = step.get("plug", 0) or -step["unplug"]
            size = max(-requested, min(size, region - requested))
            if not size:
                continue
            requested += size
            step = {"plug": size} if size > 0 else {"unplug": -size}
        out.append(step)
    return out


def _outcome(vendor: str, backend: str, text: str, enabled: bool) -> dict:
    bulk.ENABLED = enabled
    try:
        loaded = parse_scenario(text, "<bulk>", set(REGISTRY.vendors))
        run = BackendRun(loaded, REGISTRY, backend, vendor)
        result = run.run()
    finally:
        bulk.ENABLED = True
    return {
        "verdict": result.verdict,
        "violations": result.violations,
        "counters": result.counters,
        "host": [m.to_list() for m in run.host.page_maps],
        "guest": [run.driver.page.to_list(), run.unaccepted.unaccepted.to_list(),
                  run.unaccepted.plugged.to_list()],
        "calls": dict(run.faults.calls),
        "host_bytes": result.host_bytes,
    }


@pytest.mark.parametrize("vendor", VENDORS)
@settings(max_examples=50)
@given(data=st.data())
def test_bulk_repetition_changes_nothing_but_time(vendor: str, data: st.DataObject):
    backend = data.draw(st.sampled_from(BACKENDS), label="backend")
    steps = _clamped(data.draw(st.lists(STEP, min_size=1, max_size=8), label="steps"))
    text = scenario_yaml(
        steps, vendor=vendor, region="128MiB", memory_block="32MiB",
        mapping=data.draw(st.sampled_from(("4k", "2m")), label="mapping"),
        memory=data.draw(st.sampled_from(("start-private", "start-shared")), label="memory"),
        accept_memory=data.draw(st.sampled_from(("lazy", "eager")), label="accept"),
        faults=data.draw(st.lists(fault(vendor), max_size=2), label="faults"),
        usable_extent="32MiB")
    fast = _outcome(vendor, backend, text, True)
    slow = _outcome(vendor, backend, text, False)
    assert fast == slow, (backend, steps)


CHUNK = 4 << 20  # MAX_PAGE_ORDER: lazy acceptance accepts one chunk per top-up
LAZY_STEP = st.one_of(
    st.integers(1, 64).map(lambda n: {"plug": n * UNIT}),
    st.integers(1, 16).map(lambda n: {"unplug": n * UNIT}),
    st.integers(1, 40).map(lambda n: {"use": n * CHUNK + n * 4096}),
    st.sampled_from([{"use": "all"}, {"free": "all"}, {"free": 3 << 20}, "kexec",
                     {"vmm": {"mapping_level": "2m"}}, {"offline_block": 1},
                     {"online_block": 1}]),
)


@pytest.mark.parametrize("vendor", ["tdx", "snp"])
@settings(max_examples=25)
@given(data=st.data())
def test_lazy_use_cycles_in_bulk_change_nothing_but_time(vendor: str, data: st.DataObject):
    """RFC v2's lazy acceptance over many chunks (cocomem.steady applies runs of
    identical top-up + allocation cycles at once): the same outcome as every cycle
    made for real, across writes at different steps, frees, partial plugs and
    faults aimed inside the run of cycles."""
    steps = data.draw(st.lists(LAZY_STEP, min_size=2, max_size=8), label="steps")
    steps = _clamped([{"plug": 96 * UNIT}, *steps], region=256 << 20)
    calls = REGISTRY.vendors[vendor].fault_calls
    faults = data.draw(st.lists(st.fixed_dictionaries({
        "call": st.sampled_from(sorted(calls)),
        "nth": st.integers(1, 40).map(lambda k: 1026 * k + 1) | st.integers(1, 40_000),
        "status": st.just("error"),
    }).map(lambda f: {**f, "status": calls[f["call"]][-1]}), max_size=1), label="faults")
    text = scenario_yaml(
        steps, vendor=vendor, region="256MiB", memory_block="64MiB",
        mapping=data.draw(st.sampled_from(("4k", "2m")), label="mapping"),
        accept_memory="lazy", faults=faults, usable_extent="256MiB")
    fast = _outcome(vendor, "plugged-bitmap", text, True)
    slow = _outcome(vendor, "plugged-bitmap", text, False)
    assert fast == slow, steps


@pytest.mark.parametrize("nth", [None, 20_000, 20_481])
def test_a_fault_inside_a_run_of_cycles_hits_its_call(nth: int | None, monkeypatch):
    """A fault named inside a run of identical lazy-accept cycles: the cycles before
    it are applied at once, the faulted call is made for real (RFC v2 panics on a
    failed accept), and the outcome is the call-by-call one."""
    from cocomem import steady

    applied: list[int] = []
    repeat = steady.SteadyUse.repeat
    monkeypatch.setattr(steady.SteadyUse, "repeat",
                        lambda self, *a: applied.append(repeat(self, *a)) or applied[-1])
    faults = [] if nth is None else [{"call": "tdcall.accept", "nth": nth,
                                      "status": "operand_invalid"}]
    text = scenario_yaml([{"plug": "192MiB"}, {"use": "all"}], region="256MiB",
                         memory_block="64MiB", faults=faults, usable_extent="256MiB")
    fast = _outcome("tdx", "plugged-bitmap", text, True)
    # 1026 calls per chunk at 4K (two 2M SIZE_MISMATCH, then 1024 4K): all but a
    # few of the chunks before the fault are applied at once
    chunks = 48 if nth is None else nth // 1026
    assert sum(applied) >= (chunks - 4) * 1024
    assert fast == _outcome("tdx", "plugged-bitmap", text, False)
    if nth is None:
        assert fast["verdict"] == "ok"
        assert fast["counters"]["tdcall.accept.4k.ok"] == 192 * 256  # every page, once
    else:
        assert fast["verdict"] == "crashed"
        assert fast["calls"]["tdcall.accept"] == nth


BLOCK = 32 << 20  # the memory block size of the block tests: 32 blocks in 1 GiB
BLOCK_STEP = st.one_of(
    st.integers(1, 12).map(lambda n: {"plug": n * BLOCK}),
    st.integers(1, 12).map(lambda n: {"unplug": n * BLOCK}),
    st.integers(1, 40).map(lambda n: {"plug": n * UNIT}),
    st.sampled_from([{"use": "all"}, {"use": 40 << 20}, {"free": "all"}, {"free": 24 << 20},
                     "kexec", {"vmm": {"unplug_discards": ["shared", "private"]}},
                     {"offline_block": 2}, {"online_block": 2}]),
)


@pytest.mark.parametrize("vendor", VENDORS)
@settings(max_examples=20)
@given(data=st.data())
def test_block_rounds_in_bulk_change_nothing_but_time(vendor: str, data: st.DataObject):
    """The driver's plug and unplug loops over many memory blocks (cocomem.blocks
    applies runs of identical rounds at once): the same outcome as every block
    done for real, across data written at different steps, offlined blocks,
    partial blocks and faults aimed at a block's requests or calls."""
    backend = data.draw(st.sampled_from(BACKENDS), label="backend")
    steps = _clamped(data.draw(st.lists(BLOCK_STEP, min_size=1, max_size=6), label="steps"),
                     region=1 << 30)
    calls = {"virtio_mem.plug": ("nack", "busy", "error"),
             "virtio_mem.unplug": ("busy", "error"), **REGISTRY.vendors[vendor].fault_calls}
    call = data.draw(st.sampled_from(sorted(calls)), label="call")
    faults = data.draw(st.lists(st.fixed_dictionaries({
        "call": st.just(call), "nth": st.integers(1, 40) | st.integers(1, 20_000),
        "status": st.sampled_from(calls[call])}), max_size=1), label="faults")
    text = scenario_yaml(
        steps, vendor=vendor, region="1GiB", memory_block="32MiB",
        mapping=data.draw(st.sampled_from(("4k", "2m")), label="mapping"),
        memory=data.draw(st.sampled_from(("start-private", "start-shared")), label="memory"),
        accept_memory=data.draw(st.sampled_from(("lazy", "eager")), label="accept"),
        faults=faults, usable_extent="256MiB")
    assert _outcome(vendor, backend, text, True) == _outcome(vendor, backend, text, False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_block_rounds_are_applied_at_once(backend: str, monkeypatch):
    """Plugging and unplugging 1 GiB in 32 MiB blocks does a few blocks for real and
    the rest at once, with the outcome of every block done for real."""
    from cocomem import blocks

    applied: list[int] = []
    apply = blocks.BlockWatch.apply
    monkeypatch.setattr(blocks.BlockWatch, "apply",
                        lambda self, times: applied.append(times) or apply(self, times))
    text = scenario_yaml([{"plug": "1GiB"}, {"unplug": "1GiB"}], region="1GiB",
                         memory_block="32MiB", usable_extent="256MiB")
    fast = _outcome("tdx", backend, text, True)
    assert fast == _outcome("tdx", backend, text, False)
    if fast["verdict"] != "crashed":
        assert sum(applied) >= 2 * 32 - 6  # plug and unplug, all but a few blocks
        assert fast["counters"]["virtio_mem.plug.ack"] == 32
