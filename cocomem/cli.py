"""The ``cocomem`` command line."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.exceptions import TyperException

from .cli_common import (
    BackendOpt,
    PluginOpt,
    TimeoutOpt,
    VendorOpt,
    VendorsOpt,
    app,
    fail,
    plugin_registry,
    print_text,
    warn,
)
from .errors import CocomemError

if TYPE_CHECKING:
    from .registry import Registry
    from .results import Comparison, Result
    from .run import Event
    from .scenario import LoadedScenario


def _render(registry: Registry, fmt: str, comparisons: list[Comparison]) -> tuple[str, bool]:
    """The comparisons in ``fmt``; when the report plugin fails, one line naming it
    and the results as JSON instead (nothing is lost). Returns (text, rendered)."""
    report_cls = registry.reports.get(fmt) or registry.reports.get("table")
    if report_cls is not None:
        try:
            return report_cls(fmt).render_many(comparisons), True
        except (Exception, SystemExit) as exc:
            warn(f"{registry.label('report', report_cls.name)} failed: "
                  f"{type(exc).__name__}: {exc}; the results follow as JSON")
    from .results import comparisons_json

    return comparisons_json(comparisons), False


def _command(scenario: Path, backends: list[str], vendors: list[str], fmt: str,
             plugins: list[str], timeout: float | None = None) -> str:
    """The command line that reproduces this comparison, quoted for a shell."""
    words = ["cocomem", "compare", str(scenario)]
    for name in backends:
        words += ["--backend", name]
    for name in vendors:
        words += ["--vendor", name]
    for path in plugins:
        words += ["--plugin", path]
    if timeout is not None:  # a backend it stopped is an error row
        words += ["--timeout", f"{timeout:g}"]
    if fmt != "table":
        words += ["--format", fmt]
    return shlex.join(words)


@app.command("compare")
def compare_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    backend: BackendOpt = [],  # noqa: B006 (typer reads the default)
    vendor: VendorsOpt = [],  # noqa: B006
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (default), email, json, "
                                     "or any tabulate format.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    plugin: PluginOpt = [],  # noqa: B006
    timeout: TimeoutOpt = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Also show what changed "
                                                  "against OLD.json, a saved --format json "
                                                  "run.")] = None,
) -> None:
    """Run every backend through SCENARIO and print one table (one per --vendor).

    Exit status: 0 when every expect: held, 1 when one failed, 2 on bad input.
    """
    from tabulate import tabulate_formats

    from .compare import compare_vendors
    from .output import write_file
    from .scenario import load_scenario

    try:
        registry = plugin_registry(plugin)
        if fmt not in registry.reports and fmt not in tabulate_formats:
            raise CocomemError(f"unknown format {fmt!r}; formats: "
                               f"{', '.join(sorted(registry.reports))} and tabulate's "
                               f"({', '.join(tabulate_formats)})")
        loaded = load_scenario(scenario, set(registry.vendors))
        comparisons = compare_vendors(loaded, registry, backend, vendor,
                                      command=_command(scenario, backend, vendor, fmt, plugin,
                                                       timeout),
                                      timeout=timeout)
        text, rendered = _render(registry, fmt, comparisons)
        if baseline is not None:
            from .baseline import with_baseline

            text = with_baseline(text, fmt == "json" or not rendered, comparisons, baseline)
        if output:
            write_file(output, text + "\n", inputs=[scenario, *map(Path, plugin)])
        else:
            print_text(text)
    except CocomemError as exc:
        raise fail(str(exc)) from None
    failures = [f for c in comparisons for f in c.expectation_failures]
    for comparison in comparisons:
        for result in comparison.results.values():
            if result.error:
                warn(result.error_line())
            for error in result.plugin_errors:
                warn(f"{result.backend}: {error}")
    for failure in failures:
        typer.echo(f"expect failed: {failure}", err=True)
    if not rendered:
        raise typer.Exit(2)
    if failures:
        raise typer.Exit(1)


def _run_one(scenario: Path, backend: str, vendor: str | None,
             plugins: list[str]) -> tuple[LoadedScenario, str, type, Result, list[Event]]:
    """One backend's run with its events; bad input exits 2."""
    from .compare import select, select_vendors
    from .engine import run_backend
    from .scenario import load_scenario

    try:
        registry = plugin_registry(plugins)
        loaded = load_scenario(scenario, set(registry.vendors))
        (name,) = select(loaded, registry, [backend])
        (vendor_name,) = select_vendors(loaded, registry, [vendor] if vendor else [])
        events: list[Event] = []
        result = run_backend(loaded, registry, name, vendor_name, events)
        return loaded, name, registry.vendors[vendor_name], result, events
    except CocomemError as exc:
        raise fail(str(exc)) from None


