"""The cost model: µs per counted event, from the scenario's overrides, the vendor's
table (or one of its named profiles), and the core's table for the counters the
core itself makes; and the time of a run on several vCPUs (docs/costs.md)."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ASSUMED = "assumption"


class CostEntry(BaseModel):
    """µs per counted event, and where the figure comes from ("assumption" if nowhere)."""

    model_config = ConfigDict(frozen=True)
    us: float = Field(ge=0, allow_inf_nan=False)
    source: str
    #: µs added to each event per vCPU beyond the first (an IPI to every vCPU, as
    #: KVM's tdx_track sends on each S-EPT removal)
    per_vcpu: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    @property
    def assumed(self) -> bool:
        return self.source.startswith(ASSUMED)


class CostProfile(BaseModel):
    """A named set of costs: one published measurement, applied over the vendor's
    ``cost_table`` (entries it does not name keep the table's)."""

    model_config = ConfigDict(frozen=True)
    name: str
    #: the measurement, with its link, or "assumption ..."
    source: str
    #: entries that differ from the vendor's cost_table
    costs: dict[str, CostEntry] = {}
    #: the share of the work of parallel paths that is serialised (a lock, the
    #: host), so that N vCPUs take max(work / N, share x work); None: the first
    #: profile's
    serial_share: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    serial_source: str = ""
    #: counted in the range printed beside every estimate (False: a figure from
    #: another guest, firmware, or a pathological host)
    in_range: bool = True
    #: why a profile is left out of the range
    note: str = ""


#: cost rules no source decides (docs/costs.md)
ASSUMPTIONS = {
    "use-runs-on-all-vcpus": "a `use` step allocates from every vCPU at once, so what its "
                             "allocations accept (lazy acceptance) runs in parallel; plug, "
                             "unplug, online, kexec and kdump run on one thread (the "
                             "virtio-mem work queue)",
    "parallel-bottleneck": "parallel work of W us on N vCPUs takes max(W / N, share x W): one "
                           "shared resource (S-EPT entry locks answering OPERAND_BUSY, KVM's "
                           "MMU) holds each event for `share` of its time; published figures "
                           "give N = 1 and N = 4 only, so where the gain stops is the model's",
    "profile-serial-share": "a profile with no vCPU figure of its own uses the first "
                            "profile's serial share",
    "contention-costs-time": "contention changes time, not counts: no OPERAND_BUSY is "
                             "counted for it (KVM retries a busy S-EPT entry itself)",
}

#: the profile of a vendor that names none: its cost table, one thread's worth
DEFAULT_PROFILE = CostProfile(name="default", source=ASSUMED + ": the vendor's cost table",
                              serial_share=1.0,
                              serial_source=ASSUMED + ": no published vCPU scaling")

#: the costs of what the core counts whatever the vendor (QEMU and KVM's generic
#: paths); a vendor's own entry for the same name wins
CORE_COSTS = {
    "virtio_mem.*": CostEntry(us=20.0, source=ASSUMED + ": a virtqueue round trip"),
    "exit.memory_fault": CostEntry(us=10.0, source=ASSUMED + ": an exit to the VMM and "
                                                             "back, per 4 KiB page"),
    "host.convert.*": CostEntry(us=0.1, source=ASSUMED + ": per page"),
}


def _key(name: str, source: Mapping[str, Any]) -> str | None:
    """An exact entry's key, else the longest matching pattern, else None."""
    if name in source:
        return name
    matches = [p for p in source if fnmatchcase(name, p)]
    return max(matches, key=len) if matches else None


def keyed_entry(name: str, tables: list[Mapping[str, Any]]) -> tuple[str | None, Any]:
    """(key, entry) of the first table that has one for ``name`` (a CostEntry, or a
    bare float for a scenario's override); (None, None) when none has."""
    for table in tables:
        key = _key(name, table)
        if key is not None:
            return key, table[key]
    return None, None


def entry_of(name: str, tables: list[Mapping[str, Any]]) -> Any:
    return keyed_entry(name, tables)[1]


def cost_of(name: str, table: Mapping[str, Any], overrides: Mapping[str, float]) -> float:
    """µs for one event ``name``: the scenario's overrides first, then the vendor's
    table, then the core's; in each, an exact entry wins, then the longest matching
    pattern."""
    entry = entry_of(name, [overrides, table, CORE_COSTS])
    return 0.0 if entry is None else float(getattr(entry, "us", entry))


def estimate_cost_us(counters: Mapping[str, int], table: Mapping[str, Any],
                     overrides: Mapping[str, float] = {}) -> float:
    """One thread's µs for ``counters`` (no profile, no vCPUs)."""
    return sum(n * cost_of(name, table, overrides) for name, n in counters.items())


def profiles_of(vendor_cls: type) -> list[CostProfile]:
    """A vendor's profiles, its default first (the vendor's table as it is)."""
    profiles = list(getattr(vendor_cls, "cost_profiles", ()))
    return profiles or [DEFAULT_PROFILE]


def profile_table(vendor_cls: type, profile: CostProfile) -> dict[str, CostEntry]:
    """The vendor's table with the profile's entries over it, then the core's."""
    table = dict(CORE_COSTS)
    table.update(vendor_cls.cost_table)
    table.update(profile.costs)
    return table


def serial_share(vendor_cls: type, profile: CostProfile) -> float:
    if profile.serial_share is not None:
        return profile.serial_share
    first = profiles_of(vendor_cls)[0].serial_share
    return 1.0 if first is None else first


def _event_us(name: str, tables: list[Mapping[str, Any]], vcpus: int) -> tuple[float, Any]:
    entry = entry_of(name, tables)
    if entry is None:
        return 0.0, None
    if isinstance(entry, CostEntry):
        return entry.us + (vcpus - 1) * entry.per_vcpu, entry
    return float(entry), entry


def profile_cost(counters: Mapping[str, int], vendor_cls: type, profile: CostProfile,
                 overrides: Mapping[str, float], vcpus: int = 1,
                 parallel: Mapping[str, int] = {}) -> float:
    """µs of guest time for ``counters`` under ``profile`` on ``vcpus`` vCPUs.

    ``parallel`` holds the counts made where the kernel works on every vCPU at once
    (allocations accepting memory lazily); the rest ran on one thread (the
    virtio-mem work queue). Parallel work of W µs takes max(W / vcpus, share x W)
    (**parallel-bottleneck**): one shared resource (S-EPT entry locks, KVM's MMU)
    holds each event for ``share`` of its time."""
    tables = [overrides, profile_table(vendor_cls, profile)]
    serial = par = 0.0
    for name, n in counters.items():
        us, _ = _event_us(name, tables, vcpus)
        p = min(parallel.get(name, 0), n)
        serial += (n - p) * us
        par += p * us
    if vcpus > 1 and par:
        par = max(par / vcpus, serial_share(vendor_cls, profile) * par)
    return serial + par


def run_cost(counters: Mapping[str, int], vendor_cls: type, scenario: Any,
             facts: Mapping[str, Any] = {}) -> dict[str, Any]:
    """What the reports say of a run's cost: the default profile's estimate (``us``),
    every profile's, the range over the profiles counted in it, the scenario's
    overrides, and the part of the estimate that rests on assumed entries."""
    overrides = dict(scenario.cost)
    vcpus = scenario.guest.vcpus
    parallel = facts.get("parallel_counters", {})
    profiles = profiles_of(vendor_cls)
    by_profile = {p.name: round(profile_cost(counters, vendor_cls, p, overrides, vcpus,
                                             parallel), 3) for p in profiles}
    ranged = [p.name for p in profiles if p.in_range] or [profiles[0].name]
    # ties go to the earlier profile (the default first)
    low = min(ranged, key=lambda name: (by_profile[name], ranged.index(name)))
    high = max(ranged, key=lambda name: (by_profile[name], -ranged.index(name)))
    default = profiles[0]
    tables = [overrides, profile_table(vendor_cls, default)]
    assumed: dict[str, float] = {}
    for name, n in counters.items():
        key, entry = keyed_entry(name, tables)
        us, _ = _event_us(name, tables, vcpus)
        if isinstance(entry, CostEntry) and entry.assumed and us and n:
            assumed[key] = assumed.get(key, 0.0) + n * us
    # one thread's work with the same per-event costs as ``assumed``
    total_serial = profile_cost(counters, vendor_cls, default, overrides, vcpus)
    return {
        "us": by_profile[default.name],
        "profile": default.name,
        "vcpus": vcpus,
        "profiles": by_profile,
        "range_us": [by_profile[low], by_profile[high]],
        "range_profiles": [low, high],
        "range_of": ranged,
        "overrides": overrides,
        # the entries (names or patterns) the estimate used that are assumptions
        "assumed": sorted(assumed),
        # the share of one thread's work that rests on assumed entries
        "assumed_share": round(sum(assumed.values()) / total_serial, 4) if total_serial else 0.0,
    }
