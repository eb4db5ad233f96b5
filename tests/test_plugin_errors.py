"""A plugin's own error costs only its own part: one line naming the plugin, the
rest of the results printed (vendor, options model, check, report, an installed
plugin that fails to load or names a hook that does not exist), and plugin names
cannot capture scenario keys."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from test_cli import BACKENDS, SHIPPED, VERDICTS, cli, rows

from cocomem import registry as registry_module
from cocomem.errors import PluginError
from cocomem.registry import load_registry

HEAD = """\
from pydantic import BaseModel, model_validator
from cocomem.backend import Backend
from cocomem.checks import Check
from cocomem.hookspecs import hookimpl
from cocomem.report import Report
from cocomem_plugins.tdx import Tdx
"""


def plugin(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(HEAD + body)
    return path


def test_a_check_that_raises_is_left_out_and_named_the_rest_stands(tmp_path: Path):
    path = plugin(tmp_path, "fussy", '''
class Fussy(Check):
    name = "fussy"
    kinds = {"fussy": "unsafe"}
    events = ("guest.access",)

    def on_event(self, event):
        raise KeyError("no such page")


@hookimpl
def register_checks(register):
    register(Fussy)
''')
    result = cli("compare", SHIPPED, "--plugin", path)
    assert result.exit_code == 0, result.stderr
    assert {name: cells[1] for name, cells in rows(result.stdout).items()} == VERDICTS
    lines = result.stderr.splitlines()
    # mainline crashes before its first access is checked by anyone else: every backend
    # that touched memory names the check once
    assert lines and all(line.endswith(
        "check 'fussy' (plugin 'fussy') failed: KeyError: 'no such page'; left out of "
        "this run") for line in lines)
    data = json.loads(cli("compare", SHIPPED, "--plugin", path, "--format", "json").stdout)
    assert data["results"]["callbacks"]["plugin_errors"] == [
        "check 'fussy' (plugin 'fussy') failed: KeyError: 'no such page'; left out of this run"]


def test_a_vendor_whose_constructor_raises_costs_only_its_comparison(tmp_path: Path):
    path = plugin(tmp_path, "shaky", '''
class Shaky(Tdx):
    name = "shaky"

    def __init__(self, *args, **kwargs):
        raise RuntimeError("firmware missing")


@hookimpl
def register_vendors(register):
    register(Shaky)
''')
    result = cli("compare", SHIPPED, "--plugin", path, "--vendor", "tdx", "--vendor", "shaky",
                 "--format", "json")
    assert result.exit_code == 0, result.stderr
    tdx, shaky = json.loads(result.stdout)["comparisons"]
    assert {b: r["verdict"] for b, r in tdx["results"].items()} == VERDICTS
    assert {r["verdict"] for r in shaky["results"].values()} == {"error"}
    assert {r["plugin"] for r in shaky["results"].values()} == {"shaky"}
    assert result.stderr.splitlines() == [
        f"cocomem: backend {b} (plugin 'shaky') failed: RuntimeError: firmware missing"
        for b in BACKENDS]


def test_an_options_model_that_raises_is_the_plugins_error_not_bad_input(tmp_path: Path):
    path = plugin(tmp_path, "picky", '''
class PickyOptions(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _check(cls, data):
        raise TypeError("options model bug")


class Picky(Backend):
    name = "picky"
    Options = PickyOptions


@hookimpl
def register_backends(register):
    register(Picky)
''')
    result = cli("compare", SHIPPED, "--plugin", path)
    assert result.exit_code == 0, result.stderr
    assert rows(result.stdout)["callbacks"][1] == "ok"
    assert result.stderr.splitlines() == [
        "cocomem: backend picky (plugin 'picky') failed: TypeError: options model bug"]


def test_sys_exit_in_a_hook_is_an_error_result_not_an_exit(tmp_path: Path):
    path = plugin(tmp_path, "quitter", '''
import sys


class Quitter(Backend):
    name = "quitter"

    def post_plug(self, start, end):
        sys.exit(0)


@hookimpl
def register_backends(register):
    register(Quitter)
''')
    result = cli("compare", SHIPPED, "--plugin", path, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)["results"]
    assert data["quitter"]["verdict"] == "error" and data["quitter"]["plugin"] == "quitter"
    assert data["callbacks"]["verdict"] == "ok"


def test_a_report_that_raises_is_named_and_the_results_follow_as_json(tmp_path: Path):
    path = plugin(tmp_path, "fancy", '''
class Fancy(Report):
    name = "fancy"

    def render(self, comparison):
        raise ValueError("no fonts")


@hookimpl
def register_reports(register):
    register(Fancy)
''')
    result = cli("compare", SHIPPED, "--plugin", path, "--format", "fancy")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "cocomem: report 'fancy' (plugin 'fancy') failed: ValueError: no fonts; "
        "the results follow as JSON"]
    data = json.loads(result.stdout)
    assert {b: r["verdict"] for b, r in data["results"].items()} == VERDICTS


@pytest.mark.parametrize("name", ["device", "steps", "expect", "vendor_options"])
def test_a_vendor_named_like_a_scenario_key_is_refused(tmp_path: Path, name: str):
    path = plugin(tmp_path, "greedy", f'''
class Greedy(Tdx):
    name = "{name}"


@hookimpl
def register_vendors(register):
    register(Greedy)
''')
    result = cli("plugins", "--plugin", path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"cocomem: error: plugin 'greedy' ({path}): vendor name '{name}' is a scenario key; "
        f"its options block would capture '{name}:' (rename the vendor)"]


def test_a_vendor_named_like_a_backend_is_refused(tmp_path: Path):
    path = plugin(tmp_path, "twin", '''
class Twin(Tdx):
    name = "callbacks"


@hookimpl
def register_vendors(register):
    register(Twin)
''')
    with pytest.raises(PluginError, match="registers vendor 'callbacks', a name 'callbacks' "
                                          "gave a backend"):
        load_registry([str(path)])


def _installed(monkeypatch: pytest.MonkeyPatch, *extra: EntryPoint) -> None:
    real = registry_module.installed_entry_points

    def entry_points(group: str):
        return [*real(group=group), *extra]

    monkeypatch.setattr(registry_module, "installed_entry_points", entry_points)


def test_an_installed_plugin_that_fails_to_import_is_left_out_with_one_line(
        monkeypatch: pytest.MonkeyPatch):
    _installed(monkeypatch, EntryPoint("broken", "cocomem_no_such_module", "cocomem"))
    registry = load_registry()
    assert registry.errors == ["plugin 'broken' failed to import: ModuleNotFoundError: "
                               "No module named 'cocomem_no_such_module'; left out"]
    assert "callbacks" in registry.backends
    result = cli("compare", SHIPPED)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "cocomem: plugin 'broken' failed to import: ModuleNotFoundError: "
        "No module named 'cocomem_no_such_module'; left out"]
    assert {name: cells[1] for name, cells in rows(result.stdout).items()} == VERDICTS


def test_an_installed_plugin_with_a_hook_that_does_not_exist_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "cocomem_misspelt.py").write_text(HEAD + '''
class Mine(Backend):
    name = "mine"


@hookimpl
def register_backends(register):
    register(Mine)


@hookimpl
def register_check(register):
    pass
''')
    monkeypatch.syspath_prepend(str(tmp_path))
    _installed(monkeypatch, EntryPoint("misspelt", "cocomem_misspelt", "cocomem"))
    registry = load_registry()
    assert registry.errors == [
        "plugin 'misspelt': unknown hook 'register_check'; hooks: register_vendors, "
        "register_backends, register_checks, register_reports; left out"]
    assert "mine" not in registry.backends  # nothing of a refused plugin is kept


def test_email_reproduce_line_keeps_plugins_and_quotes_paths(tmp_path: Path):
    folder = tmp_path / "my plugins"
    folder.mkdir()
    path = plugin(folder, "third", '''
class Third(Backend):
    name = "third"


@hookimpl
def register_backends(register):
    register(Third)
''')
    email = cli("compare", SHIPPED, "--plugin", path, "--format", "email").stdout
    lines = email.splitlines()
    block = email.split("Reproduce:\n", 1)[1].split("\n\n", 1)[0].removeprefix("  $ ")
    words = subprocess.run(["sh", "-c", 'printf "%s\\0" ' + block], capture_output=True,
                           text=True, check=True).stdout.split("\0")
    assert words[words.index("--plugin") + 1] == str(path)  # as the shell reads it back
    # a word longer than a line (this temporary path) is folded where the shell rejoins it
    assert all(len(line) <= 72 for line in lines)
