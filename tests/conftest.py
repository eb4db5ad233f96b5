"""Shared fixtures, Hypothesis profiles and the differential test's tally."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings

from cocomem.registry import Registry, load_registry

# `python -m pytest --hypothesis-profile thorough` for the larger run.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("thorough", max_examples=3000, **_COMMON)
# the first failing example as found, without minutes of shrinking
settings.register_profile("noshrink", max_examples=500, print_blob=True,
                          phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from reference import TALLY

    if TALLY["runs"]:
        terminalreporter.write_line(
            f"differential: {TALLY['steps']} steps in {TALLY['runs']} runs "
            f"({TALLY['faults fired']} injected faults fired), engine and "
            f"dense reference identical after each ({TALLY['pages']} page states compared)")
        ops = sorted((k.split(".", 1)[1], v) for k, v in TALLY.items() if k.startswith("step."))
        terminalreporter.write_line("  steps by kind: " + ", ".join(f"{k} {v}" for k, v in ops))
