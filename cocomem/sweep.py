"""Parameter sweeps (``cocomem sweep``): one scenario run at every combination of
the values given for some of its keys, a row per point and backend, and a plot
of a counter or the cost against a numeric parameter.

A key is a dotted path into the scenario as written (``vmm.mapping_level``,
``device.block_size``, ``steps.0.plug``, ``tdx.page_release``); each value is
read as YAML (``2m`` is a string, ``4096`` a number, ``true`` a boolean).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CocomemError, ScenarioError
from .parallel import Died, Runner, Spec, loaded
from .results import CALL, EXIT, HOST, REQUEST

#: a parameter: its path, and its values in the order given
Parameter = tuple[str, list[Any]]


def parse_set(text: str) -> Parameter:
    """``PATH=V1,V2,...`` -> (PATH, [values read as YAML])."""
    import yaml

    path, sep, values = text.partition("=")
    if not sep or not path or not values:
        raise CocomemError(f"--set {text!r}: expected PATH=V1,V2,... (like "
                           f"vmm.mapping_level=4k,2m)")
    parsed = []
    for value in values.split(","):
        try:
            item = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            item = None
        if not isinstance(item, (str, int, float, bool)):
            raise CocomemError(f"--set {path}: {value!r} is not a single value")
        parsed.append(item)
    return path, parsed


def set_path(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``raw`` with ``value`` at the dotted ``path``; mappings on the way
    are made, list indices must exist (``steps.0``), and a step's one key is its
    argument (``steps.0.plug``)."""
    out = copy.deepcopy(raw)
    node: Any = out
    parts = path.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise CocomemError(f"--set {path}: {where} is not an item of the scenario "
                                   f"(it has {len(node)})")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise CocomemError(f"--set {path}: {'.'.join(parts[:depth])} holds no keys")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]
    return out


