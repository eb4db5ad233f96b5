"""Run several backends through one scenario and judge the expectations."""

from __future__ import annotations

from collections.abc import Sequence

from .engine import Result, run_backend, validate_faults
from .errors import ScenarioError
from .registry import Registry
from .report import Comparison
from .scenario import LoadedScenario


def select(loaded: LoadedScenario, registry: Registry, backends: Sequence[str] = (),
           vendor: str | None = None) -> tuple[list[str], str]:
    """The backends and vendor to run: command line first, then the scenario, then all."""
    s = loaded.scenario
    known_backends = ", ".join(sorted(registry.backends))
    if vendor and vendor not in registry.vendors:
        raise ScenarioError(f"unknown vendor {vendor!r}; known: "
                            f"{', '.join(sorted(registry.vendors))}",
                            file=loaded.path, key="--vendor")
    vendor = vendor or s.vendor
    if vendor not in registry.vendors:
        raise loaded.error(("vendor",), f"unknown vendor {vendor!r}; "
                           f"known: {', '.join(sorted(registry.vendors))}")
    for name in backends:
        if name not in registry.backends:
            raise ScenarioError(f"unknown backend {name!r}; known: {known_backends}",
                                file=loaded.path, key="--backend")
    for index, name in enumerate(s.backends or ()):
        if name not in registry.backends:
            raise loaded.error(("backends", index),
                               f"unknown backend {name!r}; known: {known_backends}")
    if backends:
        chosen = list(backends)
    elif s.backends is not None:
        chosen = list(s.backends)
    else:
        chosen = sorted(registry.backends, key=lambda n: (registry.backends[n].order, n))
    for name in s.expect:
        if name not in registry.backends:
            raise loaded.error(("expect", name), f"unknown backend {name!r}; "
                               f"known: {', '.join(sorted(registry.backends))}")
    for name in s.backend_options:
        if name not in registry.backends:
            raise loaded.error(("backend_options", name), f"unknown backend {name!r}")
    for name in s.vendor_options:
        if name not in registry.vendors:
            raise loaded.error(("vendor_options", name), f"unknown vendor {name!r}")
    validate_faults(loaded, registry.vendors[vendor])
    return chosen, vendor


def known_kinds(registry: Registry) -> set[str]:
    return {kind for check in registry.checks.values() for kind in check.kinds}


def expectation_failures(loaded: LoadedScenario, registry: Registry,
                         results: dict[str, Result]) -> list[str]:
    """Every ``expect:`` entry that did not hold, as one line each."""
    failures = []
    kinds = known_kinds(registry)
    for backend, expect in loaded.scenario.expect.items():
        for kind in expect.violations or ():
            if kind not in kinds:
                raise loaded.error(("expect", backend, "violations"),
                                   f"unknown violation kind {kind!r}; kinds: "
                                   f"{', '.join(sorted(kinds))}")
        result = results.get(backend)
        if result is None:
            continue
        if expect.verdict is not None and expect.verdict != result.verdict:
            failures.append(f"{backend}: verdict {result.verdict}, expected {expect.verdict}")
        if expect.violations is not None:
            got = {v["kind"] for v in result.violations}
            if got != set(expect.violations):
                failures.append(f"{backend}: violations {sorted(got) or 'none'}, expected "
                                f"{sorted(expect.violations) or 'none'}")
        for name, value in expect.counters.items():
            if result.counters.get(name, 0) != value:
                failures.append(f"{backend}: counter {name} = {result.counters.get(name, 0)}, "
                                f"expected {value}")
    return failures


def compare(loaded: LoadedScenario, registry: Registry, backends: Sequence[str] = (),
            vendor: str | None = None, command: str = "") -> Comparison:
    chosen, vendor = select(loaded, registry, backends, vendor)
    results = {name: run_backend(loaded, registry, name, vendor) for name in chosen}
    return Comparison(
        scenario=loaded.scenario.name,
        scenario_file=loaded.path,
        vendor=vendor,
        command=command or f"cocomem compare {loaded.path}",
        results=results,
        expectation_failures=expectation_failures(loaded, registry, results),
    )
