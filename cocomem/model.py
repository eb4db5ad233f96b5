"""What the model is: each backend's posted revision and departures, and every
assumption the engine, the vendors and the driver make where no source decides."""

from __future__ import annotations

import json
import textwrap

from . import driver, zone
from .cost import ASSUMPTIONS as COST_ASSUMPTIONS
from .cost import CORE_COSTS
from .registry import Registry

#: assumptions of the core (host, driver, steps); vendors list their own
CORE_ASSUMPTIONS = {
    **zone.ASSUMPTIONS,
    **COST_ASSUMPTIONS,
    "retry-caps": f"within one step the driver retries -EAGAIN at most {driver.EAGAIN_LOOPS} "
                  f"times and lets the retry timer fire at most {driver.RETRY_TIMER_FIRES} "
                  "times (the kernel retries without bound)",
    "migration-leaves-region": "data migrated out of a block (offline, alloc_contig_range) "
                               "leaves the device region; the old frames keep their content",
    "host-pages-zeroed": "a page KVM adds (AUG) or the VMM populates starts zeroed; a "
                         "discarded shared page reads as zero",
    "reset-is-new-td": "a system reset starts a new TD: every private page is gone and the "
                       "EFI unaccepted-memory table is new",
    "map-2m-where-uniform": "KVM maps 2M only where the whole 2 MiB is private, free and has "
                            "no 4K S-EPT table yet",
}


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, 78, initial_indent=indent, subsequent_indent=indent + "  ")


def _compact(model: type) -> str:
    """A plugin's options as one line of JSON Schema (its properties, or none)."""
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    if not props:
        return "none"
    return json.dumps({k: {f: v for f, v in p.items() if f != "title"}
                       for k, p in props.items()}, sort_keys=True)


def describe_model(registry: Registry) -> list[str]:
    lines = ["Backends (the posted code each follows, and where the model departs from it):"]
    for name, cls in sorted(registry.backends.items(), key=lambda i: (i[1].order, i[0])):
        rev = cls.revision
        lines.append(f"  {name}: " + (f'"{rev.subject}", {rev.date}, {rev.message_id}'
                                      if rev else "mainline Linux"))
        if rev and rev.url:
            lines.append(f"    {rev.url}")
        for key, text in cls.departures.items():
            lines += _wrap(f"departs ({key}): {text}", "    ")
    lines.append("Vendors (options, fault-injectable calls, cost table with sources):")
    for name, cls in sorted(registry.vendors.items()):
        lines.append(f"  {name}: {cls.description}")
        lines += _wrap(f"options: {_compact(cls.Options)}", "    ")
        for call, statuses in cls.fault_calls.items():
            lines += _wrap(f"faults: {call} -> {', '.join(statuses)}", "    ")
        for counter, entry in cls.cost_table.items():
            lines += _wrap(f"cost {counter} = {entry.us:g} us ({entry.source})", "    ")
        for profile in cls.cost_profiles[1:]:  # the first is the table above
            lines += _wrap(f"cost profile {profile.name}: {profile.source} "
                           "(`cocomem costs` prints its entries)", "    ")
    lines.append("Core costs (the core's own counters; a vendor's entry overrides):")
    for counter, entry in CORE_COSTS.items():
        lines += _wrap(f"cost {counter} = {entry.us:g} us ({entry.source})", "  ")
    lines.append("Backends' options:")
    for name, cls in sorted(registry.backends.items(), key=lambda i: (i[1].order, i[0])):
        lines += _wrap(f"{name}: {_compact(cls.Options)}", "  ")
    lines.append("Vendors' assumptions:")
    for name, cls in sorted(registry.vendors.items()):
        for key, text in cls.assumptions.items():
            lines += _wrap(f"{name} ({key}): {text}", "  ")
    lines.append("Core assumptions:")
    for key, text in CORE_ASSUMPTIONS.items():
        lines += _wrap(f"{key}: {text}", "  ")
    return lines
