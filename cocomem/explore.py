"""Every single fault found automatically (``cocomem explore``).

Per backend, a first run with the call log on (:func:`cocomem.faults.observe`)
lists every fallible call the run makes. Each call is then made to fail once
with each of its failure statuses, one run per fault. Calls the bulk mechanism
counted at once are grouped with the call they repeat
(:func:`cocomem.faults.groups`); a group is run at its first and last call, and
split, round after round, wherever two of its runs disagree (:class:`Line`).
Outcomes are grouped by (verdict, violation kinds), each with how many faults
it stands for and one example. docs/explore.md has the rule and its limits.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CocomemError
from .faults import FaultPlan, Progressions, Segment, groups, observe
from .parallel import Died, Runner, Spec, loaded, time_limit
from .results import VERDICTS, Result
from .scenario import Fault, LoadedScenario

#: the statuses that are no failure; every other status a call declares is injected
SUCCESS = ("ok", "ack")

#: how many runs a round adds inside a stretch of a group whose two ends disagree
SPLIT = 3

#: one fault as (call, nth, status)
FaultKey = tuple[str, int, str]
#: what one run came to: (verdict, sorted violation kinds, error line)
OutcomeKey = tuple[str, tuple[str, ...], "str | None"]


@dataclass(frozen=True)
class Candidate:
    """Faults to inject in one run, and how many faults of the whole space they
    stand for (the product of their groups' sizes)."""

    faults: tuple[FaultKey, ...]
    weight: int = 1


@dataclass
class Outcome:
    verdict: str
    kinds: tuple[str, ...]
    count: int
    example: tuple[FaultKey, ...]
    error: str | None = None
    scenario_file: str | None = None

    def as_dict(self, pair: bool = False) -> dict[str, Any]:
        faults = [{"call": c, "nth": n, "status": s} for c, n, s in self.example]
        data = {"verdict": self.verdict, "kinds": list(self.kinds), "count": self.count,
                "example": faults if pair else faults[0],
                "scenario_file": self.scenario_file}
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class Explored:
    """The outcomes of one set of runs (single faults, or pairs)."""

    runs: int
    outcomes: list[Outcome]
    #: pairs only: how many pairs there were, and whether a sample was run
    space: int = 0
    sampled: bool = False


@dataclass
class BackendExploration:
    backend: str
    #: the run without an added fault
    unfaulted: Result
    #: per call: its calls in order (made one by one, or counted in bulk)
    segments: dict[str, list[Segment]]
    singles: Explored
    pairs: Explored | None = None

    @property
    def runs(self) -> int:
        return 1 + self.singles.runs + (self.pairs.runs if self.pairs else 0)


@dataclass
class Exploration:
    scenario: str
    scenario_file: str
    vendor: str
    backends: dict[str, BackendExploration] = field(default_factory=dict)


class _BulkWatcher:
    """Stands in for a trace list: tells the observed plan what its bulk counts
    repeat, from the bulk mechanism's events. A ``repeat`` follows the piece it
    repeats; a ``replay`` copies the last walked call of the same function over a
    range of the same length, which began at that call's ``call`` event."""

    def __init__(self, plans: list[FaultPlan]) -> None:
        self.plans = plans
        #: (function, length) -> calls made before its last walked call
        self.walked: dict[tuple[str, int], dict[str, int]] = {}
        self.last: tuple[tuple[str, int], dict[str, int]] | None = None

    def append(self, event: Any) -> None:
        if not self.plans or event.name not in ("call", "repeat", "replay"):
            return
        plan = self.plans[-1]
        if event.name == "repeat":
            plan.repeated(event.info.get("times", 1))
            return
        key = (event.info.get("fn", ""), (event.end or 0) - (event.start or 0))
        if event.name == "call":
            if self.last is not None:
                self.walked[self.last[0]] = self.last[1]
            self.last = (key, dict(plan.calls))
        else:
            self.last = None  # that call was this replay, not a walk
            plan.replayed(self.walked.get(key))


def _with_faults(loaded_scenario: LoadedScenario, faults: Sequence[FaultKey]) -> LoadedScenario:
    s = loaded_scenario.scenario
    added = [Fault(call=c, nth=n, status=st) for c, n, st in faults]
    return LoadedScenario(s.model_copy(update={"faults": [*s.faults, *added]}),
                          loaded_scenario.path, loaded_scenario.lines)


def run_one(spec: Spec, backend: str, vendor: str, faults: Sequence[FaultKey] = (),
            trace: Any = None) -> Result:
    """One backend's run of ``spec`` with ``faults`` added; never hangs longer than
    the spec's timeout, never raises for what the run did."""
    from .engine import TimedOut, run_backend

    registry, scenario = loaded(spec)
    try:
        with time_limit(spec.timeout):
            return run_backend(_with_faults(scenario, faults), registry, backend, vendor,
                               trace=trace, timeout=spec.timeout)
    except TimedOut:  # delivered to a worker thread just outside the engine's handler
        return Result(backend=backend, verdict="error",
                      error=f"TimedOut: timed out after {spec.timeout:g} s")


def outcome_of(result: Result | Died) -> tuple[str, tuple[str, ...], str | None]:
    """(verdict, sorted violation kinds, error line) of one run."""
    if isinstance(result, Died):
        return "error", (), result.message
    kinds = tuple(sorted({v["kind"] for v in result.violations}))
    return result.verdict, kinds, result.error_line() if result.error else None


def run_chunk(spec: Spec, items: list[tuple[str, str, tuple[FaultKey, ...]]]
              ) -> list[tuple[str, tuple[str, ...], str | None]]:
    """Worker side: each (backend, vendor, faults) run, as its outcome."""
    return [outcome_of(run_one(spec, backend, vendor, faults))
            for backend, vendor, faults in items]


def run_items(runner: Runner, spec: Spec, items: list[tuple[str, str, tuple[FaultKey, ...]]],
              what: str) -> list[OutcomeKey]:
    """The outcome of each (backend, vendor, faults) run, wherever they ran."""
    results = runner.run(run_chunk, spec, items, what)
    return [outcome_of(r) if isinstance(r, Died) else r for r in results]


def discover(spec: Spec, backend: str, vendor: str) -> tuple[Result, dict[str, list[Segment]]]:
    """The run without an added fault, and the log of every fallible call it made."""
    from .engine import fault_calls

    registry, _ = loaded(spec)
    with observe() as plans:
        result = run_one(spec, backend, vendor, trace=_BulkWatcher(plans))
    calls = fault_calls(registry.vendors[vendor])
    plan = plans[-1] if plans else None
    segments = {call: plan.segments(call) for call in calls} if plan else {}
    return result, {call: segs for call, segs in segments.items() if segs}


def discover_chunk(spec: Spec, items: list[tuple[str, str]]
                   ) -> list[tuple[Result, dict[str, list[Segment]]]]:
    """Worker side: :func:`discover` of each (backend, vendor)."""
    return [discover(spec, backend, vendor) for backend, vendor in items]


def _discovered(backend: str, found: Any) -> tuple[Result, dict[str, list[Segment]]]:
    if isinstance(found, Died):  # the first run killed its worker: nothing to explore
        return Result(backend=backend, verdict="error", error=found.message), {}
    return found


class Line:
    """One group of calls of one operation, all made to fail with one status: the
    calls sorted, and the outcomes of the runs made so far, by index."""

    def __init__(self, call: str, status: str, calls: Progressions) -> None:
        self.call, self.status = call, status
        # arrays: a group may hold a million progressions (a call repeated in every
        # block of a large plug)
        self._starts, self._steps, self._counts = calls
        self.size = int(self._counts.sum())
        self._sorted: Any = None
        #: index into the sorted calls -> outcome
        self.samples: dict[int, OutcomeKey] = {}

    def nth(self, index: int) -> int:
        """The call number at ``index`` of the sorted calls."""
        import numpy as np

        if index == 0:
            return int(self._starts.min())
        if index == self.size - 1:
            return int((self._starts + self._steps * (self._counts - 1)).max())
        if self._sorted is None:
            begins = np.cumsum(self._counts) - self._counts
            within = np.arange(self.size, dtype=np.int64) - np.repeat(begins, self._counts)
            self._sorted = np.sort(np.repeat(self._starts, self._counts)
                                   + np.repeat(self._steps, self._counts) * within)
        return int(self._sorted[index])

    def fault(self, index: int) -> FaultKey:
        return (self.call, self.nth(index), self.status)

    def wanted(self) -> list[int]:
        """The next indices to run: both ends first, then SPLIT evenly spaced calls
        inside every stretch whose two ends disagree (fewer rounds than halving)."""
        if not self.samples:
            return sorted({0, self.size - 1})
        known = sorted(self.samples)
        out: list[int] = []
        for i, j in zip(known, known[1:], strict=False):
            if j > i + 1 and self.samples[i][:2] != self.samples[j][:2]:
                out += sorted({i + (j - i) * m // (SPLIT + 1) for m in range(1, SPLIT + 1)}
                              - {i, j})
        return out

    def tally(self) -> list[tuple[OutcomeKey, int, int]]:
        """(outcome, calls it stands for, index of its first run): each run for its
        call, and the calls between two runs that agree for their outcome."""
        known = sorted(self.samples)
        counts: dict[OutcomeKey, list[int]] = {}
        for position, index in enumerate(known):
            outcome = self.samples[index]
            entry = counts.setdefault(outcome[:2], [0, index, outcome])
            entry[0] += 1
            following = known[position + 1] if position + 1 < len(known) else None
            if following is not None and self.samples[following][:2] == outcome[:2]:
                entry[0] += following - index - 1
        return [(outcome, n, index) for n, index, outcome in counts.values()]


def lines_of(segments: dict[str, list[Segment]], statuses: dict[str, Sequence[str]],
             grouped: bool = True) -> list[Line]:
    """One line per group (ungrouped: per call) and failure status."""
    import numpy as np

    out = []
    for call, segs in segments.items():
        failures = [s for s in statuses[call] if s not in SUCCESS]
        if grouped:
            heads = sorted(groups(segs).items())
        else:
            heads = [(n, (np.array([n]), np.array([1]), np.array([1])))
                     for seg in segs for n in range(seg.first, seg.end)]
        for _, calls in heads:
            out += [Line(call, status, calls) for status in failures]
    return out


def explore_lines(runner: Runner, spec: Spec, work: dict[str, tuple[str, list[Line]]]) -> int:
    """Run every line's wanted faults, round after round, until no line wants more
    (``work``: backend -> (vendor, lines)). Returns the number of runs."""
    runs, round_no = 0, 0
    while True:
        batch = [(backend, line, index) for backend, (_, lines) in work.items()
                 for line in lines for index in line.wanted()]
        if not batch:
            return runs
        round_no += 1
        items = [(backend, work[backend][0], (line.fault(index),))
                 for backend, line, index in batch]
        what = "single faults" if round_no == 1 else f"single faults, split {round_no - 1}"
        results = run_items(runner, spec, items, what)
        for (_, line, index), outcome in zip(batch, results, strict=True):
            line.samples[index] = outcome
        runs += len(batch)


def single_outcomes(lines: Sequence[Line]) -> list[Outcome]:
    """Outcomes by (verdict, kinds) over every line, with the first example found."""
    by_key: dict[tuple[str, tuple[str, ...]], Outcome] = {}
    for line in lines:
        for (verdict, kinds, error), count, index in line.tally():
            key = (verdict, kinds)
            if key in by_key:
                by_key[key].count += count
            else:
                by_key[key] = Outcome(verdict, kinds, count, (line.fault(index),), error)
    return _ordered(by_key.values())


def _ordered(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Worst verdict first, then the most frequent."""
    return sorted(outcomes, key=lambda o: (-VERDICTS.index(o.verdict), -o.count, o.kinds))


def pair_candidates(lines: Sequence[Line], budget: int,
                    seed: int) -> tuple[list[Candidate], int, bool]:
    """Pairs of groups' first calls, on two different calls: all of them when they
    fit the budget, else a sample of ``budget`` drawn with ``seed``. Each stands
    for the product of its groups' sizes. Returns the pairs, how many there are in
    all, and whether they were sampled."""
    n = len(lines)
    total = n * (n - 1) // 2
    sampled = total > budget
    ranks = sorted(random.Random(seed).sample(range(total), budget)) if sampled else range(total)
    pairs = []
    for i, j in (_unrank(k, n) for k in ranks):
        a, b = lines[i], lines[j]
        if (a.call, a.nth(0)) != (b.call, b.nth(0)):  # one call cannot fail twice
            pairs.append(Candidate((a.fault(0), b.fault(0)), a.size * b.size))
    return pairs, total, sampled


def _unrank(k: int, n: int) -> tuple[int, int]:
    """The k-th pair (i < j) of range(n) in lexicographic order."""
    def before(i: int) -> int:  # pairs whose first index is below i
        return i * (n - 1) - i * (i - 1) // 2

    low, high = 0, n - 1
    while low < high:
        mid = (low + high + 1) // 2
        if before(mid) <= k:
            low = mid
        else:
            high = mid - 1
    return low, low + 1 + k - before(low)


def group_outcomes(candidates: Sequence[Candidate],
                   results: Sequence[tuple[str, tuple[str, ...], str | None]]) -> list[Outcome]:
    """Outcomes by (verdict, kinds): the faults each stands for and the first example;
    worst verdict first, then the most frequent."""
    by_key: dict[tuple[str, tuple[str, ...]], Outcome] = {}
    for candidate, (verdict, kinds, error) in zip(candidates, results, strict=True):
        key = (verdict, kinds)
        if key in by_key:
            by_key[key].count += candidate.weight
        else:
            by_key[key] = Outcome(verdict, kinds, candidate.weight, candidate.faults, error)
    return _ordered(by_key.values())


def explore(spec: Spec, backends: Sequence[str], vendor: str, *, pairs: bool = False,
            budget: int = 2000, seed: int = 0, grouped: bool = True, jobs: int = 1,
            scheduler: str | None = None) -> Exploration:
    """Explore single faults (and pairs) of every backend on ``vendor``."""
    from .engine import fault_calls

    registry, scenario = loaded(spec)
    statuses = fault_calls(registry.vendors[vendor])
    with Runner(jobs, scheduler) as runner:
        first = runner.run(discover_chunk, spec, [(b, vendor) for b in backends],
                           "first runs")
        found = {b: _discovered(b, f) for b, f in zip(backends, first, strict=True)}
        work = {b: (vendor, lines_of(found[b][1], statuses, grouped)) for b in backends}
        explore_lines(runner, spec, work)
        if pairs:
            chosen = {b: pair_candidates(work[b][1], budget, seed) for b in backends}
            items = [(b, vendor, c.faults) for b in backends for c in chosen[b][0]]
            paired = iter(run_items(runner, spec, items, "pairs of faults"))
    out = Exploration(scenario.scenario.name, scenario.path, vendor)
    for b in backends:
        lines = work[b][1]
        runs = sum(len(line.samples) for line in lines)
        out.backends[b] = BackendExploration(b, found[b][0], found[b][1],
                                             Explored(runs, single_outcomes(lines)))
    if pairs:
        for b in backends:
            candidates, total, sampled = chosen[b]
            got = [next(paired) for _ in candidates]
            out.backends[b].pairs = Explored(len(candidates), group_outcomes(candidates, got),
                                             total, sampled)
    return out


# -- reproducers ---------------------------------------------------------------


def reproducer(spec: Spec, exploration: Exploration, backend: str, outcome: Outcome) -> str:
    """The scenario's YAML with the outcome's example fault(s) added, and an
    ``expect:`` for ``backend`` that holds when the outcome is reproduced."""
    import yaml

    from . import yamlin

    raw, _ = yamlin.load(spec.text, spec.path)
    raw = dict(raw)
    raw["vendor"] = exploration.vendor
    raw["faults"] = [*(raw.get("faults") or []),
                     *({"call": c, "nth": n, "status": s} for c, n, s in outcome.example)]
    raw.pop("expect", None)
    faults = ", ".join(f"{c} #{n} -> {s}" for c, n, s in outcome.example)
    lines = [f"# {exploration.scenario} with one more fault: {faults}",
             f"# {backend} on {exploration.vendor}: {_outcome_words(outcome)}"
             f" ({outcome.count} fault(s) lead here)",
             "# written by cocomem explore"]
    if outcome.verdict == "error":
        lines.append(f"# {outcome.error}")
    else:
        raw["expect"] = {backend: {"verdict": outcome.verdict, "violations": list(outcome.kinds)}}
    return "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None,
                                                    width=88)


def write_reproducers(spec: Spec, exploration: Exploration, out_dir: Path) -> list[Path]:
    """One scenario per distinct outcome (per backend, singles and pairs) in
    ``out_dir``; each outcome's ``scenario_file`` is set."""
    from .output import write_file

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CocomemError(f"cannot create {out_dir}: {exc.strerror}") from None
    stem = Path(exploration.scenario_file).stem
    written = []
    for name, explored in exploration.backends.items():
        for part, label in ((explored.singles, ""), (explored.pairs, "pair-")):
            for number, outcome in enumerate(part.outcomes if part else (), 1):
                path = out_dir / f"{stem}.{name}.{label}{number}.yaml"
                write_file(path, reproducer(spec, exploration, name, outcome),
                           inputs=[Path(spec.path)])
                outcome.scenario_file = str(path)
                written.append(path)
    return written


# -- output ---------------------------------------------------------------------


def _outcome_words(outcome: Outcome) -> str:
    return f"{outcome.verdict} ({', '.join(outcome.kinds) or 'no violations'})"


def exploration_json(exploration: Exploration) -> str:
    import json

    data: dict[str, Any] = {"scenario": exploration.scenario, "vendor": exploration.vendor,
                            "backends": {}}
    for name, b in exploration.backends.items():
        verdict, kinds, _ = outcome_of(b.unfaulted)
        entry: dict[str, Any] = {
            "runs": b.runs,
            "without_fault": {"verdict": verdict, "kinds": list(kinds)},
            "calls": {call: {"made": sum(s.count for s in segs),
                             "groups": group_count(segs),
                             "segments": [{"first": s.first, "count": s.count,
                                           "repeats": ({"first": s.origin, "count": s.period}
                                                       if s.origin else None)}
                                          for s in segs]}
                      for call, segs in b.segments.items()},
            "outcomes": [o.as_dict() for o in b.singles.outcomes],
        }
        if b.pairs is not None:
            entry["pairs"] = {"runs": b.pairs.runs, "space": b.pairs.space,
                              "sampled": b.pairs.sampled,
                              "outcomes": [o.as_dict(pair=True) for o in b.pairs.outcomes]}
        data["backends"][name] = entry
    return json.dumps(data, indent=2, allow_nan=False)


def _span(first: int, count: int) -> str:
    return f"#{first}" if count == 1 else f"#{first}-{first + count - 1}"


def _segment_words(segment: Segment) -> str:
    """``#514-32832 = 63 x #1-513``: counted at once, repeating the calls named."""
    span = _span(segment.first, segment.count)
    if segment.origin:
        times = segment.count // segment.period
        return f"{span} = {times} x {_span(segment.origin, segment.period)}"
    return span + (" (bulk, ungrouped)" if segment.bulk else "")


def group_count(segments: list[Segment]) -> int:
    """How many groups the calls of ``segments`` form."""
    return len(groups(segments))


def format_table(exploration: Exploration, show_segments: int = 3) -> str:
    """The plain-text report: per backend, the calls and their groups, then the
    outcomes with counts and an example each."""
    from tabulate import tabulate

    lines = [f"{exploration.scenario} (vendor {exploration.vendor}): every fallible call "
             f"made to fail once"]
    for name, b in exploration.backends.items():
        lines += ["", f"{name}: without a fault {_outcome_words(_as_outcome(b.unfaulted))}; "
                      f"{b.runs} runs"]
        if b.unfaulted.error:
            lines.append(f"  {b.unfaulted.error_line()}")
        rows = []
        for call, segs in b.segments.items():
            made = sum(s.count for s in segs)
            groups = group_count(segs)
            shown = "; ".join(_segment_words(s) for s in segs[:show_segments])
            if len(segs) > show_segments:
                shown += f"; {len(segs) - show_segments} more"
            rows.append([call, made, groups, shown])
        if rows:
            lines += ["  " + row for row in tabulate(
                rows, ["call", "calls", "groups", "calls in order"],
                colalign=("left", "right", "right", "left")).splitlines()]
        else:
            lines.append("  no fallible call made")
        for title, part in (("single faults", b.singles), ("pairs", b.pairs)):
            if part is None or not part.outcomes:
                continue
            if title == "pairs":
                how = (f"a sample of {part.runs} of {part.space}" if part.sampled
                       else f"all {part.runs}")
                title = f"pairs of faults ({how})"
            rows = [[o.verdict, ", ".join(o.kinds) or "-", o.count,
                     " + ".join(f"{c} #{n} {s}" for c, n, s in o.example)
                     + (f" -> {o.scenario_file}" if o.scenario_file else "")]
                    for o in part.outcomes]
            lines += ["", f"  {title}:"]
            lines += ["  " + row for row in tabulate(
                rows, ["verdict", "violations", "faults", "example"],
                colalign=("left", "left", "right", "left")).splitlines()]
    return "\n".join(lines)


def _as_outcome(result: Result) -> Outcome:
    verdict, kinds, error = outcome_of(result)
    return Outcome(verdict, kinds, 1, (), error)
