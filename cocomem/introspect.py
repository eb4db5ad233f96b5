"""What the loaded plugins and the scenario format are, for ``cocomem plugins
--json``/``--verbose`` and ``cocomem schema``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .registry import Registry
from .scenario import SIZE_SCHEMA, STEP_OPS, Scenario


def options_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A plugin's options as JSON Schema."""
    return model.model_json_schema()


def _vendor(cls: type) -> dict[str, Any]:
    words = cls.host_words
    return {
        "description": cls.description,
        "confidential": cls.confidential,
        "options": options_schema(cls.Options),
        "counters": dict(cls.counters),
        "host_words": {"fault": words.fault, "add": words.add, "remove": words.remove,
                       "demote": words.demote, "keeps_4k_tables": words.keeps_4k_tables},
        "kinds": dict(cls.kinds),
        "fault_calls": {call: list(statuses) for call, statuses in cls.fault_calls.items()},
        "cost_table": {name: {"us": entry.us, "source": entry.source}
                       for name, entry in cls.cost_table.items()},
        "cost_profiles": [profile.model_dump() for profile in cls.cost_profiles],
        "assumptions": dict(cls.assumptions),
        "unaccepted_memory": cls.unaccepted_memory,
    }


def _backend(cls: type) -> dict[str, Any]:
    rev = cls.revision
    return {
        "description": cls.description,
        "options": options_schema(cls.Options),
        "revision": rev.model_dump() if rev else None,
        "departures": dict(cls.departures),
        "platforms": list(cls.platforms) if cls.platforms is not None else None,
        "covers_hotplug_memory": cls.covers_hotplug_memory,
    }


def _check(cls: type) -> dict[str, Any]:
    return {"description": cls.description, "kinds": dict(cls.kinds),
            "events": list(cls.events) if cls.events is not None else None}


def _report(cls: type) -> dict[str, Any]:
    return {"description": cls.description}


_DETAILS = {"vendor": _vendor, "backend": _backend, "check": _check, "report": _report}


def plugins_json(registry: Registry) -> dict[str, Any]:
    """Every plugin and everything it registered, in detail."""
    from .cost import CORE_COSTS
    from .model import CORE_ASSUMPTIONS

    out: dict[str, Any] = {"plugins": registry.plugin_info()}
    for kind, describe in _DETAILS.items():
        out[f"{kind}s"] = {name: {"plugin": registry.origin[(kind, name)], **describe(cls)}
                           for name, cls in sorted(registry.items[kind].items())}
    out["core_assumptions"] = dict(CORE_ASSUMPTIONS)
    out["core_cost_table"] = {name: {"us": entry.us, "source": entry.source}
                              for name, entry in CORE_COSTS.items()}
    out["errors"] = list(registry.errors)
    return out


def _step_schema() -> dict[str, Any]:
    arg_schemas: dict[str, Any] = {
        "plug": SIZE_SCHEMA, "unplug": SIZE_SCHEMA,
        "use": {"anyOf": [SIZE_SCHEMA, {"const": "all"}]},
        "free": {"anyOf": [SIZE_SCHEMA, {"const": "all"}]},
        "offline_block": {"type": "integer", "minimum": 0},
        "online_block": {"type": "integer", "minimum": 0},
        "vmm": {"$ref": "#/$defs/VmmPatch"},
    }
    assert set(arg_schemas) | {"kexec", "kdump", "reboot"} == set(STEP_OPS)
    return {
        "description": "one step: '- plug: 128MiB', '- use: all', '- kexec' ...",
        "anyOf": [{"enum": ["kexec", "kdump", "reboot"]},
                  {"type": "object", "minProperties": 1, "maxProperties": 1,
                   "properties": arg_schemas, "additionalProperties": False}],
    }


def scenario_schema(registry: Registry) -> dict[str, Any]:
    """The scenario file's JSON Schema with the loaded plugins' option blocks: a
    top-level key per vendor (its options), ``backend_options`` per backend, and
    ``expect:`` blocks per backend or per vendor."""
    schema = Scenario.model_json_schema()
    defs = schema.setdefault("$defs", {})
    props = schema["properties"]
    props.pop("vendor_expect", None)
    defs["Step"] = _step_schema()
    schema["title"] = "cocomem scenario"
    backend_props = {}
    for name, cls in sorted(registry.backends.items()):
        sub = options_schema(cls.Options)
        defs.update(sub.pop("$defs", {}))
        backend_props[name] = sub
    props["backend_options"] = {"type": "object", "properties": backend_props,
                                "additionalProperties": False}
    backends = {name: {"$ref": "#/$defs/Expect"} for name in sorted(registry.backends)}
    expect_props: dict[str, Any] = dict(backends)
    for name, cls in sorted(registry.vendors.items()):
        sub = options_schema(cls.Options)
        defs.update(sub.pop("$defs", {}))
        sub["description"] = f"options of vendor {name}: {cls.description}"
        props[name] = sub
        expect_props[name] = {"type": "object", "properties": backends,
                              "additionalProperties": False,
                              "description": f"expectations when run on vendor {name}"}
    props["expect"] = {"type": "object", "properties": expect_props,
                       "additionalProperties": False,
                       "description": "by backend (for the scenario's vendor), or by vendor "
                                      "then backend"}
    props["vendor"] = {"enum": sorted(registry.vendors),
                        "default": Scenario.model_fields["vendor"].default}
    return schema
