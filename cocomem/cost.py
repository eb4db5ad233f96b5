"""The cost model: µs per counted event, from the scenario's overrides, the vendor's
table, and the core's table for the counters the core itself makes."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CostEntry(BaseModel):
    """µs per counted event, and where the figure comes from ("assumption" if nowhere)."""

    model_config = ConfigDict(frozen=True)
    us: float = Field(ge=0, allow_inf_nan=False)
    source: str


_ASSUMED = "assumption"
#: the costs of what the core counts whatever the vendor (QEMU and KVM's generic
#: paths); a vendor's own entry for the same name wins
CORE_COSTS = {
    "virtio_mem.*": CostEntry(us=20.0, source=_ASSUMED + ": a virtqueue round trip"),
    "exit.memory_fault": CostEntry(us=10.0, source=_ASSUMED + ": an exit to the VMM and "
                                                              "back, per 4 KiB page"),
    "host.convert.*": CostEntry(us=0.1, source=_ASSUMED + ": per page"),
}


def cost_of(name: str, table: Mapping[str, Any], overrides: Mapping[str, float]) -> float:
    """µs for one event ``name``: the scenario's overrides first, then the vendor's
    table, then the core's; in each, an exact entry wins, then the longest matching
    pattern."""
    for source in (overrides, table, CORE_COSTS):
        if name in source:
            entry = source[name]
            return float(getattr(entry, "us", entry))
        matches = [p for p in source if fnmatchcase(name, p)]
        if matches:
            entry = source[max(matches, key=len)]
            return float(getattr(entry, "us", entry))
    return 0.0


def estimate_cost_us(counters: Mapping[str, int], table: Mapping[str, Any],
                     overrides: Mapping[str, float] = {}) -> float:
    return sum(n * cost_of(name, table, overrides) for name, n in counters.items())
