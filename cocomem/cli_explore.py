"""``cocomem explore`` and ``cocomem sweep``: many runs of one scenario.

Registered on the shared ``app`` (:mod:`cocomem.cli_common`). Like every
command, they import the model inside the command, so ``cocomem --help`` stays
fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .cli_common import (
    BackendOpt,
    PluginOpt,
    VendorOpt,
    app,
    fail,
    plugin_registry,
    print_text,
    warn,
)
from .errors import CocomemError

if TYPE_CHECKING:
    from .parallel import Spec

JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Run on N local worker "
                                      "processes (a worker that dies is reported).")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", help="Run on the Dask distributed cluster at ADDR (tcp://host:8786); "
    "needs the 'dask' extra.")]
RunTimeoutOpt = Annotated[float, typer.Option(
    "--timeout", min=0.001, help="Stop a run after SECONDS: it is reported as an error "
    "outcome.")]


def _spec(scenario: Path, plugins: list[str], timeout: float | None,
          backends: list[str], vendor: str | None) -> tuple[Spec, list[str], str]:
    """The scenario as workers load it, the backends and the vendor to run; bad
    input raises CocomemError."""
    from . import yamlin
    from .compare import select, select_vendors
    from .parallel import Spec, seed
    from .scenario import parse_scenario

    registry = plugin_registry(plugins)
    text = yamlin.read_text(scenario)
    loaded = parse_scenario(text, str(scenario), set(registry.vendors))
    chosen = select(loaded, registry, backends)
    (vendor_name,) = select_vendors(loaded, registry, [vendor] if vendor else [])
    spec = Spec(text, str(scenario), tuple(plugins), timeout)
    seed(spec, registry, loaded)
    return spec, chosen, vendor_name


@app.command("explore")
def explore_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    backend: BackendOpt = [],  # noqa: B006 (typer reads the default)
    vendor: VendorOpt = None,
    pairs: Annotated[bool, typer.Option("--pairs", help="Also make two calls fail in "
                                        "one run.")] = False,
    budget: Annotated[int, typer.Option("--budget", min=1, help="With --pairs: run every "
                                        "pair up to this many per backend, else a sample "
                                        "of this many.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="With --pairs: the seed of the "
                                      "sample.")] = 0,
    jobs: JobsOpt = 1,
    scheduler: SchedulerOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write one reproducing scenario "
                                             "per distinct outcome into DIR.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    ungrouped: Annotated[bool, typer.Option("--ungrouped", help="Fault every call on its "
                                            "own, also the calls the bulk mechanism "
                                            "counted at once (slow; checks the "
                                            "grouping).")] = False,
    timeout: RunTimeoutOpt = 60.0,
    plugin: PluginOpt = [],  # noqa: B006
) -> None:
    """Make every fallible call of SCENARIO fail once, with each of its failure
    statuses, and group what happens by verdict and violations."""
    from .explore import exploration_json, explore, format_table, write_reproducers

    try:
        if fmt not in ("table", "json"):
            raise CocomemError(f"unknown format {fmt!r}; formats: table, json")
        spec, chosen, vendor_name = _spec(scenario, plugin, timeout, backend, vendor)
        exploration = explore(spec, chosen, vendor_name, pairs=pairs, budget=budget,
                              seed=seed, grouped=not ungrouped, jobs=jobs,
                              scheduler=scheduler)
        if out is not None:
            write_reproducers(spec, exploration, out)
    except CocomemError as exc:
        raise fail(str(exc)) from None
    for explored in exploration.backends.values():
        if explored.unfaulted.error:
            warn(explored.unfaulted.error_line())
    print_text(exploration_json(exploration) if fmt == "json" else format_table(exploration))


@app.command("sweep")
def sweep_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    set_: Annotated[list[str], typer.Option("--set", help="PATH=V1,V2,...: run at each value "
                                            "of a scenario key (repeatable: every "
                                            "combination).")] = [],  # noqa: B006
    backend: BackendOpt = [],  # noqa: B006
    vendor: VendorOpt = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw --y against the first "
                                              "numeric parameter into FILE.png or "
                                              "FILE.svg (needs the 'plot' extra).")] = None,
    y: Annotated[str, typer.Option("--y", help="What --plot draws (and the table adds): "
                                   "cost, or a counter name.")] = "cost",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    jobs: JobsOpt = 1,
    scheduler: SchedulerOpt = None,
    timeout: RunTimeoutOpt = 600.0,
    plugin: PluginOpt = [],  # noqa: B006
) -> None:
    """Run SCENARIO at every combination of the --set values: a row per point and
    backend, and optionally a plot."""
    from .sweep import check_y, format_table, parse_set, sweep, sweep_json
    from .sweep import plot as draw

    try:
        if fmt not in ("table", "json"):
            raise CocomemError(f"unknown format {fmt!r}; formats: table, json")
        parameters = [parse_set(text) for text in set_]
        spec, chosen, vendor_name = _spec(scenario, plugin, timeout, backend, vendor)
        from .parallel import loaded

        check_y(y, loaded(spec)[0].vendors[vendor_name])
        result = sweep(spec, parameters, chosen, vendor_name, jobs=jobs, scheduler=scheduler)
        if plot is not None:
            draw(result, plot, y)
    except CocomemError as exc:
        raise fail(str(exc)) from None
    print_text(sweep_json(result) if fmt == "json" else format_table(result, y))

