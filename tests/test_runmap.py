"""RunMap: runs of equal values. ``set_many`` (one pass over the runs) gives what
one ``set`` per range gives, and equal neighbours are always merged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cocomem.runmap import RunMap

SIZE = 200


@st.composite
def ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    cuts = sorted(set(draw(st.lists(st.integers(0, SIZE), max_size=60))))
    pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
    return [(s, e) for s, e in pairs if draw(st.booleans())]


@given(initial=st.lists(st.tuples(st.integers(0, SIZE), st.integers(0, SIZE),
                                  st.integers(0, 3)), max_size=30),
       chosen=ranges(), value=st.integers(0, 3))
def test_set_many_is_set_per_range(initial, chosen, value):
    one, many = RunMap(SIZE, 0), RunMap(SIZE, 0)
    for a, b, v in initial:
        s, e = min(a, b), max(a, b)
        one.set(s, e, v)
        many.set(s, e, v)
    for s, e in chosen:
        one.set(s, e, value)
    many.set_many(chosen, value)
    assert many.to_list() == one.to_list()
    runs = many.to_list()
    assert all(a[2] != b[2] for a, b in zip(runs, runs[1:], strict=False))


def test_set_many_is_one_pass_over_many_runs():
    # 100,000 alternating runs made uniform in one call
    runmap = RunMap(200_000, 0)
    runmap.set_many([(p, p + 1) for p in range(1, 200_000, 2)], 1)
    assert len(runmap) == 200_000
    runmap.set_many([(p, p + 1) for p in range(0, 200_000, 2)], 1)
    assert runmap.to_list() == [(0, 200_000, 1)]


def test_runs_reversed_are_runs_from_the_top():
    runmap = RunMap(100, "a")
    runmap.set(10, 20, "b")
    runmap.set(50, 60, "c")
    for start, end in ((0, 100), (15, 55), (20, 50), (59, 60), (0, 1), (30, 30)):
        assert list(runmap.runs_reversed(start, end)) == list(runmap.runs(start, end))[::-1]
