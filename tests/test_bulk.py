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


def _clamped(steps: list) -> list:
    """Plugs and unplugs kept within the 128 MiB region."""
    out, requested = [], 0
    for step in steps:
        if isinstance(step, dict) and ("plug" in step or "unplug" in step):
            size = step.get("plug", 0) or -step["unplug"]
            size = max(-requested, min(size, (128 << 20) - requested))
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
