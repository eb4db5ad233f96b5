"""Run several backends through one scenario, on one or more vendors, and judge
the expectations."""

from __future__ import annotations

from collections.abc import Sequence

from .engine import run_backend, validate_faults
from .errors import ScenarioError
from .registry import Registry
from .results import Comparison, Result
from .scenario import LoadedScenario


def select_vendors(loaded: LoadedScenario, registry: Registry,
                   vendors: Sequence[str] = ()) -> list[str]:
    """The vendors to run: the command line's (in order), else the scenario's."""
    known = ", ".join(sorted(registry.vendors))
    for name in vendors:
        if name not in registry.vendors:
            raise ScenarioError(f"unknown vendor {name!r}; known: {known}",
                                file=loaded.path, key="--vendor")
    s = loaded.scenario
    if s.vendor not in registry.vendors:
        raise loaded.error(("vendor",), f"unknown vendor {s.vendor!r}; known: {known}")
    for name in s.vendor_options:
        if name not in registry.vendors:
            raise loaded.error(("vendor_options", name), f"unknown vendor {name!r}")
    validate_faults(loaded, registry)
    return list(dict.fromkeys(vendors)) or [s.vendor]


def select(loaded: LoadedScenario, registry: Registry,
           backends: Sequence[str] = ()) -> list[str]:
    """The backends to run: command line first, then the scenario, then all."""
    s = loaded.scenario
    known_backends = ", ".join(sorted(registry.backends))
    for name in backends:
        if name not in registry.backends:
            raise ScenarioError(f"unknown backend {name!r}; known: {known_backends}",
                                file=loaded.path, key="--backend")
    for index, name in enumerate(s.backends or ()):
        if name not in registry.backends:
            raise loaded.error(("backends", index),
                               f"unknown backend {name!r}; known: {known_backends}")
    for name in s.expect:
        if name not in registry.backends:
            raise loaded.error(("expect", name), f"unknown backend {name!r}; "
                               f"known: {known_backends}")
    for vendor, block in s.vendor_expect.items():
        for name in block:
            if name not in registry.backends:
                raise loaded.error(("expect", vendor, name), f"unknown backend {name!r}; "
                                   f"known: {known_backends}")
    for name in s.backend_options:
        if name not in registry.backends:
            raise loaded.error(("backend_options", name), f"unknown backend {name!r}")
    if backends:
        return list(backends)
    if s.backends is not None:
        return list(s.backends)
    return sorted(registry.backends, key=lambda n: (registry.backends[n].order, n))


def known_kinds(registry: Registry) -> set[str]:
    kinds = {kind for check in registry.checks.values() for kind in check.kinds}
    return kinds | {kind for vendor in registry.vendors.values() for kind in vendor.kinds}


def _expect_key(loaded: LoadedScenario, vendor: str, backend: str) -> tuple:
    s = loaded.scenario
    if vendor == s.vendor and backend in s.expect and backend not in s.vendor_expect.get(
            vendor, {}):
        return ("expect", backend)
    return ("expect", vendor, backend)


def check_expectations(loaded: LoadedScenario, registry: Registry) -> None:
    """Bad input in ``expect:``: a kind no check or vendor declares, a counter no
    loaded plugin declares on that vendor, a backend the scenario does not run."""
    from .engine import counter_classes
    from .results import counter_class

    s = loaded.scenario
    kinds = known_kinds(registry)
    runs = set(s.backends) if s.backends is not None else set(registry.backends)
    for vendor in {s.vendor, *s.vendor_expect}:
        classes = counter_classes(registry.vendors[vendor])
        for backend, expect in s.expectations(vendor).items():
            key = _expect_key(loaded, vendor, backend)
            if backend not in runs:
                raise loaded.error(key, f"backend {backend!r} does not run in this scenario "
                                   f"(backends: {', '.join(sorted(runs))})")
            for kind in expect.violations or ():
                if kind not in kinds:
                    raise loaded.error(key + ("violations",),
                                       f"unknown violation kind {kind!r}; kinds: "
                                       f"{', '.join(sorted(kinds))}")
            for name in expect.counters:
                if counter_class(name, classes) is None:
                    raise loaded.error(key + ("counters", name),
                                       f"no loaded plugin declares counter {name!r} on "
                                       f"vendor {vendor}")


def expectation_failures(loaded: LoadedScenario, registry: Registry, vendor: str,
                         results: dict[str, Result]) -> list[str]:
    """Every ``expect:`` entry for ``vendor`` that did not hold, as one line each
    (an entry for a backend that was not asked to run is skipped)."""
    failures = []
    s = loaded.scenario
    for backend, expect in s.expectations(vendor).items():
        result = results.get(backend)
        if result is None:
            continue
        label = backend if vendor == s.vendor else f"{vendor} {backend}"
        if expect.verdict is not None and expect.verdict != result.verdict:
            failures.append(f"{label}: verdict {result.verdict}, expected {expect.verdict}")
        if expect.violations is not None:
            got = {v["kind"] for v in result.violations}
            if got != set(expect.violations):
                failures.append(f"{label}: violations {sorted(got) or 'none'}, expected "
                                f"{sorted(expect.violations) or 'none'}")
        for name, value in expect.counters.items():
            if result.counters.get(name, 0) != value:
                failures.append(f"{label}: counter {name} = {result.counters.get(name, 0)}, "
                                f"expected {value}")
    return failures


def compare(loaded: LoadedScenario, registry: Registry, backends: Sequence[str] = (),
            vendor: str | None = None, command: str = "") -> Comparison:
    """Every chosen backend on one vendor (the scenario's by default)."""
    return compare_vendors(loaded, registry, backends, [vendor] if vendor else [],
                           command)[0]


def compare_vendors(loaded: LoadedScenario, registry: Registry, backends: Sequence[str] = (),
                    vendors: Sequence[str] = (), command: str = "",
                    timeout: float | None = None) -> list[Comparison]:
    """One comparison per vendor, each running every chosen backend (each for at
    most ``timeout`` seconds)."""
    chosen = select(loaded, registry, backends)
    run_on = select_vendors(loaded, registry, vendors)
    check_expectations(loaded, registry)
    comparisons = []
    for vendor in run_on:
        results = {name: run_backend(loaded, registry, name, vendor, timeout=timeout)
                   for name in chosen}
        comparisons.append(Comparison(
            scenario=loaded.scenario.name,
            scenario_file=loaded.path,
            vendor=vendor,
            command=command or f"cocomem compare {loaded.path}",
            results=results,
            expectation_failures=expectation_failures(loaded, registry, vendor, results),
            calls_are=registry.vendors[vendor].calls_are,
            scenario_sha256=loaded.sha256,
            settings=loaded.settings(registry.vendors[vendor]),
        ))
    return comparisons
