"""Errors a user can fix: they print as one line and exit with code 2."""

from __future__ import annotations


class CocomemError(Exception):
    """Bad input of any kind (scenario, option, plugin)."""


class ScenarioError(CocomemError):
    """A problem in a scenario file, located by file, key path and line."""

    def __init__(self, message: str, *, file: str | None = None,
                 key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.key = key
        self.line = line

    def __str__(self) -> str:
        where = self.file or "<scenario>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class PluginError(CocomemError):
    """A plugin could not be loaded or registered something invalid."""
