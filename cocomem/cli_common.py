"""What every ``cocomem`` command shares: the typer app, the common options, and
one-line errors. The command modules (:mod:`cocomem.cli`,
:mod:`cocomem.cli_costs`, :mod:`cocomem.cli_explore`) register on ``app``; the
model is imported inside each command, so ``cocomem --help`` loads none of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .errors import CocomemError

if TYPE_CHECKING:
    from .registry import Registry

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Compare memory hotplug designs for confidential guests.")

PluginOpt = Annotated[list[str], typer.Option("--plugin", help="Load one more plugin file.")]
BackendOpt = Annotated[list[str], typer.Option("--backend", "-b", help="Backend to run "
                                                "(repeatable; default: the scenario's, or all).")]
VendorOpt = Annotated[str | None, typer.Option("--vendor", help="Override the scenario's vendor.")]
VendorsOpt = Annotated[list[str], typer.Option("--vendor", help="Run on this vendor instead of "
                                               "the scenario's (repeatable: one comparison "
                                               "per vendor).")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", min=0.001, help="Stop a backend's run after SECONDS: its result is an "
    "error, the others still report.")]


def fail(message: str) -> typer.Exit:
    """``cocomem: error: MESSAGE`` on standard error; raise the result (exit 2)."""
    typer.echo(f"cocomem: error: {message}", err=True)
    return typer.Exit(2)


def warn(message: str) -> None:
    typer.echo(f"cocomem: {message}", err=True)


def plugin_registry(plugins: list[str]) -> Registry:
    """Every installed plugin and the ``--plugin`` files; each one that failed is
    named in one line and left out."""
    from .registry import load_registry

    registry = load_registry(plugins)
    for error in registry.errors:
        warn(error)
    return registry


def print_text(text: str) -> None:
    """Print to standard output; a closed pipe or a full disk exits 2 in one line."""
    from .output import print_out

    try:
        print_out(text)
    except CocomemError as exc:
        raise fail(str(exc)) from None
