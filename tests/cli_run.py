"""The ``cocomem`` command run in-process from the repository root, as tests use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cocomem.cli import app

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str | Path) -> Result:
    """``cocomem ARGS``: its result; a traceback (anything but a deliberate exit)
    fails the test, since CliRunner would swallow it."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root (shipped scenarios by relative path)."""
    monkeypatch.chdir(ROOT)
