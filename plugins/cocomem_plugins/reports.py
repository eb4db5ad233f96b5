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



def _named(calls_are: str) -> str:
    return f" ({calls_are})" if calls_are else ""


class TableReport(Report):
    name = "table"
    description = "one row per backend, in any tabulate format (--format grid, github, ...)"

    def render(self, comparison: Comparison) -> str:
        rows = []
        for name, r in comparison.results.items():
            rows.append([name, r.verdict, ", ".join(kinds(r)) or "-", r.total(CALL),
                         r.total(EXIT), r.total(REQUEST), format_us(r.cost_us),
                         relative_cost(r, comparison.results),
                         format_bytes_short(r.host_bytes["peak"]),
                         format_bytes_short(r.host_bytes["end"])])
        headers = ["backend", "verdict", "violations", "calls", "exits", "requests",
                   "cost", "vs best", "host peak", "host end"]
        fmt = "simple" if self.fmt == "table" else self.fmt
        title = f"{comparison.scenario} (vendor {comparison.vendor})"
        return title + "\n\n" + tabulate(rows, headers, tablefmt=fmt, disable_numparse=True)


def shell_lines(command: str, width: int = EMAIL_WIDTH) -> list[str]:
    """``$ command`` folded with backslashes so every line fits and still pastes."""
    words: list[str] = []
    for word in map(shlex.quote, shlex.split(command)):  # a quoted word stays whole
        if words and words[-1].startswith("--") and " " not in words[-1] \
                and not word.startswith("--"):
            words[-1] += " " + word  # keep "--option value" on one line
        else:
            words.append(word)
    lines, line = [], "  $"
    for word in words:
        if len(line) + 1 + len(word) > width - 2 and line != "  $":
            lines.append(line + " \\")
            line = "     "
        line += " " + word
    return lines + [line]


class EmailReport(Report):
    name = "email"
    description = "plain text for a mailing-list reply: at most 72 columns, with the command"

    def render(self, comparison: Comparison) -> str:
        return self.render_many([comparison])

    def render_many(self, comparisons: list[Comparison]) -> str:
        """One reply: the scenario and the command once, then per vendor its table,
        violations and notes, then one legend."""
        first = comparisons[0]
        several = len(comparisons) > 1
        title = first.scenario if several else f"{first.scenario} (vendor {first.vendor})"
        out = [f"Scenario: {title}", "Reproduce:", *shell_lines(first.command), ""]
        for comparison in comparisons:
            if several:
                out += [f"Vendor {comparison.vendor}:", ""]
            out += _email_section(comparison)
        calls = "; ".join(f"{c.vendor}: {c.calls_are}" if several else c.calls_are
                          for c in comparisons if c.calls_are)
        out.extend(textwrap.wrap(
            f"calls = guest calls to the platform{_named(calls)}; exits = VM exits; "
            "cost = estimated guest time from the cocomem cost model; peak/end = host "
            "memory backing the device region; (vmm) = the VMM's finding, no verdict on "
            "the design.", EMAIL_WIDTH))
        return "\n".join(line.rstrip() for line in out)


def _email_section(comparison: Comparison) -> list[str]:
    """One vendor's table, its violations and its notes, with a blank line after."""
    rows = [[name, r.verdict, r.total(CALL), r.total(EXIT),
             format_us(r.cost_us), format_bytes_short(r.host_bytes["peak"]),
             format_bytes_short(r.host_bytes["end"])]
            for name, r in comparison.results.items()]
    table = tabulate(rows, ["backend", "verdict", "calls", "exits", "cost", "peak", "end"],
                     tablefmt="simple", disable_numparse=True,
                     colalign=("left", "left", "right", "right", "right", "right", "right"))
    wrap = textwrap.TextWrapper(width=EMAIL_WIDTH, subsequent_indent="    ",
                                break_on_hyphens=False)
    out = [table, ""]
    listed = [(name, r) for name, r in comparison.results.items() if r.violations or r.error]
    if listed:
        out.append("Violations (kind @step: first GPA +size):")
        for name, r in listed:
            items = [f"{kind_label(v)} @{v['step']}: {v['start']:#x} "
                     f"+{format_bytes_short(v['size'])}" for v in r.violations]
            if r.error:
                who = f" (plugin {r.culprit!r})" if r.culprit else ""
                items.append(f"error{who}: {r.error}")
            out.extend(wrap.wrap(f"  {name}: " + "; ".join(items)))
        out.append("")
    notes: dict[str, list[str]] = {}
    for name, r in comparison.results.items():
        if r.note:
            notes.setdefault(r.note, []).append(name)
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