@dataclass
class Point:
    """One combination of values, and each backend's run there."""

    values: dict[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Sweep:
    scenario: str
    vendor: str
    parameters: list[Parameter]
    points: list[Point]


def _summary(result: Any) -> dict[str, Any]:
    if isinstance(result, Died):
        return {"verdict": "error", "kinds": [], "counters": {}, "cost_us": 0.0,
                "calls": 0, "exits": 0, "error": result.message}
    summary = {"verdict": result.verdict,
               "kinds": sorted({v["kind"] for v in result.violations}),
               "counters": result.counters, "cost_us": result.cost_us,
               "calls": result.total(CALL), "exits": result.total(EXIT),
               "requests": result.total(REQUEST), "host": result.total(HOST)}
    if result.error:
        summary["error"] = result.error_line()
    return summary


def sweep_chunk(spec: Spec, items: list[tuple[Spec, str, str]]) -> list[dict[str, Any]]:
    """Worker side: each (point's scenario, backend, vendor) run, summed up."""
    from .explore import run_one

    return [_summary(run_one(point, backend, vendor)) for point, backend, vendor in items]


def point_specs(spec: Spec, parameters: Sequence[Parameter]) -> list[tuple[dict, Spec]]:
    """Every combination of values, with its scenario; a combination the scenario
    does not accept is bad input naming it."""
    import yaml

    from . import yamlin
    from .scenario import parse_scenario

    if not parameters:
        raise CocomemError("give at least one --set PATH=V1,V2,...")
    registry, _ = loaded(spec)
    raw, _ = yamlin.load(spec.text, spec.path)
    out = []
    for combination in itertools.product(*(values for _, values in parameters)):
        values = dict(zip((path for path, _ in parameters), combination, strict=True))
        point = raw
        for path, value in values.items():
            point = set_path(point, path, value)
        text = yaml.safe_dump(point, sort_keys=False)
        words = ", ".join(f"{p}={v}" for p, v in values.items())
        try:
            parsed = parse_scenario(text, spec.path, set(registry.vendors))
        except ScenarioError as exc:
            raise CocomemError(f"--set {words}: {exc.key + ': ' if exc.key else ''}"
                               f"{exc.message}") from None
        point_spec = Spec(text, spec.path, spec.plugins, spec.timeout)
        from .parallel import seed

        seed(point_spec, registry, parsed)
        out.append((values, point_spec))
    return out


def sweep(spec: Spec, parameters: Sequence[Parameter], backends: Sequence[str], vendor: str,
          *, jobs: int = 1, scheduler: str | None = None) -> Sweep:
    """Run every backend at every point."""
    _, scenario = loaded(spec)
    specs = point_specs(spec, parameters)
    items = [(point, b, vendor) for _, point in specs for b in backends]
    with Runner(jobs, scheduler) as runner:
        results = iter(runner.run(sweep_chunk, spec, items, "sweep points"))
    points = []
    for values, _ in specs:
        point = Point(values)
        for b in backends:
            point.results[b] = next(results)
        points.append(point)
    return Sweep(scenario.scenario.name, vendor, list(parameters), points)


# -- output ---------------------------------------------------------------------


def y_value(summary: dict[str, Any], y: str) -> float:
    """The plotted number: the cost in µs, or a counter."""
    return summary["cost_us"] if y == "cost" else summary["counters"].get(y, 0)


def check_y(y: str, vendor_cls: type) -> None:
    """``--y``: ``cost`` or a counter some plugin declares on the vendor."""
    from .engine import counter_classes
    from .results import counter_class

    if y != "cost" and counter_class(y, counter_classes(vendor_cls)) is None:
        raise CocomemError(f"--y {y}: not cost and no loaded plugin declares this counter "
                           f"on vendor {vendor_cls.name}")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def format_table(result: Sweep, y: str | None = None) -> str:
    from tabulate import tabulate

    paths = [path for path, _ in result.parameters]
    headers = [*paths, "backend", "verdict", "violations", "calls", "exits", "cost (ms)"]
    if y and y != "cost":
        headers.append(y)
    rows = []
    for point in result.points:
        for backend, s in point.results.items():
            row = [*(_cell(point.values[p]) for p in paths), backend, s["verdict"],
                   ", ".join(s["kinds"]) or "-", s["calls"], s["exits"],
                   f"{s['cost_us'] / 1000:,.3f}"]
            if y and y != "cost":
                row.append(y_value(s, y))
            rows.append(row)
    title = (f"{result.scenario} (vendor {result.vendor}): "
             f"{len(result.points)} points x {len(result.points[0].results)} backends")
    return title + "\n\n" + tabulate(rows, headers, disable_numparse=True)


def sweep_json(result: Sweep) -> str:
    import json

    data = {"scenario": result.scenario, "vendor": result.vendor,
            "parameters": {path: values for path, values in result.parameters},
            "points": [{"values": p.values, "results": p.results} for p in result.points]}
    return json.dumps(data, indent=2, allow_nan=False)


def _number(value: Any) -> float | None:
    """A parameter value as a number (sizes like ``2MiB`` in bytes), or None."""
    from .units import parse_size

    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(parse_size(value))
    except (ValueError, TypeError):
        return None


def plot(result: Sweep, path: Path, y: str = "cost") -> None:
    """Draw ``y`` against the first numeric parameter, a line per backend (and per
    value of the other parameters); log axes where the values span 50x or more.
    Needs matplotlib (the ``plot`` extra)."""
    if path.suffix not in (".png", ".svg"):
        raise CocomemError(f"--plot {path}: the file must end in .png or .svg")
    try:
        import matplotlib
    except ImportError:
        raise CocomemError("--plot needs matplotlib: pip install 'cocomem[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = [p for p, values in result.parameters
               if all(_number(v) is not None for v in values)]
    if not numeric:
        raise CocomemError("--plot needs a numeric parameter (a number or a size) to draw "
                           "against")
    x_path = numeric[0]
    sizes = any(isinstance(v, str) for v in dict(result.parameters)[x_path])
    #: (backend, the other parameters' values) -> points; colour by backend, dashes by
    #: the other values
    lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for point in result.points:
        others = ", ".join(f"{p}={_cell(v)}" for p, v in point.values.items() if p != x_path)
        for backend, s in point.results.items():
            if s["verdict"] == "error":
                continue
            lines.setdefault((backend, others), []).append(
                (_number(point.values[x_path]), y_value(s, y) / (1000 if y == "cost" else 1)))
    matplotlib.rcParams["svg.hashsalt"] = "cocomem"
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {b: f"C{i}" for i, b in enumerate(dict.fromkeys(b for b, _ in lines))}
    dashes = {o: style for o, style in zip(dict.fromkeys(o for _, o in lines),
                                           itertools.cycle(["-", "--", ":", "-."]))}
    for (backend, others), xy in lines.items():
        xy.sort()
        ax.plot([x for x, _ in xy], [v for _, v in xy], marker="o", color=colours[backend],
                linestyle=dashes[others], label=f"{backend} ({others})" if others else backend)
    xs = [x for xy in lines.values() for x, _ in xy if x > 0]
    ys = [v for xy in lines.values() for _, v in xy if v > 0]
    # log axes once the values span a decade
    if xs and max(xs) / min(xs) >= 10:
        ax.set_xscale("log", base=2 if sizes else 10)
    if ys and max(ys) / min(ys) >= 10:
        ax.set_yscale("log")
    if sizes:
        from matplotlib.ticker import FuncFormatter

        from .units import format_size

        ticks = sorted({x for x in xs})
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_size(int(v))))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel(x_path)
    ax.set_ylabel("estimated cost (ms)" if y == "cost" else y)
    ax.set_title(f"{result.scenario} (vendor {result.vendor})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    metadata = {"Date": None} if path.suffix == ".svg" else {"Software": None}
    try:
        fig.savefig(path, metadata=metadata)
    except OSError as exc:
        raise CocomemError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
