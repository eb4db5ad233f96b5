"""``cocomem sweep`` (docs/explore.md): a scenario run at every combination of
--set values, a row per point and backend, the same numbers as ``compare`` of
the edited scenario, a plot of a counter or the cost, and bad input in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_run import ROOT, cli, in_repo  # noqa: F401 (in_repo: a fixture)

from cocomem.errors import CocomemError
from cocomem.sweep import parse_set, set_path

pytestmark = pytest.mark.usefixtures("in_repo")

SHIPPED = "scenarios/half-plugged-block.yaml"


def test_values_are_read_as_yaml_and_paths_reach_into_lists():
    assert parse_set("vmm.mapping_level=4k,2m") == ("vmm.mapping_level", ["4k", "2m"])
    assert parse_set("tdx.page_release=true,false") == ("tdx.page_release", [True, False])
    assert parse_set("device.block_size=2MiB,4194304") == ("device.block_size",
                                                           ["2MiB", 4194304])
    raw = {"steps": [{"plug": "64MiB"}, {"use": "all"}]}
    assert set_path(raw, "steps.0.plug", "32MiB") == {"steps": [{"plug": "32MiB"},
                                                                {"use": "all"}]}
    assert raw["steps"][0] == {"plug": "64MiB"}  # the original is left alone
    assert set_path({}, "vmm.mapping_level", "2m") == {"vmm": {"mapping_level": "2m"}}
    with pytest.raises(CocomemError, match="steps.5 is not an item of the scenario"):
        set_path(raw, "steps.5.plug", "2MiB")


def test_a_row_per_point_and_backend_with_the_numbers_compare_gives(tmp_path: Path):
    result = cli("sweep", SHIPPED, "--set", "steps.0.plug=32MiB,64MiB", "--set",
                 "vmm.mapping_level=4k,2m", "-b", "callbacks", "-b", "notifier",
                 "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    points = data["points"]
    assert [p["values"] for p in points] == [
        {"steps.0.plug": "32MiB", "vmm.mapping_level": "4k"},
        {"steps.0.plug": "32MiB", "vmm.mapping_level": "2m"},
        {"steps.0.plug": "64MiB", "vmm.mapping_level": "4k"},
        {"steps.0.plug": "64MiB", "vmm.mapping_level": "2m"}]
    edited = tmp_path / "edited.yaml"
    text = (ROOT / SHIPPED).read_text()
    edited.write_text(text.replace("plug: 64MiB", "plug: 32MiB").replace("mapping_level: 4k",
                                                                         "mapping_level: 2m"))
    compared = json.loads(cli("compare", edited, "-b", "callbacks", "-b", "notifier",
                              "--format", "json").stdout)["results"]
    for backend in ("callbacks", "notifier"):
        got = points[1]["results"][backend]
        assert got["verdict"] == compared[backend]["verdict"]
        assert got["counters"] == compared[backend]["counters"]
        assert got["cost_us"] == compared[backend]["cost_us"]
    # 4K mappings: a 2M ACCEPT and 512 4K ACCEPTs per 2 MiB; half the plug, half the calls
    small, large = (points[i]["results"]["callbacks"]["counters"]["tdcall.accept.4k.ok"]
                    for i in (0, 2))
    assert large == 2 * small == 16384
    table = cli("sweep", SHIPPED, "--set", "steps.0.plug=32MiB,64MiB", "-b", "callbacks",
                "--y", "tdcall.accept.4k.ok").stdout.splitlines()
    assert table[2].split()[:3] == ["steps.0.plug", "backend", "verdict"]
    assert table[-1].split()[0] == "64MiB" and table[-1].split()[-1] == "16384"


def test_jobs_give_the_same_rows():
    words = ["sweep", SHIPPED, "--set", "steps.0.plug=16MiB,32MiB,64MiB", "-b", "callbacks",
             "-b", "plugged-bitmap", "--format", "json"]
    assert cli(*words, "--jobs", "2").stdout == cli(*words).stdout


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_plot_draws_the_cost_against_the_numeric_parameter(tmp_path: Path, suffix: str):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"cost{suffix}"
    result = cli("sweep", SHIPPED, "--set", "steps.0.plug=2MiB,16MiB,64MiB", "--set",
                 "vmm.mapping_level=4k,2m", "-b", "callbacks", "--plot", path)
    assert result.exit_code == 0, result.stderr
    data = path.read_bytes()
    if suffix == ".svg":
        text = data.decode()
        assert "callbacks (vmm.mapping_level=4k)" in text and "steps.0.plug" in text
        assert "64MiB" in text  # the size axis speaks in sizes
    else:
        assert data.startswith(b"\x89PNG")


def test_plot_without_matplotlib_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = cli("sweep", SHIPPED, "--set", "steps.0.plug=2MiB,4MiB", "-b", "callbacks",
                 "--plot", tmp_path / "x.png")
    assert result.exit_code == 2
    assert result.stderr == ("cocomem: error: --plot needs matplotlib: pip install "
                             "'cocomem[plot]'\n")


@pytest.mark.parametrize("args,message", [
    (["--set", "vmm.mapping_level"], "expected PATH=V1,V2,..."),
    (["--set", "vmm.mapping_level=1g"], "--set vmm.mapping_level=1g: vmm.mapping_level:"),
    (["--set", "steps.0.plug=3MiB"], "is not a multiple of the subblock size"),
    (["--set", "steps.9.plug=2MiB"], "steps.9 is not an item of the scenario"),
    (["--set", "steps.0.plug=2MiB", "--y", "tdcall.nope"], "--y tdcall.nope: not cost"),
    (["--set", "vmm.memory=start-private,start-shared", "--plot", "x.png"],
     "needs a numeric parameter"),
    (["--set", "steps.0.plug=2MiB", "--plot", "x.pdf"], "must end in .png or .svg"),
    ([], "give at least one --set"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str):
    result = cli("sweep", SHIPPED, "-b", "callbacks", *args)
    assert result.exit_code == 2, result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cocomem: error: ")
    assert message in result.stderr
