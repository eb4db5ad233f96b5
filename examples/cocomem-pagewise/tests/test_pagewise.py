"""The example distribution, installed: its entry points make its vendor, backend,
check and report appear in ``cocomem plugins`` and usable with ``--vendor``,
``--backend`` and ``--format``. Run with the distribution installed:

    pip install -e 'examples/cocomem-pagewise[test]' && python -m pytest examples/cocomem-pagewise
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from cocomem import bulk
from cocomem.engine import BackendRun
from cocomem.registry import load_registry
from cocomem.scenario import parse_scenario

SCENARIOS = Path(__file__).parent / "scenarios"
COCOMEM = Path(sys.executable).parent / "cocomem"
PLUGINS = {
    # entry point: (kind, what it provides)
    "pagewise": ("vendor", "pagewise"),
    "callbacks_kexec": ("backend", "callbacks-kexec"),
    "host_within_plugged": ("check", "host-within-plugged"),
    "csv_report": ("report", "csv"),
}


def cocomem(*args: str | Path) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it."""
    return subprocess.run([str(COCOMEM), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_plugins_lists_each_entry_point_with_its_kind_and_version():
    out = cocomem("plugins")
    assert out.returncode == 0, out.stderr
    table = {line.split()[0]: line.split() for line in out.stdout.splitlines()[2:]}
    for name, (kind, provides) in PLUGINS.items():
        assert table[name] == [name, kind, provides, "0.1.0", f"register_{kind}s"]


def test_compare_with_vendor_backend_and_format():
    out = cocomem("compare", SCENARIOS / "pagewise-kexec.yaml", "--vendor", "pagewise",
                  "--backend", "mainline", "--backend", "callbacks-kexec", "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["vendor"], r["backend"], r["verdict"]) for r in rows] == [
        ("pagewise", "mainline", "crashed"), ("pagewise", "callbacks-kexec", "ok")]
    assert rows[1]["violations"] == "host-over-plugged"
    assert rows[1]["calls"] == str(163840 + 294912)


def test_csv_has_one_header_for_several_vendors():
    out = cocomem("compare", SCENARIOS / "pagewise-kexec.yaml", "--vendor", "pagewise",
                  "--vendor", "tdx", "--backend", "callbacks-kexec", "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("scenario,vendor,backend,verdict,")
    assert [line.split(",")[1:4] for line in lines[1:]] == [
        ["pagewise", "callbacks-kexec", "ok"], ["tdx", "callbacks-kexec", "ok"]]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_scenario_expectations_hold(path: Path):
    out = cocomem("compare", path)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


def test_trace_uses_the_vendors_words():
    out = cocomem("run", SCENARIOS / "pagewise-accept-busy.yaml", "--backend", "callbacks-kexec",
                  "--trace")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  PAGEWISE ACCEPT 0x100000000+4KiB -> OK  [pagewise_accept_one]" in lines
    assert "  ... the same again for 98 more 4KiB pieces: 0x100001000+392KiB" in lines
    assert "  PAGEWISE ACCEPT 0x100063000+4KiB -> BUSY  [pagewise_accept_one]" in lines


def test_plugins_verbose_names_the_assumptions_and_departures():
    out = cocomem("plugins", "--verbose")
    assert out.returncode == 0, out.stderr
    assert "pagewise (pagewise-4k-only):" in out.stdout
    assert "departs (release-before-unplug-all):" in out.stdout


SMALL = """\
name: small
vendor: pagewise
device: {region_size: 256MiB, block_size: 2MiB}
guest: {memory_block_size: 32MiB}
steps:
  - plug: 64MiB
  - use: all
  - unplug: 32MiB
  - plug: 32MiB
  - kexec
  - use: all
"""
FAULTS = {"clean": "", "accept": "faults:\n  - {call: pw.accept, nth: 100, status: busy}\n",
          "release": "faults:\n  - {call: pw.release, nth: 700, status: busy}\n"}


def _outcome(registry, loaded, backend: str) -> tuple:
    run = BackendRun(loaded, registry, backend, "pagewise")
    result = run.run()
    assert result.error is None, result.error
    return (result.verdict, result.violations, result.counters, result.host_bytes,
            [runmap.to_list() for runmap in run.host.page_maps])


@pytest.mark.parametrize("faults", FAULTS)
def test_bulk_gives_what_one_call_per_page_gives(faults: str, monkeypatch: pytest.MonkeyPatch):
    """The bulk mechanism's contract, checked on this vendor's pieces: a run with it
    and a run calling every page for real agree on every counter, violation, host
    byte and page state, for every backend."""
    registry = load_registry()
    loaded = parse_scenario(SMALL + FAULTS[faults], "small.yaml", set(registry.vendors))
    for backend in sorted(registry.backends):
        fast = _outcome(registry, loaded, backend)
        monkeypatch.setattr(bulk, "ENABLED", False)  # every piece called for real
        slow = _outcome(registry, loaded, backend)
        monkeypatch.undo()
        assert fast == slow, backend
