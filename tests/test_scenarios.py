"""Every shipped scenario: each built-in backend's verdict, violations and counters
are pinned by the scenario's own ``expect:`` blocks, on the scenario's vendor and
on every vendor it has an ``expect: {vendor: ...}`` block for."""

from __future__ import annotations

from pathlib import Path

import pytest

from cocomem.compare import compare_vendors
from cocomem.scenario import load_scenario

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))
BUILTIN_BACKENDS = {"mainline", "notifier", "start-shared", "callbacks", "plugged-bitmap"}


def test_scenarios_are_shipped():
    assert len(SCENARIOS) >= 5


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_expectations_hold(path, registry):
    loaded = load_scenario(path, set(registry.vendors))
    expect = loaded.scenario.expect
    assert BUILTIN_BACKENDS <= set(expect), "every built-in backend needs an expect: block"
    assert all(e.verdict for e in expect.values()), "every expect: block pins a verdict"
    for vendor, block in loaded.scenario.vendor_expect.items():
        assert BUILTIN_BACKENDS <= set(block), f"expect: {vendor}: needs every built-in backend"
        assert all(e.verdict for e in block.values()), f"expect: {vendor}: pins verdicts"
    vendors = [loaded.scenario.vendor, *loaded.scenario.vendor_expect]
    for comparison in compare_vendors(loaded, registry, vendors=vendors):
        assert comparison.expectation_failures == []
        assert all(r.error is None for r in comparison.results.values())


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_says_what_it_checks(path):
    head = path.read_text().splitlines()[0]
    assert head.startswith("# "), "a scenario opens with the claim it checks and its source"
