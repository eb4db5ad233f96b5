"""Result types: what one backend's run produced, and a comparison of backends.

A leaf module (it imports nothing of cocomem), so checks, the engine, the
registry and reports can all use these types without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

#: verdicts from best to worst; ``error`` is a backend that could not run.
VERDICTS = ("ok", "degraded", "unsafe", "crashed", "error")

#: counter classes: what the reports' columns add up
CALL = "call"        #: a call the guest issued to the platform (TDCALL, PVALIDATE, RSI ...)
EXIT = "exit"        #: a VM exit, to KVM or on to the VMM
HOST = "host"        #: an action of KVM or the VMM on host memory
REQUEST = "request"  #: a virtio-mem request the driver sent
INFO = "info"        #: a count of something else (descriptor entries ...): in no column
COUNTER_CLASSES = (CALL, EXIT, HOST, REQUEST, INFO)


def expand(pattern: str) -> list[str]:
    """Brace expansion for declaring exact counter names:
    ``expand("tdcall.{accept,release}.4k.ok")`` -> the two names. Exact names (not
    fnmatch patterns) let ``expect:`` tell a misspelt counter from a declared one."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    end = pattern.index("}", start)
    head, tail = pattern[:start], pattern[end + 1:]
    return [head + choice + rest for choice in pattern[start + 1:end].split(",")
            for rest in expand(tail)]


def declare(cls: str, *patterns: str) -> dict[str, str]:
    """``{name: cls}`` for every name the brace ``patterns`` expand to."""
    return {name: cls for pattern in patterns for name in expand(pattern)}


def counter_class(name: str, classes: dict[str, str]) -> str | None:
    """The class of counter ``name`` from declared patterns: an exact entry wins,
    then the longest matching pattern; None when nobody declared it."""
    if name in classes:
        return classes[name]
    matches = [pattern for pattern in classes
               if any(c in pattern for c in "*?[") and fnmatchcase(name, pattern)]
    return classes[max(matches, key=len)] if matches else None


@dataclass
class Result:
    """What ``cocomem compare`` reports for one backend."""

    backend: str
    verdict: str
    violations: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    cost_us: float = 0.0
    host_bytes: dict[str, int] = field(default_factory=lambda: {"peak": 0, "end": 0})
    crashed_at: int | None = None
    error: str | None = None
    #: the violation that decided the verdict, in words
    why: str = ""
    #: counter name patterns -> class (CALL, EXIT, HOST, REQUEST), as the run's
    #: vendor and the core declare them
    counter_classes: dict[str, str] = field(default_factory=dict)
    #: the plugin whose code raised ``error``, when one did
    culprit: str | None = None
    #: plugins whose part failed in this run (a check left out ...), one line each
    plugin_errors: list[str] = field(default_factory=list)
    #: what a reader must know to read this result (a series that registers
    #: nothing on this vendor ...), or empty
    note: str = ""
    #: the cost model's account (cocomem.cost.run_cost): the default profile's
    #: estimate, every profile's, the range, overrides, assumed entries; ``cost_us``
    #: is its ``us``
    cost: dict[str, Any] = field(default_factory=dict)
    #: what the run did that no counter says: ``touched`` (the guest read or wrote
    #: hot-plugged memory), ``unaccepted_online`` (bytes online in the guest that
    #: the first access would die on), ``parallel_counters``
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cost:
            self.cost_us = self.cost["us"]
        caveat = self.caveat()
        if caveat and caveat not in self.why:
            self.why = f"{self.why}; {caveat}" if self.why else caveat

    @property
    def untested(self) -> bool:
        """``ok`` without the guest having shown it: it never touched hot-plugged
        memory, or memory it could allocate would kill it at the first touch."""
        return self.verdict == "ok" and (self.facts.get("touched") is False
                                         or self.facts.get("unaccepted_online", 0) > 0)

    def caveat(self) -> str:
        """Why an ``ok`` says less than it seems, in words (or empty)."""
        if not self.untested:
            return ""
        words = []
        if self.facts.get("touched") is False:
            words.append("ok only because no step touched hot-plugged memory")
        online = self.facts.get("unaccepted_online", 0)
        if online:
            size = f"{online >> 20} MiB" if online >= 1 << 20 else f"{online >> 10} KiB"
            words.append(f"{size} of online memory is not accepted: the first allocation "
                         f"there kills the guest")
        return "; ".join(words)

    def total(self, cls: str) -> int:
        """The sum of the counters of one class (``calls``, ``exits`` ... columns)."""
        return sum(n for name, n in self.counters.items()
                   if counter_class(name, self.counter_classes) == cls)

    def as_dict(self) -> dict[str, Any]:
        data = {"verdict": self.verdict, "violations": self.violations,
                "counters": self.counters, "cost_us": self.cost_us,
                "host_bytes": self.host_bytes, "why": self.why}
        if self.cost:
            data["cost"] = self.cost
        if "touched" in self.facts:
            data["touched"] = self.facts["touched"]
            data["unaccepted_online"] = self.facts.get("unaccepted_online", 0)
        if self.error:
            data["error"] = self.error
        if self.culprit:
            data["plugin"] = self.culprit
        if self.plugin_errors:
            data["plugin_errors"] = self.plugin_errors
        return data

    def error_line(self) -> str:
        """``backend boom (plugin 'boomer') failed: RuntimeError: ...``"""
        who = f" (plugin {self.culprit!r})" if self.culprit else ""
        return f"backend {self.backend}{who} failed: {self.error}"


@dataclass
class Comparison:
    """Every backend's result on one scenario for one vendor, and whether the
    expectations held."""

    scenario: str
    scenario_file: str
    vendor: str
    command: str
    results: dict[str, Result]
    expectation_failures: list[str] = field(default_factory=list)
    #: how the vendor's guest calls are called, for the reports' legends
    calls_are: str = ""
    #: sha256 of the scenario file's text
    scenario_sha256: str = ""
    #: one line of the settings that decide the outcome (LoadedScenario.settings)
    settings: str = ""
    def as_dict(self) -> dict:
        return {"scenario": self.scenario, "vendor": self.vendor,
                "results": {name: r.as_dict() for name, r in self.results.items()}}


def comparisons_json(comparisons: list[Comparison]) -> str:
    """The ``--format json`` text: one comparison's object, or, for several vendors,
    ``{"scenario", "comparisons": [...]}``; never NaN or Infinity."""
    import json

    data = [comparison.as_dict() for comparison in comparisons]
    if len(data) > 1:
        data = [{"scenario": comparisons[0].scenario, "comparisons": data}]
    return json.dumps(data[0], indent=2, allow_nan=False)
