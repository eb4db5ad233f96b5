"""Built-in output formats: any tabulate format, ``email`` and ``json``."""

from __future__ import annotations

import shlex
import textwrap

from tabulate import tabulate

from cocomem.hookspecs import hookimpl
from cocomem.report import Report
from cocomem.results import CALL, EXIT, REQUEST, Comparison, Result, comparisons_json
from cocomem.units import format_bytes_short

EMAIL_WIDTH = 72


def format_us(us: float) -> str:
    if us < 1000:
        return f"{us:.0f} us"
    if us < 1_000_000:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1_000_000:.2f} s"


def relative_cost(result: Result, results: dict[str, Result]) -> str:
    """pyperf-style: how much dearer than the cheapest backend that did not crash."""
    costs = [r.cost_us for r in results.values() if r.verdict not in ("crashed", "error")]
    best = min(costs, default=0.0)
    if result.verdict in ("crashed", "error") or not best:
        return "-"
    factor = result.cost_us / best
    return "best" if factor < 1.005 else f"{factor:.2f}x"


def kind_label(violation: dict) -> str:
    """A violation's kind, marked when it is the VMM's finding rather than the design's."""
    return violation["kind"] + (" (vmm)" if violation.get("by") == "vmm" else "")


def kinds(result: Result) -> list[str]:
    return list(dict.fromkeys(kind_label(v) for v in result.violations))


def verdict_cell(result: Result) -> str:
    """The verdict, marked ``*`` when an ``ok`` rests on memory never touched."""
    return result.verdict + ("*" if result.untested else "")


_UNITS = ((1_000_000, "s", 2), (1000, "ms", 1), (1, "us", 0))


def format_range(low: float, high: float) -> str:
    """``41.96-134.21 s``: both ends in the unit of the higher."""
    scale, unit, digits = next(u for u in _UNITS if high >= u[0] or u[0] == 1)
    return f"{low / scale:.{digits}f}-{high / scale:.{digits}f} {unit}"


def cost_cell(result: Result) -> str:
    """The default profile's estimate and, when the profiles differ, their range."""
    low, high = result.cost.get("range_us", (result.cost_us, result.cost_us))
    if high - low < 0.005 * max(high, 1e-9):
        return format_us(result.cost_us)
    return f"{format_us(result.cost_us)} ({format_range(low, high)})"


def violation_summary(result: Result) -> list[str]:
    """Per kind: one occurrence as ``kind @step: GPA +size``, several as ``kind xN
    (SIZE in all), first @step: GPA +size``."""
    groups: dict[str, list[dict]] = {}
    for v in result.violations:
        groups.setdefault(kind_label(v), []).append(v)
    items = []
    for label, found in groups.items():
        first = found[0]
        where = f"@{first['step']}: {first['start']:#x} +{format_bytes_short(first['size'])}"
        if len(found) == 1:
            items.append(f"{label} {where}")
        else:
            total = format_bytes_short(sum(v["size"] for v in found))
            items.append(f"{label} x{len(found)} ({total} in all), first {where}")
    return items



def _named(calls_are: str) -> str:
    return f" ({calls_are})" if calls_are else ""


class TableReport(Report):
    name = "table"
    description = "one row per backend, in any tabulate format (--format grid, github, ...)"

    def render(self, comparison: Comparison) -> str:
        rows = []
        for name, r in comparison.results.items():
            rows.append([name, verdict_cell(r), ", ".join(kinds(r)) or "-", r.total(CALL),
                         r.total(EXIT), r.total(REQUEST), cost_cell(r),
                         relative_cost(r, comparison.results),
                         format_bytes_short(r.host_bytes["peak"]),
                         format_bytes_short(r.host_bytes["end"])])
        headers = ["backend", "verdict", "violations", "calls", "exits", "requests",
                   "cost", "vs best", "host peak", "host end"]
        fmt = "simple" if self.fmt == "table" else self.fmt
        title = f"{comparison.scenario} (vendor {comparison.vendor})"
        text = title + "\n\n" + tabulate(rows, headers, tablefmt=fmt, disable_numparse=True)
        marked = [f"* {name}: {r.caveat()}" for name, r in comparison.results.items()
                  if r.untested]
        overrides = next((r.cost["overrides"] for r in comparison.results.values()
                          if r.cost.get("overrides")), {})
        if overrides:
            marked.append("cost: the scenario sets " + ", ".join(
                f"{k} = {v:g} us" for k, v in overrides.items()))
        return "\n".join([text, *marked])


