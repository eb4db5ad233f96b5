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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-examples", type=int, default=None,
                     help="cases per strategy in tests/test_fuzz.py (CI: 60)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("fuzz_examples"):
        import os

        os.environ["COCOMEM_FUZZ"] = str(config.getoption("fuzz_examples"))


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    import sys

    fuzz = sys.modules.get("test_fuzz")
    if fuzz and fuzz.TALLY["cases"]:
        tally = fuzz.TALLY
        terminalreporter.write_line(
            f"fuzz: {tally['cases']} hostile scenarios, no traceback (exit 0: "
            f"{tally['exit 0']}, exit 1: {tally['exit 1']}, exit 2: {tally['exit 2']})")
    from reference import TALLY

    if TALLY["runs"]:
        terminalreporter.write_line(
            f"differential: {TALLY['steps']} steps in {TALLY['runs']} runs "
            f"({TALLY['faults fired']} injected faults fired), engine and "
            f"dense reference identical after each ({TALLY['pages']} page states compared)")
        ops = sorted((k.split(".", 1)[1], v) for k, v in TALLY.items() if k.startswith("step."))
        terminalreporter.write_line("  steps by kind: " + ", ".join(f"{k} {v}" for k, v in ops))
