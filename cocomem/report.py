"""The report layer: a comparison of backends, and the base class of output formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .engine import Result


@dataclass
class Comparison:
    """Every backend's result on one scenario, and whether the expectations held."""

    scenario: str
    scenario_file: str
    vendor: str
    command: str
    results: dict[str, Result]
    expectation_failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"scenario": self.scenario, "vendor": self.vendor,
                "results": {name: r.as_dict() for name, r in self.results.items()}}


class Report:
    """Base class of report plugins: ``render`` turns a comparison into text."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def render(self, comparison: Comparison) -> str:
        raise NotImplementedError
