"""A map from page numbers to values kept as runs of equal values.

The state of a 64 TiB region costs what a 1 GiB one does when the same number
of state changes happen: storage and every operation grow with the number of
runs, never with the number of pages.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterable, Iterator

#: what RunMap._one_run answers when a range spans several runs
_SEVERAL = object()


class RunMap:
    """Values over ``[0, size)``, stored as sorted run starts and a value per run."""

    __slots__ = ("size", "_starts", "_values")

    def __init__(self, size: int, value: Hashable) -> None:
        if size <= 0:
            raise ValueError("a RunMap needs a positive size")
        self.size = size
        self._starts: list[int] = [0]
        self._values: list[Hashable] = [value]

    def __len__(self) -> int:
        """Number of runs."""
        return len(self._starts)

    def __getitem__(self, pos: int) -> Hashable:
        self._check(pos, pos + 1)
        return self._values[bisect_right(self._starts, pos) - 1]

    def _check(self, start: int, end: int) -> None:
        if not 0 <= start <= end <= self.size:
            raise IndexError(f"range [{start}, {end}) outside [0, {self.size})")

    def _split(self, pos: int) -> int:
        """Make ``pos`` a run start; return the index of the run starting there."""
        if pos >= self.size:
            return len(self._starts)
        i = bisect_right(self._starts, pos) - 1
        if self._starts[i] == pos:
            return i
        self._starts.insert(i + 1, pos)
        self._values.insert(i + 1, self._values[i])
        return i + 1

    def set(self, start: int, end: int, value: Hashable) -> None:
        """Give every page in ``[start, end)`` the value ``value``."""
        self._check(start, end)
        if start == end:
            return
        i = self._split(start)
        j = self._split(end)
        self._starts[i:j] = [start]
        self._values[i:j] = [value]
        # Merge with the neighbours so equal values never sit in adjacent runs.
        if i + 1 < len(self._starts) and self._values[i + 1] == value:
            del self._starts[i + 1], self._values[i + 1]
        if i > 0 and self._values[i - 1] == value:
            del self._starts[i], self._values[i]

    def set_many(self, ranges: list[tuple[int, int]], value: Hashable) -> None:
        """Give every page of the sorted, disjoint ``ranges`` the value ``value``, in
        one pass over the runs: O(runs + ranges), where one ``set`` per range would
        move the whole list each time."""
        if len(ranges) < 16:
            for start, end in ranges:
                self.set(start, end, value)
            return
        for start, end in ranges:
            self._check(start, end)
        starts, values, size = self._starts, self._values, self.size
        new_starts: list[int] = []
        new_values: list[Hashable] = []

        def push(pos: int, v: Hashable) -> None:
            if not new_values or new_values[-1] != v:
                new_starts.append(pos)
                new_values.append(v)

        i, last = 0, len(starts) - 1
        pos = 0
        for start, end in [*ranges, (size, size)]:
            while pos < start:  # the old runs between the ranges
                while i < last and starts[i + 1] <= pos:
                    i += 1
                push(pos, values[i])
                pos = min(starts[i + 1] if i < last else size, start)
            if start < end:
                push(start, value)
                pos = end
        self._starts, self._values = new_starts, new_values

    def runs(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, Hashable]]:
        """Yield ``(run_start, run_end, value)`` clipped to ``[start, end)``."""
        end = self.size if end is None else end
        self._check(start, end)
        if start == end:
            return
        i = bisect_right(self._starts, start) - 1
        n = len(self._starts)
        while i < n and self._starts[i] < end:
            run_end = self._starts[i + 1] if i + 1 < n else self.size
            yield max(start, self._starts[i]), min(end, run_end), self._values[i]
            i += 1

    def runs_reversed(self, start: int = 0,
                      end: int | None = None) -> Iterator[tuple[int, int, Hashable]]:
        """:meth:`runs` from the last run down."""
        end = self.size if end is None else end
        self._check(start, end)
        if start == end:
            return
        i = bisect_right(self._starts, end - 1) - 1
        n = len(self._starts)
        while i >= 0:
            run_end = self._starts[i + 1] if i + 1 < n else self.size
            if run_end <= start:
                return
            yield max(start, self._starts[i]), min(end, run_end), self._values[i]
            i -= 1

    def runs_where(self, start: int, end: int, *values: Hashable) -> list[tuple[int, int]]:
        """The maximal sub-ranges of ``[start, end)`` whose value is one of ``values``."""
        one = self._one_run(start, end)
        if one is not _SEVERAL:
            return [(start, end)] if one in values else []
        found: list[tuple[int, int]] = []
        for s, e, v in self.runs(start, end):
            if v in values:
                if found and found[-1][1] == s:
                    found[-1] = (found[-1][0], e)
                else:
                    found.append((s, e))
        return found

    def _one_run(self, start: int, end: int) -> Hashable:
        """The value over ``[start, end)`` when it lies inside one run (most
        lookups; answered without a generator), else ``_SEVERAL``."""
        i = bisect_right(self._starts, start) - 1
        if 0 <= start < end <= self.size and (i + 1 == len(self._starts)
                                               or self._starts[i + 1] >= end):
            return self._values[i]
        return _SEVERAL

    def all(self, start: int, end: int, *values: Hashable) -> bool:
        """True when every page of ``[start, end)`` has one of ``values``."""
        one = self._one_run(start, end)
        if one is not _SEVERAL:
            return one in values
        return all(v in values for _, _, v in self.runs(start, end))

    def any(self, start: int, end: int, *values: Hashable) -> bool:
        one = self._one_run(start, end)
        if one is not _SEVERAL:
            return one in values
        return any(v in values for _, _, v in self.runs(start, end))

    def count(self, *values: Hashable, start: int = 0, end: int | None = None) -> int:
        """Number of pages in ``[start, end)`` whose value is one of ``values``."""
        return sum(e - s for s, e, v in self.runs(start, end) if v in values)

    def replace(self, start: int, end: int, old: Hashable, new: Hashable) -> int:
        """Set pages of ``[start, end)`` holding ``old`` to ``new``; return how many."""
        changed = self.runs_where(start, end, old)
        for s, e in changed:
            self.set(s, e, new)
        return sum(e - s for s, e in changed)

    def to_list(self) -> list[tuple[int, int, Hashable]]:
        return list(self.runs())


def uniform_values(maps: Iterable[RunMap], start: int, end: int) -> tuple | None:
    """The value of each map over ``[start, end)``; None unless each is uniform."""
    out: list[Hashable] = []
    for runmap in maps:
        run = next(runmap.runs(start, end))
        if run[1] != end:
            return None
        out.append(run[2])
    return tuple(out)


def differences(a: RunMap, b: RunMap) -> list[tuple[int, int]]:
    """Maximal ranges where two maps of the same size hold different values."""
    if a.size != b.size:
        raise ValueError("maps of different sizes")
    found: list[tuple[int, int]] = []
    runs_a, runs_b = a.runs(), b.runs()
    sa, ea, va = next(runs_a)
    sb, eb, vb = next(runs_b)
    pos = 0
    while pos < a.size:
        stop = min(ea, eb)
        if va != vb:
            if found and found[-1][1] == pos:
                found[-1] = (found[-1][0], stop)
            else:
                found.append((pos, stop))
        pos = stop
        if pos >= a.size:
            break
        if pos == ea:
            sa, ea, va = next(runs_a)
        if pos == eb:
            sb, eb, vb = next(runs_b)
    return found