def shell_lines(command: str, width: int = EMAIL_WIDTH) -> list[str]:
    """``$ command``, its words quoted by shlex, folded with backslashes so every line
    fits and still pastes: "--option value" stays on one line when it fits one, and
    a word longer than a line is cut where the shell joins it again."""
    groups: list[list[str]] = []
    for word in map(shlex.quote, shlex.split(command)):
        if groups and groups[-1][0].startswith("--") and len(groups[-1]) == 1 \
                and not word.startswith("--"):
            groups[-1].append(word)
        else:
            groups.append([word])
    indent = "     "
    words = []
    for group in groups:
        pair = " ".join(group)
        fits = len(indent) + 1 + len(pair) <= width - 2
        words += [pair] if fits or len(group) == 1 else group
    lines, line = [], "  $"
    for word in words:
        if len(line) + 1 + len(word) > width - 2 and line != "  $":
            lines.append(line + " \\")
            line = indent
        start = len(line) + 1
        line += " " + word
        while len(line) > width - 2:
            head, rest = _cut(line, start, width - 1)
            if not rest:
                break  # nowhere to cut: the line stays long
            lines.append(head)
            line, start = rest, 0
    return lines + [line]


def _cut(line: str, start: int, room: int) -> tuple[str, str]:
    """Split ``line`` inside its last word (from ``start``), which is too long: the
    shell drops a backslash-newline, so the word goes on in column 0; inside single
    quotes the quote is closed before the backslash and opened again after it
    (adjacent quoted strings are one word). Never next to a quote character."""
    for cut in range(room - 1, start + 1, -1):
        if any(c in "'\"" for c in line[cut - 2:cut + 2]):
            continue
        quote = _open_quote(line[start:cut])
        if quote is None:
            return line[:cut] + "\\", line[cut:]
        if quote == "'":
            return line[:cut] + "'\\", "'" + line[cut:]
    return line, ""


def _open_quote(text: str) -> str | None:
    """The quote still open at the end of ``text`` (shell rules, no escapes: what
    shlex.quote writes), or None."""
    quote = None
    for char in text:
        if quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
    return quote


class EmailReport(Report):
    name = "email"
    description = ("plain text for a mailing-list reply: at most 72 columns; the command, "
                   "version, scenario hash and settings, so it stands alone")

    def render(self, comparison: Comparison) -> str:
        return self.render_many([comparison])

    def render_many(self, comparisons: list[Comparison]) -> str:
        """One reply: what ran (scenario, hash, version, settings, the command) once,
        then per vendor its table, costs, violations and notes, then one legend and
        the footnote of assumed costs."""
        from cocomem import __version__

        first = comparisons[0]
        several = len(comparisons) > 1
        title = first.scenario if several else f"{first.scenario} (vendor {first.vendor})"
        out = _wrapped(f"Scenario: {title}")
        digest = f" (sha256 {first.scenario_sha256[:16]})" if first.scenario_sha256 else ""
        out += _wrapped(f"File: {first.scenario_file}{digest}")
        out.append(f"Tool: cocomem {__version__}")
        if not several and first.settings:
            out += _wrapped(f"Settings: {first.settings}")
        out += ["Reproduce:", *shell_lines(first.command), ""]
        for comparison in comparisons:
            if several:
                out += _wrapped(f"Vendor {comparison.vendor}: {comparison.settings}")
                out.append("")
            out += _email_section(comparison)
        calls = "; ".join(f"{c.vendor}: {c.calls_are}" if several else c.calls_are
                          for c in comparisons if c.calls_are)
        out += _wrapped(
            f"calls = guest calls to the platform{_named(calls)}; exits = VM exits; "
            "cost = estimated guest time from the cocomem cost model, the default "
            "profile's, with the range over the published measurements' profiles; "
            "peak/end = host memory backing the device region; (vmm) = the VMM's "
            "finding, no verdict on the design"
            + ("; ok* = ok without the evidence (see Notes)." if any(
                r.untested for c in comparisons for r in c.results.values()) else "."))
        out += _assumed_footnote(comparisons)
        return "\n".join(line.rstrip() for line in out)


