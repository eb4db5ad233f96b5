"""The cost model: µs per counted event, from the vendor's table and overrides."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any


def cost_of(name: str, table: Mapping[str, Any], overrides: Mapping[str, float]) -> float:
    """µs for one event ``name``: the scenario's overrides first, then the vendor's
    table; in each, an exact entry wins, then the longest matching pattern."""
    for source in (overrides, table):
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