@app.command("run")
def run_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="The backend to run.")],
    vendor: VendorOpt = None,
    trace: Annotated[bool, typer.Option("--trace", help="Print one line per event.")] = False,
    plugin: PluginOpt = [],  # noqa: B006
) -> None:
    """Run one backend through SCENARIO; with --trace, show every step it took."""
    from .trace import format_event

    loaded, name, vendor_cls, result, events = _run_one(scenario, backend, vendor, plugin)
    lines = []
    if trace:
        for event in events:
            line = format_event(event, loaded.scenario.device.addr, vendor_cls)
            if line:
                lines.append(line)
        lines.append("")
    lines.append(f"{name}: {result.verdict} ({result.why})")
    for v in result.violations:
        lines.append(f"  {v['kind']} at step {v['step']}: {v['start']:#x} size {v['size']:#x}")
    if result.error:
        lines.append(f"  error: {result.error}")
    for counter, value in result.counters.items():
        lines.append(f"  {counter} = {value}")
    print_text("\n".join(lines))


@app.command("explain")
def explain_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="The backend to explain.")],
    vendor: VendorOpt = None,
    plugin: PluginOpt = [],  # noqa: B006
) -> None:
    """For each violation of BACKEND on SCENARIO, the chain of events that led to it."""
    from .explain import format_explanation

    loaded, name, vendor_cls, result, events = _run_one(scenario, backend, vendor, plugin)
    kinds = ", ".join(dict.fromkeys(v["kind"] for v in result.violations)) or "no violations"
    lines = [f"{name}: {result.verdict} ({kinds})"]
    if result.error:
        lines.append(f"  error: {result.error}")
    lines += format_explanation(events, loaded.scenario.device.addr, vendor_cls)
    print_text("\n".join(lines))


@app.command("plugins")
def plugins_cmd(
    plugin: PluginOpt = [],  # noqa: B006
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also each backend's posted "
                                          "revision and departures, each vendor's options, "
                                          "faults and cost table with sources, and the "
                                          "model's assumptions.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Everything, as one JSON object "
                                          "(options as JSON Schema).")] = False,
) -> None:
    """List every plugin: kind, what it provides, version and hooks."""
    from tabulate import tabulate

    from .introspect import plugins_json
    from .model import describe_model

    try:
        registry = plugin_registry(plugin)
    except CocomemError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_text(json.dumps(plugins_json(registry), indent=2, allow_nan=False))
        return
    rows = [[p["name"], ", ".join(p["kinds"]) or "-",
             ", ".join(item.split(":", 1)[1] for item in p["provides"]) or "-",
             p["version"], ", ".join(p["hooks"])] for p in registry.plugin_info()]
    text = tabulate(rows, ["plugin", "kind", "provides", "version", "hooks"])
    if verbose:
        text += "\n\n" + "\n".join(describe_model(registry))
    print_text(text)


@app.command("schema")
def schema_cmd(plugin: PluginOpt = []) -> None:  # noqa: B006
    """Print the scenario file's JSON Schema, with the loaded plugins' option blocks."""
    from .introspect import scenario_schema

    try:
        registry = plugin_registry(plugin)
    except CocomemError as exc:
        raise fail(str(exc)) from None
    print_text(json.dumps(scenario_schema(registry), indent=2, allow_nan=False))


# after the commands above, so `cocomem --help` lists compare first
from . import cli_costs, cli_explore  # noqa: E402,F401 (their commands join the app)


def main() -> None:
    """The ``cocomem`` command: typer's own usage errors are one line too."""
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if message.strip():  # empty after no arguments: the help was printed
            typer.echo(f"cocomem: error: {' '.join(message.split())}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("cocomem: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
