"""``cocomem costs``: every vendor's cost profiles, entry by entry, with sources."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .cli_common import PluginOpt, app, fail, plugin_registry, print_text
from .errors import CocomemError


def _entry(entry: Any) -> dict[str, Any]:
    data = {"us": entry.us, "source": entry.source, "assumed": entry.assumed}
    if entry.per_vcpu:
        data["per_vcpu"] = entry.per_vcpu
    return data


def costs_data(registry: Any, vendor: str | None, profile: str | None) -> dict[str, Any]:
    """{vendor: {profile: {source, serial_share, serial_source, in_range, note,
    costs: {pattern: entry}}}}; unknown names are bad input."""
    from .cost import CORE_COSTS, profile_table, profiles_of, serial_share

    if vendor is not None and vendor not in registry.vendors:
        raise CocomemError(f"unknown vendor {vendor!r}; known: "
                           f"{', '.join(sorted(registry.vendors))}")
    names = [vendor] if vendor else sorted(registry.vendors)
    if profile is not None and not any(profile == p.name for name in names
                                       for p in profiles_of(registry.vendors[name])):
        known = "; ".join(f"{name}: " + ", ".join(p.name for p in
                                                  profiles_of(registry.vendors[name]))
                          for name in names)
        raise CocomemError(f"unknown cost profile {profile!r}; profiles: {known}")
    out: dict[str, Any] = {}
    for name in names:
        cls = registry.vendors[name]
        profiles = profiles_of(cls)
        chosen = [p for p in profiles if profile in (None, p.name)]
        out[name] = {p.name: {
            "default": p is profiles[0],
            "source": p.source,
            "serial_share": serial_share(cls, p),
            "serial_source": p.serial_source or profiles[0].serial_source,
            "in_range": p.in_range,
            "note": p.note,
            "costs": {k: _entry(e) for k, e in profile_table(cls, p).items()},
            "differs": sorted(p.costs),
        } for p in chosen}
    out.setdefault("_core", {k: _entry(e) for k, e in CORE_COSTS.items()})
    return out


def _lines(data: dict[str, Any]) -> list[str]:
    import textwrap

    def wrap(text: str, indent: str) -> list[str]:
        return textwrap.wrap(text, 78, initial_indent=indent, subsequent_indent=indent + "    ",
                             break_long_words=False, break_on_hyphens=False)

    lines: list[str] = []
    for vendor, profiles in data.items():
        if vendor == "_core":
            continue
        for name, p in profiles.items():
            role = "default" if p["default"] else (
                "in the range" if p["in_range"] else f"not in the range: {p['note']}")
            lines.append(f"{vendor} profile {name} ({role})")
            lines += wrap(f"source: {p['source']}", "  ")
            lines += wrap(f"serial share on parallel paths: {p['serial_share']:g} "
                          f"({p['serial_source']})", "  ")
            for pattern, e in p["costs"].items():
                mark = " *" if pattern in p["differs"] else ""
                vcpu = f" +{e['per_vcpu']:g} us per further vCPU" if e.get("per_vcpu") else ""
                lines += wrap(f"{pattern} = {e['us']:g} us{vcpu}{mark}  [{e['source']}]", "  ")
            lines.append("")
    lines.append("* = this profile's own entry; the others are the vendor's table (and the "
                 "core's for virtio_mem.*, exit.memory_fault, host.convert.*). A scenario's "
                 "`cost:` overrides an entry in every profile.")
    return lines


@app.command("costs")
def costs_cmd(
    vendor: Annotated[str | None, typer.Option("--vendor", help="Only this vendor.")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Only this cost "
                                                "profile.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="As one JSON object.")] = False,
    plugin: PluginOpt = [],  # noqa: B006
) -> None:
    """Print each vendor's cost profiles: µs per counted event, each with its source or
    "assumption", the serial share for several vCPUs, and which profile is the default."""

    try:
        registry = plugin_registry(plugin)
        data = costs_data(registry, vendor, profile)
    except CocomemError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_text(json.dumps(data, indent=2, allow_nan=False))
    else:
        print_text("\n".join(_lines(data)))

