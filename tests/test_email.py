"""`--format email` stands alone: a reproduce line that reproduces, the version, the
scenario's hash and settings, violations per kind, assumed costs named, and an
``ok`` that rests on nothing marked (README "Comparing designs")."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from cocomem_plugins.reports import EmailReport
from test_cli import BOOM_PLUGIN, cli, write_plugin

from cocomem import __version__
from cocomem.results import Comparison, Result

SHIPPED = "scenarios/noop-unplug-replug.yaml"


def reproduce(text: str) -> list[str]:
    """The words a shell reads from the pasted lines (as printf prints them)."""
    block = text.split("Reproduce:\n", 1)[1].split("\n\n", 1)[0].removeprefix("  $ ")
    out = subprocess.run(["sh", "-c", 'printf "%s\\0" ' + block], capture_output=True,
                         text=True, check=True).stdout
    return out.split("\0")[:-1]


def test_the_header_names_version_hash_and_settings():
    out = cli("compare", SHIPPED, "--format", "email").stdout
    digest = hashlib.sha256(Path(SHIPPED).read_bytes()).hexdigest()[:16]
    flat = " ".join(out.split())
    assert f"File: {SHIPPED} (sha256 {digest}) Tool: cocomem {__version__}" in flat
    assert ("Settings: vmm memory=start-private discards=shared mapping=4k; guest "
            "blocks=128MiB subblocks=2MiB accept_memory=lazy vcpus=1; tdx page_release=true"
            ) in flat
    assert "[1] Assumed costs, no published figure: exit.map_gpa," in flat
    assert "cocomem costs` prints every entry with its source" in flat
    assert all(len(line) <= 72 for line in out.splitlines())


def test_the_reproduce_line_reproduces_with_plugins_and_odd_paths(tmp_path: Path):
    deep = tmp_path / "my plugins" / ("a-folder-with-a-long-name-" * 3)
    deep.mkdir(parents=True)
    plugin = write_plugin(deep / "boomer's.py", BOOM_PLUGIN)
    out = cli("compare", SHIPPED, "--plugin", plugin, "--backend", "callbacks", "--backend",
              "boom", "--vendor", "tdx", "--timeout", "60", "--format", "email").stdout
    words = reproduce(out)
    assert words == ["cocomem", "compare", SHIPPED, "--backend", "callbacks", "--backend",
                     "boom", "--vendor", "tdx", "--plugin", str(plugin), "--timeout", "60",
                     "--format", "email"]
    again = cli(*words[1:])
    assert again.stdout == out  # the same reply, line for line
    assert all(len(line) <= 72 for line in out.splitlines())


def test_a_long_title_folds_too(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text("name: " + "a-rather-long-scenario-name-" * 4 + "end\n"
                    "device: {region_size: 1GiB}\nsteps: [{plug: 128MiB}, {use: all}]\n")
    out = cli("compare", path, "--format", "email", "--vendor", "tdx", "--vendor", "snp").stdout
    assert all(len(line) <= 72 for line in out.splitlines()), out


def test_violations_are_summarised_per_kind_with_counts():
    many = [{"kind": "double-accept", "step": 3, "start": (4 << 30) + i * (256 << 20),
             "size": 128 << 20, "by": "design"} for i in range(168)]
    result = Result(backend="notifier", verdict="degraded", violations=many,
                    counters={"tdcall.accept.4k.ok": 1})
    comparison = Comparison(scenario="s", scenario_file="s.yaml", vendor="tdx",
                            command="cocomem compare s.yaml --format email",
                            results={"notifier": result})
    out = EmailReport("email").render(comparison)
    lines = [line for line in out.splitlines() if "double-accept" in line]
    assert lines == ["  notifier: double-accept x168 (21.0G in all), first @3: 0x100000000"]
    assert "all of them: --format json" in out


def test_an_ok_that_never_touched_hot_plugged_memory_says_so(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndevice: {region_size: 1GiB}\nsteps: [{plug: 256MiB}]\n")
    out = cli("compare", path, "--format", "email", "-b", "mainline", "-b", "callbacks").stdout
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("mainline")] \
        == [["mainline", "ok*"]]
    flat = " ".join(out.split())
    assert ("mainline (ok*): ok only because no step touched hot-plugged memory; 256 MiB of "
            "online memory is not accepted: the first allocation there kills the guest") in flat
    data = __import__("json").loads(cli("compare", path, "--format", "json").stdout)
    mainline = data["results"]["mainline"]
    assert mainline["verdict"] == "ok"  # the stable name stays; the reason and keys say more
    assert mainline["touched"] is False and mainline["unaccepted_online"] == 256 << 20
    assert "ok only because no step touched hot-plugged memory" in mainline["why"]
    shipped = cli("compare", SHIPPED, "--format", "json").stdout
    assert '"touched": true' in shipped and "ok only because" not in shipped
