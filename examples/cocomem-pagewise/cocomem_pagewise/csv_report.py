"""``cocomem compare --format csv``: one row per vendor and backend, for a spreadsheet."""

from __future__ import annotations

import csv
import io

from cocomem import CALL, EXIT, HOST, REQUEST, Comparison, Report, hookimpl

COLUMNS = ["scenario", "vendor", "backend", "verdict", "violations", "calls", "exits",
           "host_actions", "requests", "cost_us", "host_peak_bytes", "host_end_bytes"]


class CsvReport(Report):
    name = "csv"
    description = "comma-separated values, one row per vendor and backend"

    def rows(self, comparison: Comparison) -> list[list]:
        return [[comparison.scenario, comparison.vendor, name, r.verdict,
                 " ".join(dict.fromkeys(v["kind"] for v in r.violations)),
                 r.total(CALL), r.total(EXIT), r.total(HOST), r.total(REQUEST),
                 r.cost_us, r.host_bytes["peak"], r.host_bytes["end"]]
                for name, r in comparison.results.items()]

    def render(self, comparison: Comparison) -> str:
        return self.render_many([comparison])

    def render_many(self, comparisons: list[Comparison]) -> str:
        """One header, then every vendor's rows: one table, not one per vendor."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for comparison in comparisons:
            writer.writerows(self.rows(comparison))
        return out.getvalue().rstrip("\n")


@hookimpl
def register_reports(register):
    register(CsvReport)
