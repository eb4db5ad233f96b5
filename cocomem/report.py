"""The report layer: a comparison of backends, and the base class of output formats."""

from __future__ import annotations

from typing import ClassVar

from .results import Comparison


class Report:
    """Base class of report plugins: ``render`` turns a comparison into text."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def render(self, comparison: Comparison) -> str:
        raise NotImplementedError

    def render_many(self, comparisons: list[Comparison]) -> str:
        """Several vendors' comparisons of one scenario (``--vendor`` given more than
        once): by default each rendered, one after the other."""
        return "\n\n".join(self.render(comparison) for comparison in comparisons)
