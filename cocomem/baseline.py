"""``cocomem compare --baseline OLD.json``: what changed against a saved run.

In the manner of pyperf's ``compare_to``: per backend, the verdict change, each
counter that changed as a factor (``2.00x more``), and the estimated cost
(``1.42x dearer``). The old run is a ``--format json`` output of compare, on one
vendor or several; each comparison is set against the old one of its vendor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CocomemError
from .results import Comparison

#: the largest baseline file read (a 64 GiB scenario's JSON is a few KiB)
MAX_BYTES = 64 << 20


@dataclass
class Change:
    """One number, old and new."""

    old: float
    new: float

    @property
    def factor(self) -> float | None:
        """new / old; None when old is 0."""
        return self.new / self.old if self.old else None

    def words(self, more: str, fewer: str) -> str:
        """``2.00x more``, ``1.50x fewer``, ``new``, ``gone`` or ``same``."""
        if self.old == self.new:
            return "same"
        if not self.old:
            return "new"
        if not self.new:
            return "gone"
        factor = self.new / self.old
        ratio, word = (factor, more) if factor > 1 else (1 / factor, fewer)
        return f"{ratio:.{2 if ratio >= 1.01 else 4}f}x {word}"

    def as_dict(self) -> dict[str, Any]:
        factor = self.factor
        return {"old": self.old, "new": self.new,
                "factor": round(factor, 6) if factor is not None else None}


@dataclass
class BackendChange:
    backend: str
    #: (old, new); old None: the backend is not in the baseline, new None: not run now
    verdict: tuple[str | None, str | None]
    cost_us: Change | None = None
    counters: dict[str, Change] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": {"old": self.verdict[0], "new": self.verdict[1]},
                "cost_us": self.cost_us.as_dict() if self.cost_us else None,
                "counters": {name: c.as_dict() for name, c in self.counters.items()}}


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """vendor -> the old comparison object (``{"vendor", "results": {...}}``)."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise CocomemError(f"cannot read baseline {path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise CocomemError(f"baseline {path}: larger than {MAX_BYTES >> 20} MiB")
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno})" if hasattr(exc, "lineno") else ""
        raise CocomemError(f"baseline {path}: not JSON{where}") from None
    items = parsed.get("comparisons", [parsed]) if isinstance(parsed, dict) else None
    if not isinstance(items, list) or not all(_is_comparison(item) for item in items):
        raise CocomemError(f"baseline {path}: not the output of cocomem compare --format json")
    return {item["vendor"]: item for item in items}


def _is_comparison(item: Any) -> bool:
    if not (isinstance(item, dict) and isinstance(item.get("vendor"), str)
            and isinstance(item.get("results"), dict)):
        return False
    return all(isinstance(r, dict) and isinstance(r.get("verdict"), str)
               and isinstance(r.get("counters", {}), dict)
               and all(isinstance(v, int) for v in r.get("counters", {}).values())
               and isinstance(r.get("cost_us", 0), (int, float))
               for r in item["results"].values())


def changes(comparison: Comparison, old: dict[str, Any]) -> list[BackendChange]:
    """Per backend (this run's first, then those only in the baseline)."""
    out = []
    old_results = old["results"]
    for name in [*comparison.results, *(n for n in old_results if n not in comparison.results)]:
        new, was = comparison.results.get(name), old_results.get(name)
        change = BackendChange(name, (was["verdict"] if was else None,
                                      new.verdict if new else None))
        if new is not None and was is not None:
            change.cost_us = Change(float(was.get("cost_us", 0)), float(new.cost_us))
            old_counters = was.get("counters", {})
            for counter in sorted({*old_counters, *new.counters}):
                pair = Change(old_counters.get(counter, 0), new.counters.get(counter, 0))
                if pair.old != pair.new:
                    change.counters[counter] = pair
        out.append(change)
    return out


def _old_for(comparison: Comparison, baseline: dict[str, dict[str, Any]], path: Path) -> dict:
    if comparison.vendor not in baseline:
        raise CocomemError(f"baseline {path} has no run on vendor {comparison.vendor} "
                           f"(it has: {', '.join(sorted(baseline))})")
    return baseline[comparison.vendor]


def _us(us: float) -> str:
    for scale, unit in ((1_000_000, "s"), (1000, "ms")):
        if us >= scale:
            return f"{us / scale:,.2f} {unit}"
    return f"{us:,.1f} us"


def format_changes(comparison: Comparison, rows: list[BackendChange], path: Path) -> str:
    """The plain-text section: a line per backend, then the counters that changed."""
    from tabulate import tabulate

    lines = [f"against {path} (vendor {comparison.vendor}):"]
    table = []
    for row in rows:
        old, new = row.verdict
        verdict = (new if old == new else f"{old or 'not run'} -> {new or 'not run'}")
        cost = ""
        if row.cost_us is not None:
            cost = (f"{_us(row.cost_us.old)} -> {_us(row.cost_us.new)}: "
                    f"{row.cost_us.words('dearer', 'cheaper')}")
        table.append([row.backend, verdict, cost])
    lines += tabulate(table, ["backend", "verdict", "estimated cost"]).splitlines()
    counters = [[row.backend, name, f"{c.old:,.0f} -> {c.new:,.0f}", c.words("more", "fewer")]
                for row in rows for name, c in row.counters.items()]
    if counters:
        lines += ["", "counters that changed:"]
        lines += tabulate(counters, ["backend", "counter", "old -> new", ""],
                          colalign=("left", "left", "right", "left")).splitlines()
    else:
        lines += ["", "no counter changed"]
    return "\n".join(lines)


def with_baseline(text: str, as_json: bool, comparisons: list[Comparison], path: Path) -> str:
    """The compare output ``text`` with what changed against the baseline at ``path``:
    a ``baseline`` key in each comparison's JSON object, or a section per vendor
    after the table."""
    baseline = load_baseline(path)
    found = [changes(c, _old_for(c, baseline, path)) for c in comparisons]
    if as_json:
        data = json.loads(text)
        objects = data["comparisons"] if "comparisons" in data else [data]
        for obj, rows in zip(objects, found, strict=True):
            obj["baseline"] = {"file": str(path),
                               "results": {row.backend: row.as_dict() for row in rows}}
        return json.dumps(data, indent=2, allow_nan=False)
    sections = [format_changes(c, rows, path) for c, rows in zip(comparisons, found,
                                                                   strict=True)]
    return "\n\n".join([text, *sections])
