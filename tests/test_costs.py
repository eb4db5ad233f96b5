"""Cost profiles, the vCPU model and `cocomem costs` (docs/costs.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import cli

from cocomem.compare import compare
from cocomem.cost import CostEntry, CostProfile, profile_cost, profiles_of
from cocomem.registry import load_registry
from cocomem.scenario import parse_scenario

BASE = """name: t
device: {region_size: 1GiB}
"""


def run(text: str, backend: str = "callbacks"):
    registry = load_registry()
    loaded = parse_scenario(text, "t.yaml", set(registry.vendors))
    return compare(loaded, registry, [backend]).results[backend]


def test_every_profile_entry_names_its_source_and_the_default_comes_first():
    registry = load_registry()
    for name, cls in registry.vendors.items():
        profiles = profiles_of(cls)
        assert profiles[0].costs == {}, name  # the default is the vendor's table itself
        for profile in profiles:
            assert profile.source, (name, profile.name)
            for entry in profile.costs.values():
                assert entry.source
    tdx = {p.name: p for p in profiles_of(registry.vendors["tdx"])}
    assert list(tdx)[:3] == ["shutemov-2024", "dstack", "eatmemory-miao"]
    assert not tdx["asterinas"].in_range and tdx["asterinas"].note


class Fake:
    cost_table = {"a": CostEntry(us=1.0, source="x")}
    cost_profiles = (CostProfile(name="p", source="x", serial_share=0.5),)


def test_parallel_work_takes_the_larger_of_its_share_and_the_bottleneck():
    profile = Fake.cost_profiles[0]
    counters = {"a": 100}
    assert profile_cost(counters, Fake, profile, {}, 1, {"a": 100}) == 100
    assert profile_cost(counters, Fake, profile, {}, 4, {"a": 100}) == 50  # the bottleneck
    assert profile_cost(counters, Fake, profile, {}, 2, {"a": 40}) == 60 + 20
    assert profile_cost(counters, Fake, profile, {}, 8, {}) == 100  # one thread: no gain


def test_the_work_queue_stays_one_thread_and_removals_kick_every_vcpu():
    text = BASE + """vmm: {unplug_discards: [shared, private]}
guest: {vcpus: VCPUS}
steps: [{plug: 128MiB}, {use: all}, {unplug: 128MiB}]
"""
    one, eight = (run(text.replace("VCPUS", str(n))) for n in (1, 8))
    removes = one.counters["host.remove.4k"]
    assert removes == 32768
    # callbacks accepts from the work queue: only the removals (tdx_track) cost more
    assert eight.cost_us - one.cost_us == pytest.approx(removes * 7 * 0.5)
    assert 0 < one.cost["assumed_share"] < eight.cost["assumed_share"] <= 1


def test_lazy_acceptance_from_allocations_runs_on_every_vcpu():
    text = BASE + """guest: {accept_memory: lazy, vcpus: VCPUS}
steps: [{plug: 512MiB}, {use: all}]
"""
    one, four = (run(text.replace("VCPUS", str(n)), "plugged-bitmap") for n in (1, 4))
    assert one.counters == four.counters
    assert four.cost_us < 0.7 * one.cost_us
    assert four.cost["vcpus"] == 4


def test_a_scenario_override_applies_to_every_profile_and_is_reported():
    text = BASE + """cost: {"exit.ept_violation": 0.0, "host.aug.4k": 0.0}
steps: [{plug: 128MiB}]
"""
    result = run(text)
    assert result.cost["overrides"] == {"exit.ept_violation": 0.0, "host.aug.4k": 0.0}
    # the profiles differ only in the exit: overridden, they agree
    assert len(set(result.cost["profiles"].values())) == 1
    email = cli("compare", write(text), "--format", "email", "--backend", "callbacks").stdout
    assert "the scenario sets exit.ept_violation = 0 us, host.aug.4k = 0 us" in \
        " ".join(email.split())
    table = cli("compare", write(text), "--backend", "callbacks").stdout
    assert table.splitlines()[-1] == \
        "cost: the scenario sets exit.ept_violation = 0 us, host.aug.4k = 0 us"


def write(text: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "t.yaml"
    path.write_text(text)
    return path


def test_the_range_spans_the_profiles_counted_in_it():
    result = run(BASE + "steps: [{plug: 128MiB}]\n")
    cost = result.cost
    assert cost["profile"] == "shutemov-2024" and cost["us"] == result.cost_us
    assert cost["range_profiles"] == ["shutemov-2024", "dstack"]
    assert cost["range_of"] == ["shutemov-2024", "dstack", "eatmemory-miao"]
    assert cost["profiles"]["dstack-tick-load"] > cost["range_us"][1]  # out of the range
    assert "virtio_mem.*" in cost["assumed"] and "exit.ept_violation" not in cost["assumed"]


@pytest.mark.parametrize("value,message", [("0", "greater than or equal to 1"),
                                           ("true", "valid integer")])
def test_vcpus_is_a_positive_integer(value: str, message: str):
    path = write(BASE + f"guest: {{vcpus: {value}}}\n")
    result = cli("compare", path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"cocomem: error: {path}:3: guest.vcpus: ")
    assert message in result.stderr


def test_costs_prints_every_profile_with_sources():
    out = cli("costs", "--vendor", "tdx").stdout
    for name in ("shutemov-2024", "dstack", "eatmemory-miao", "asterinas"):
        assert f"tdx profile {name} " in out
    assert "exit.ept_violation = 6.3 us *" in out  # dstack's own entry, marked
    assert "[assumption: exit to QEMU per 2 MiB chunk]" in out
    assert "+0.5 us per further vCPU" in out
    one = cli("costs", "--vendor", "tdx", "--profile", "dstack").stdout
    assert "tdx profile dstack (in the range)" in one and "shutemov-2024 (" not in one


def test_costs_json_and_bad_names():
    data = json.loads(cli("costs", "--json").stdout)
    assert set(data) >= {"tdx", "snp", "cca", "none", "_core"}
    entry = data["tdx"]["shutemov-2024"]["costs"]["exit.ept_violation"]
    assert entry["us"] == 0.8 and not entry["assumed"]
    assert data["snp"]["assumed"]["serial_share"] == 1.0
    for args, message in ((["--vendor", "nope"], "unknown vendor 'nope'; known: "),
                          (["--vendor", "snp", "--profile", "dstack"],
                           "unknown cost profile 'dstack'; profiles: snp: assumed")):
        result = cli("costs", *args)
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr.startswith(f"cocomem: error: {message}")
        assert len(result.stderr.splitlines()) == 1


def test_plugins_lists_the_profiles():
    data = json.loads(cli("plugins", "--json").stdout)
    profiles = data["vendors"]["tdx"]["cost_profiles"]
    assert [p["name"] for p in profiles][:2] == ["shutemov-2024", "dstack"]
    assert profiles[1]["costs"]["exit.ept_violation"]["us"] == 6.3
    assert "    cost profile dstack: dstack (" in cli("plugins", "--verbose").stdout
