"""Shared fixtures, Hypothesis profiles and the differential test's tally."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from cocomem.registry import Registry, load_registry

# `python -m pytest --hypothesis-profile thorough` for the larger run.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("thorough", max_examples=3000, **_COMMON)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from reference import TALLY

    if TALLY["runs"]:
        terminalreporter.write_line(
            f"differential: {TALLY['steps']} steps in {TALLY['runs']} runs, engine and "
            f"dense reference identical after each ({TALLY['pages']} page states compared)")