def _wrapped(text: str, indent: str = "  ") -> list[str]:
    """``text`` folded to the email's width, continuation lines indented."""
    return textwrap.wrap(text, EMAIL_WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def _all_assumed(cost: dict) -> bool:
    return cost.get("assumed_share", 0.0) >= 0.995 or not cost.get("us")


def _assumed_footnote(comparisons: list[Comparison]) -> list[str]:
    """[1]: the cost entries the estimates used that no published figure gives, per
    vendor when there are several."""
    parts = []
    for c in comparisons:
        costs = [r.cost for r in c.results.values() if r.cost]
        names = sorted({name for cost in costs for name in cost.get("assumed", ())})
        if not names:
            continue
        if all(_all_assumed(cost) for cost in costs):
            listed = "every entry"
        else:
            listed = ", ".join(names)
        parts.append(f"{c.vendor}: {listed}" if len(comparisons) > 1 else listed)
    if not parts:
        return []
    return ["", *_wrapped("[1] Assumed costs, no published figure: " + "; ".join(parts)
                          + ". `cocomem costs` prints every entry with its source.",
                          "    ")]


def _cost_lines(comparison: Comparison) -> list[str]:
    """Each backend's estimate, its range over the profiles, the share of it that
    rests on assumed costs; the profiles and overrides named once."""
    results = list(comparison.results.items())
    costs = [r.cost for _, r in results if r.cost]
    if not costs:
        return []
    info = costs[0]
    vcpus = info.get("vcpus", 1)
    head = f"Cost [1] ({vcpus} vCPU{'s' if vcpus > 1 else ''}): {info['profile']}"
    if len(info["profiles"]) == 1 and all(_all_assumed(c) for c in costs):
        return _wrapped(f"{head}; every entry used on {comparison.vendor} is an assumption "
                        "(no published figure).") + [""]
    ends = {tuple(c["range_profiles"]) for c in costs
            if c["range_us"][1] - c["range_us"][0] >= 0.005 * max(c["range_us"][1], 1e-9)}
    ranged = info.get("range_of", [])
    if len(ranged) > 1 and len(ends) <= 1 and ends:
        low, high = ends.pop()
        head += f"; range {low} to {high}, of {', '.join(ranged)}"
    elif len(ranged) > 1:
        head += f"; range over {', '.join(ranged)} (which per backend: --format json)"
    if info.get("overrides"):
        head += "; the scenario sets " + ", ".join(
            f"{k} = {v:g} us" for k, v in info["overrides"].items())
    lines = _wrapped(head + ":")
    width = max(len(name) for name, _ in results)
    for name, r in results:
        if not r.cost:
            continue
        share = r.cost.get("assumed_share", 0.0)
        assumed = f", {share:.0%} assumed" if share >= 0.005 else ""
        lines.append(f"  {name:<{width}}  {cost_cell(r)}{assumed}")
    return lines + [""]


def _email_section(comparison: Comparison) -> list[str]:
    """One vendor's table, costs, violations (per kind, with counts) and notes, with
    a blank line after."""
    rows = [[name, verdict_cell(r), r.total(CALL), r.total(EXIT),
             format_us(r.cost_us), format_bytes_short(r.host_bytes["peak"]),
             format_bytes_short(r.host_bytes["end"])]
            for name, r in comparison.results.items()]
    table = tabulate(rows, ["backend", "verdict", "calls", "exits", "cost", "peak", "end"],
                     tablefmt="simple", disable_numparse=True,
                     colalign=("left", "left", "right", "right", "right", "right", "right"))
    wrap = textwrap.TextWrapper(width=EMAIL_WIDTH, subsequent_indent="    ",
                                break_on_hyphens=False)
    out = [table, "", *_cost_lines(comparison)]
    listed = [(name, r) for name, r in comparison.results.items() if r.violations or r.error]
    if listed:
        several = any(len(r.violations) > len({v["kind"] for v in r.violations})
                      for _, r in listed)
        out.append("Violations (kind @step: first GPA +size"
                   + ("; all of them: --format json):" if several else "):"))
        for name, r in listed:
            items = violation_summary(r)
            if r.error:
                who = f" (plugin {r.culprit!r})" if r.culprit else ""
                items.append(f"error{who}: {r.error}")
            out.extend(wrap.wrap(f"  {name}: " + "; ".join(items)))
        out.append("")
    notes: dict[str, list[str]] = {}
    for name, r in comparison.results.items():
        if r.note:
            notes.setdefault(r.note, []).append(name)
        if r.untested:
            notes.setdefault(r.caveat(), []).append(f"{name} (ok*)")
    if notes:
        out.append("Notes:")
        for note, names in notes.items():
            out.extend(wrap.wrap(f"  {', '.join(names)}: {note}"))
        out.append("")
    return out


class JsonReport(Report):
    name = "json"
    description = "one JSON object, for scripts"

    def render(self, comparison: Comparison) -> str:
        return comparisons_json([comparison])

    def render_many(self, comparisons: list[Comparison]) -> str:
        return comparisons_json(comparisons)


@hookimpl
def register_reports(register):
    for report in (TableReport, EmailReport, JsonReport):
        register(report)
