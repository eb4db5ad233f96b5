"""The plugin layer: hooks are documented, built-ins come in through entry points."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import pytest

from cocomem import hookspecs
from cocomem.checks import KINDS
from cocomem.registry import KINDS as PLUGIN_KINDS
from cocomem.registry import load_registry

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "cocomem_spec")]


def test_every_kind_has_a_hook():
    assert sorted(HOOKS) == sorted(f"register_{kind}s" for kind in PLUGIN_KINDS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and "register(" in doc


def test_builtins_are_entry_points_like_third_party_plugins():
    names = {ep.name for ep in entry_points(group="cocomem")}
    assert {"tdx", "none", "mainline", "notifier", "start-shared", "callbacks",
            "checks", "reports"} <= names


def test_without_entry_points_nothing_is_built_in():
    registry = load_registry(entry_points=False)
    assert all(not items for items in registry.items.values())


def test_registry_has_every_builtin(registry):
    assert {"tdx", "none", "snp"} <= set(registry.vendors)
    assert set(registry.backends) == {"mainline", "notifier", "start-shared", "callbacks",
                                      "plugged-bitmap"}
    assert {"table", "email", "json"} <= set(registry.reports)


def test_every_stable_violation_kind_has_a_check_with_its_verdict(registry):
    declared = {}
    for check in registry.checks.values():
        declared.update(check.kinds)
    assert declared == KINDS


def test_plugin_info_names_kind_version_and_hooks(registry):
    info = {row["name"]: row for row in registry.plugin_info()}
    assert info["tdx"]["kinds"] == ["vendor"]
    assert info["tdx"]["hooks"] == ["register_vendors"]
    assert info["callbacks"]["provides"] == ["backend:callbacks"]
    assert info["callbacks"]["version"] == "0.1.0"


def _docs() -> str:
    from pathlib import Path

    docs = Path(__file__).parent.parent / "docs"
    return "\n".join(path.read_text() for path in sorted(docs.rglob("*.md")))


def test_every_assumption_and_departure_is_documented(registry):
    # the docs name each modelling choice, as `cocomem plugins --verbose` does
    from cocomem.model import CORE_ASSUMPTIONS

    doc = _docs()
    names = set(CORE_ASSUMPTIONS)
    for cls in registry.vendors.values():
        names |= set(cls.assumptions)
    for cls in registry.backends.values():
        names |= set(cls.departures)
    missing = sorted(name for name in names if f"**{name}**" not in doc)
    assert missing == []


def test_every_backend_names_its_revision_in_the_docs(registry):
    doc = _docs()
    for name, cls in registry.backends.items():
        assert f"`{name}`" in doc
        if cls.revision is not None:
            assert cls.revision.message_id in doc, name


def test_plugins_json_describes_every_registered_object():
    import json

    from test_cli import cli

    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    tdx = data["vendors"]["tdx"]
    assert tdx["plugin"] == "tdx"
    assert tdx["options"]["properties"]["page_release"] == {
        "default": True, "title": "Page Release", "type": "boolean"}
    assert all(entry["source"] for entry in tdx["cost_table"].values())
    assert tdx["host_words"]["add"] == "host.aug"
    assert tdx["fault_calls"]["tdcall.accept"][0] == "ok"
    callbacks = data["backends"]["callbacks"]
    assert callbacks["revision"]["message_id"] == \
        "<20260604093551.1511079-1-zhenzhong.duan@intel.com>"
    assert callbacks["platforms"] == ["tdx"]
    assert data["backends"]["plugged-bitmap"]["platforms"] is None
    assert data["checks"]["leak"]["kinds"] == {"leak": "degraded"}
    assert "email" in data["reports"]
    assert "boot-memory-1g" in data["core_assumptions"]


def test_plugins_verbose_shows_options_faults_and_costs_with_sources():
    from test_cli import cli

    out = cli("plugins", "--verbose").stdout
    assert '    options: {"page_release": {"default": true, "type": "boolean"}}' in out
    assert "    faults: tdvmcall.map_gpa -> ok, retry, invalid_operand, align_error" in out
    assert "    cost exit.map_gpa = 10 us (assumption: exit to QEMU per 2 MiB chunk)" in out


def test_the_plugin_api_is_exported_from_cocomem():
    import cocomem
    from cocomem import backend, checks, hookspecs, host, report, results, run, vendor

    assert cocomem.Vendor is vendor.Vendor and cocomem.Backend is backend.Backend
    assert cocomem.Check is checks.Check and cocomem.Report is report.Report
    assert cocomem.hookimpl is hookspecs.hookimpl and cocomem.HostWords is host.HostWords
    assert cocomem.GuestCrash is run.GuestCrash and cocomem.Result is results.Result
    assert all(getattr(cocomem, name) is not None for name in cocomem.__all__)
    with pytest.raises(AttributeError):
        cocomem.NoSuchThing  # noqa: B018


def test_every_installed_plugin_loads_cleanly(registry):
    # an installed plugin with a hook that does not exist, or one that fails to load,
    # would be left out with a line in ``errors``: none may be
    assert registry.errors == []


def test_a_plugin_module_object_registers_from_code():
    import types

    from cocomem import Backend, hookimpl
    from cocomem.errors import PluginError

    module = types.ModuleType("notebook_backends")

    class InCode(Backend):
        name = "in-code"

    @hookimpl
    def register_backends(register):
        register(InCode)

    module.register_backends = register_backends
    registry = load_registry(modules=[module])
    assert registry.backends["in-code"] is InCode
    assert registry.origin[("backend", "in-code")] == "notebook_backends"
    clash = types.ModuleType("clash")
    clash.register_backends = register_backends
    with pytest.raises(PluginError, match="registers backend 'in-code', already registered"):
        load_registry(modules=[module, clash])
