"""One scenario on several vendors: ``--vendor`` given more than once prints one
comparison per vendor (JSON: ``{"scenario", "comparisons": [...]}``), ``expect:``
can be keyed per vendor, option blocks of several vendors sit side by side, and a
backend whose posted series hooks one platform only does nothing on another."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import BASE, SHIPPED, VERDICTS, cli


def test_vendor_given_twice_prints_one_table_per_vendor():
    result = cli("compare", SHIPPED, "--vendor", "tdx", "--vendor", "none")
    assert result.exit_code == 0, result.stderr
    titles = [line for line in result.stdout.splitlines() if line.startswith("half-plugged")]
    assert titles == ["half-plugged-block (vendor tdx)", "half-plugged-block (vendor none)"]


def test_vendor_given_twice_is_one_json_object_with_a_comparison_each():
    result = cli("compare", SHIPPED, "--vendor", "tdx", "--vendor", "none", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"scenario", "comparisons"}
    assert data["scenario"] == "half-plugged-block"
    tdx, none = data["comparisons"]
    assert (tdx["vendor"], none["vendor"]) == ("tdx", "none")
    assert set(tdx) == set(none) == {"scenario", "vendor", "results"}
    assert {b: r["verdict"] for b, r in tdx["results"].items()} == VERDICTS
    # a guest without memory encryption makes no platform calls
    assert all(not any(n.startswith("tdcall.") for n in r["counters"])
               for r in none["results"].values())
    one = json.loads(cli("compare", SHIPPED, "--vendor", "tdx", "--format", "json").stdout)
    assert set(one) == {"scenario", "vendor", "results"}  # one vendor: the stable shape


def test_expect_keyed_by_vendor_applies_to_that_vendor_only(tmp_path: Path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(BASE + "expect:\n"
                               "  callbacks: {counters: {tdcall.accept.4k.ok: 16384}}\n"
                               "  none:\n"
                               "    callbacks: {verdict: crashed}\n")
    # on tdx: the un-keyed block holds; the none block is not for tdx
    assert cli("compare", scenario).exit_code == 0
    # on none: the un-keyed block (the scenario's vendor's numbers) does not apply
    result = cli("compare", scenario, "--vendor", "none")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "expect failed: none callbacks: verdict ok, expected crashed"]
    both = cli("compare", scenario, "--vendor", "tdx", "--vendor", "none")
    assert both.stderr.splitlines() == [
        "expect failed: none callbacks: verdict ok, expected crashed"]


def test_expect_for_a_vendor_names_its_line_when_the_backend_is_unknown(tmp_path: Path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(BASE + "expect:\n  none:\n    nosuch: {verdict: ok}\n")
    result = cli("compare", scenario)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"cocomem: error: {scenario}:12: expect.none.nosuch: "
                                    "unknown backend 'nosuch'")


def test_several_vendor_option_blocks_each_go_to_their_vendor(tmp_path: Path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(BASE.replace("  - plug: 64MiB\n", "  - plug: 64MiB\n  - unplug: 32MiB\n")
                        + "tdx: {page_release: false}\nnone: {}\n")
    result = cli("compare", scenario, "--backend", "callbacks", "--vendor", "tdx",
                 "--vendor", "none", "--format", "json")
    assert result.exit_code == 0, result.stderr
    tdx, none = json.loads(result.stdout)["comparisons"]
    # page_release: false reaches TDX: tdx_release_memory issues no RELEASE
    assert not any(n.startswith("tdcall.release") for n in tdx["results"]["callbacks"]
                   ["counters"])
    assert none["results"]["callbacks"]["verdict"] == "ok"


def test_a_series_that_hooks_only_tdx_registers_nothing_elsewhere_and_says_so():
    data = json.loads(cli("compare", SHIPPED, "--vendor", "none", "--format", "json").stdout)
    for backend in ("notifier", "callbacks"):
        assert data["results"][backend]["why"].endswith(
            "(the posted series registers nothing on none: it hooks tdx only)")
    assert "registers nothing" not in data["results"]["start-shared"]["why"]


def test_calls_and_exits_columns_add_up_the_vendors_declared_classes():
    result = cli("compare", SHIPPED, "--format", "json")
    data = json.loads(result.stdout)["results"]["callbacks"]["counters"]
    calls = sum(n for name, n in data.items() if name.startswith(("tdcall.", "tdvmcall.")))
    exits = sum(n for name, n in data.items() if name.startswith("exit."))
    table = cli("compare", SHIPPED).stdout
    row = next(line.split() for line in table.splitlines() if line.startswith("callbacks"))
    assert (int(row[3]), int(row[4])) == (calls, exits)


def test_a_fault_on_another_vendors_call_leaves_this_vendor_alone(tmp_path: Path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(BASE + "faults:\n  - {call: tdcall.accept, nth: 1, status: operand_busy}\n")
    result = cli("compare", scenario, "--backend", "start-shared", "--vendor", "tdx",
                 "--vendor", "none", "--format", "json")
    assert result.exit_code == 0, result.stderr
    tdx, none = json.loads(result.stdout)["comparisons"]
    assert tdx["results"]["start-shared"]["counters"]["tdcall.accept.2m.operand_busy"] == 1
    assert none["results"]["start-shared"]["verdict"] == "ok"
