"""``cocomem compare --baseline OLD.json`` (README "Comparing designs"): per
backend, what changed against a saved ``--format json`` run: the verdict, each
counter that changed as a factor, the cost, pyperf style; in JSON a
``baseline`` key; a file that is not such a run is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import ROOT, cli, in_repo  # noqa: F401 (in_repo: a fixture)

from cocomem.baseline import Change

pytestmark = pytest.mark.usefixtures("in_repo")

SHIPPED = "scenarios/release-fails-halfway.yaml"


@pytest.fixture()
def old(tmp_path: Path) -> Path:
    result = cli("compare", SHIPPED, "--format", "json")
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "old.json"
    path.write_text(result.stdout)
    return path


@pytest.fixture()
def changed(tmp_path: Path) -> Path:
    """The same scenario with the RELEASE failing earlier (call 40, not 101), and no
    expect: (the numbers change)."""
    text = (ROOT / SHIPPED).read_text()
    text = text.replace("nth: 101", "nth: 40")
    path = tmp_path / "v2.yaml"
    path.write_text(text[:text.index("expect:")])
    return path


def test_factors_read_like_pyperf():
    assert Change(99, 38).words("more", "fewer") == "2.61x fewer"
    assert Change(50, 100).words("more", "fewer") == "2.00x more"
    assert Change(1000, 1001).words("dearer", "cheaper") == "1.0010x dearer"
    assert Change(0, 5).words("more", "fewer") == "new"
    assert Change(5, 0).words("more", "fewer") == "gone"
    assert Change(7, 7).words("more", "fewer") == "same"
    assert Change(0, 5).as_dict() == {"old": 0, "new": 5, "factor": None}


def test_against_itself_nothing_changes(old: Path):
    result = cli("compare", SHIPPED, "--baseline", old)
    assert result.exit_code == 0, result.stderr
    section = result.stdout[result.stdout.index(f"against {old} (vendor tdx):"):]
    assert "no counter changed" in section
    for backend in ("mainline", "notifier", "start-shared", "callbacks", "plugged-bitmap"):
        line = next(x for x in section.splitlines() if x.startswith(backend + " "))
        assert line.endswith(": same") and " -> " not in line.split()[1]


def test_counters_and_cost_as_factors(old: Path, changed: Path):
    result = cli("compare", changed, "--baseline", old)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    release = [x.split() for x in lines if "tdcall.release.4k.ok" in x]
    # 99 RELEASEs went through before the fault, now 39 - 1 = 38
    assert ["callbacks", "tdcall.release.4k.ok", "99", "->", "38", "2.61x", "fewer"] in release
    cost = next(x for x in lines if x.startswith("callbacks ") and "ms ->" in x)
    assert cost.split()[1] == "degraded" and cost.endswith("cheaper")


def test_verdict_changes_are_shown_old_to_new(tmp_path: Path, old: Path):
    text = (ROOT / SHIPPED).read_text()
    fixed = tmp_path / "fixed.yaml"
    # without the fault the callbacks design keeps its device
    fixed.write_text(text[:text.index("faults:")] + text[text.index("steps:"):text.index(
        "expect:")])
    data = json.loads(cli("compare", fixed, "--baseline", old, "--format", "json").stdout)
    assert data["results"]["callbacks"]["verdict"] == "ok"  # the stable keys stay
    change = data["baseline"]["results"]["callbacks"]
    assert change["verdict"] == {"old": "degraded", "new": "ok"}
    assert change["counters"]["tdcall.release.4k.operand_busy"] == {
        "old": 1, "new": 0, "factor": 0.0}
    table = cli("compare", fixed, "--baseline", old).stdout
    assert any(x.split()[:4] == ["callbacks", "degraded", "->", "ok"]
               for x in table.splitlines())


def test_several_vendors_each_against_its_own(tmp_path: Path, changed: Path):
    old = tmp_path / "old.json"
    old.write_text(cli("compare", SHIPPED, "--vendor", "tdx", "--vendor", "snp",
                       "--format", "json").stdout)
    data = json.loads(cli("compare", changed, "--vendor", "snp", "--vendor", "tdx",
                          "--baseline", old, "--format", "json").stdout)
    snp, tdx = data["comparisons"]
    assert snp["vendor"] == "snp" and snp["baseline"]["results"]["callbacks"]["counters"] == {}
    assert "tdcall.release.4k.ok" in tdx["baseline"]["results"]["callbacks"]["counters"]
    result = cli("compare", changed, "--vendor", "cca", "--baseline", old)
    assert result.exit_code == 2
    assert "has no run on vendor cca (it has: snp, tdx)" in result.stderr


@pytest.mark.parametrize("content,message", [
    ("{", "not JSON"),
    ('{"scenario": "x"}', "not the output of cocomem compare --format json"),
    ('{"vendor": "tdx", "results": {"callbacks": {"verdict": "ok", "counters": {"a": "b"}}}}',
     "not the output of cocomem compare --format json"),
    (None, "cannot read baseline"),
])
def test_a_bad_baseline_is_one_line_and_exit_2(tmp_path: Path, content: str | None,
                                               message: str):
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    result = cli("compare", SHIPPED, "--baseline", path)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cocomem: error: ")
    assert message in result.stderr
