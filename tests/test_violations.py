"""How violations are recorded: each page once per kind, whatever the ranges the
events came in (one event over a run, or one per piece, as the bulk mechanism
and a call-by-call run report the same pages)."""

from __future__ import annotations

from cocomem.run import RunContext

PAGE = 4096


def spans(ctx: RunContext) -> list[tuple[str, int, int, int]]:
    return [(v.kind, v.step, (v.start - ctx.region_addr) // PAGE, v.size // PAGE)
            for v in ctx.violations]


def test_pages_already_reported_are_subtracted_not_only_contained_ranges():
    one, many = RunContext(0), RunContext(0)
    one.step = many.step = 1
    one.violation("accept-unbacked", 0, 4)
    many.violation("accept-unbacked", 0, 4)
    many.step = one.step = 5
    one.violation("accept-unbacked", 0, 16)           # one event over the run
    for start in range(0, 16, 4):                     # one per piece
        many.violation("accept-unbacked", start, start + 4)
    assert spans(one) == spans(many) == [("accept-unbacked", 1, 0, 4),
                                         ("accept-unbacked", 5, 4, 12)]


def test_a_range_over_several_reported_holes_reports_each_gap_once():
    ctx = RunContext(0)
    ctx.violation("leak", 2, 4)
    ctx.violation("leak", 8, 10)
    ctx.step = 3
    ctx.violation("leak", 0, 12)
    ctx.violation("leak", 0, 12)
    assert spans(ctx) == [("leak", 0, 2, 2), ("leak", 0, 8, 2), ("leak", 3, 0, 2),
                          ("leak", 3, 4, 4), ("leak", 3, 10, 2)]


def test_kinds_are_independent_and_continuations_at_one_step_extend():
    ctx = RunContext(1 << 32)
    ctx.violation("double-accept", 0, 1)
    ctx.violation("double-accept", 1, 3)
    ctx.violation("stale-assumed-zero", 0, 3)
    assert spans(ctx) == [("double-accept", 0, 0, 3), ("stale-assumed-zero", 0, 0, 3)]
