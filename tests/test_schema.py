"""``cocomem schema``: the scenario JSON Schema, checked in as
docs/scenario.schema.json, fresh, and true of every shipped scenario."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from test_cli import cli

ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = ROOT / "docs" / "scenario.schema.json"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_checked_in_schema_is_what_cocomem_schema_prints():
    result = cli("schema")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(CHECKED_IN.read_text()), \
        "stale: run `cocomem schema > docs/scenario.schema.json`"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_satisfies_the_schema(path: Path):
    schema = json.loads(CHECKED_IN.read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


@pytest.mark.parametrize("text, where", [
    ("name: x\ndevice: {region_size: 1GiB}\nsteps: [{plug: 2 MB}]\n", "steps"),
    ("name: x\ndevice: {region_size: 1GiB}\nsteps: [explode]\n", "steps"),
    ("name: x\ndevice: {region_size: 1GiB}\ntdx: {page_relase: true}\n", "tdx"),
    ("name: x\ndevice: {region_size: 1GiB}\nexpect: {snap: {verdict: ok}}\n", "expect"),
])
def test_the_schema_refuses_what_the_loader_refuses(text: str, where: str):
    schema = json.loads(CHECKED_IN.read_text())
    with pytest.raises(jsonschema.ValidationError) as info:
        jsonschema.validate(yaml.safe_load(text), schema)
    assert info.value.absolute_path[0] == where
