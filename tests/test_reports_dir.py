"""reports/ holds the email and JSON of every shipped scenario as the code computes
them now: regenerate with ``python reports/regenerate.py`` after a change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _regenerate_module():
    spec = importlib.util.spec_from_file_location("regenerate", ROOT / "reports" / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reports_are_fresh(monkeypatch):
    monkeypatch.chdir(ROOT)
    files = _regenerate_module().build()
    scenarios = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert {name.split(".")[0] for name in files} == scenarios | {"README"}
    stale = sorted(name for name, text in files.items()
                   if (ROOT / "reports" / name).read_text() != text)
    assert stale == [], "stale: run `python reports/regenerate.py`"
    for name, text in files.items():
        if name.endswith(".email.txt"):
            assert max(map(len, text.splitlines())) <= 72, name
