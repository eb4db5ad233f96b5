"""Shared fixtures and options."""

from __future__ import annotations

import pytest

from cocomem.registry import Registry, load_registry


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--differential-examples", type=int, default=None,
                     help="Hypothesis examples per differential test (default: the CI profile)")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()
