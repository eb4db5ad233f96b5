"""``cocomem explore`` (docs/explore.md): every fallible call made to fail once,
calls counted in bulk grouped (and the grouping checked against faulting every
call on its own), outcomes by verdict and violations, reproducing scenarios that
``cocomem compare`` runs as they are, pairs within a budget or a seeded sample,
and the same results on one core, on worker processes and on Dask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import ROOT, cli, in_repo  # noqa: F401 (in_repo: a fixture)

from cocomem.faults import FaultPlan, Segment, groups, observe
from cocomem.scenario import Fault

pytestmark = pytest.mark.usefixtures("in_repo")

SHIPPED = "scenarios/release-fails-halfway.yaml"

#: small enough to fault every call on its own in a second or two
SMALL = """\
name: small
vendor: {vendor}
device: {{region_size: 512MiB, block_size: 2MiB}}
vmm: {{mapping_level: {level}, unplug_discards: [shared, private]}}
tdx: {{page_release: true}}
steps:
  - plug: {plug}
  - use: 4MiB
  - unplug: 4MiB
  - kexec
  - plug: 4MiB
  - use: all
"""


def explore_json(*args: str | Path) -> dict:
    result = cli("explore", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def small(tmp_path: Path, vendor: str = "tdx", level: str = "2m", plug: str = "16MiB") -> Path:
    path = tmp_path / f"small-{vendor}-{level}.yaml"
    path.write_text(SMALL.format(vendor=vendor, level=level, plug=plug))
    return path


def outcome_set(data: dict) -> dict[str, set]:
    return {b: {(o["verdict"], tuple(o["kinds"])) for o in entry["outcomes"]}
            for b, entry in data["backends"].items()}


# --- the call log and its groups --------------------------------------------------

def test_the_plan_logs_calls_made_one_by_one_and_groups_repetitions_by_place():
    with observe() as plans:
        plan = FaultPlan([])
    assert plans == [plan]
    for _ in range(3):  # a piece of three calls, made for real
        plan.take("tdcall.accept")
    plan.skip("tdcall.accept", 6)  # ... and repeated twice
    plan.repeated(2)
    plan.take("tdcall.accept")
    assert plan.segments("tdcall.accept") == [
        Segment(1, 3), Segment(4, 6, period=3, origin=1, bulk=True), Segment(10, 1)]
    assert _as_lists(groups(plan.segments("tdcall.accept"))) == {
        1: [(1, 1, 1), (4, 3, 2)], 2: [(2, 1, 1), (5, 3, 2)], 3: [(3, 1, 1), (6, 3, 2)],
        10: [(10, 1, 1)]}


def _as_lists(found: dict) -> dict[int, list[tuple[int, int, int]]]:
    """groups() as head -> [(start, step, count), ...]."""
    return {head: list(zip(*(column.tolist() for column in columns), strict=True))
            for head, columns in found.items()}


def test_an_unobserved_plan_keeps_no_log_and_counts_as_before():
    plan = FaultPlan([Fault(call="tdcall.accept", nth=5, status="operand_busy")])
    plan.skip("tdcall.accept", 3)
    assert plan.log is None and plan.calls_before_next_fault("tdcall.accept") == 1
    assert plan.take("tdcall.accept") is None and plan.take("tdcall.accept") == "operand_busy"


def test_a_replay_joins_the_walk_it_copies():
    with observe():
        plan = FaultPlan([])
    for _ in range(4):
        plan.take("snp.pvalidate")
    before = dict(plan.calls)
    plan.take("snp.pvalidate")
    plan.skip("snp.pvalidate", 2)
    plan.repeated(2)  # calls 5..7: one made, two repeating it
    plan.skip("snp.pvalidate", 3)
    plan.replayed(before)  # calls 8..10 copy the walk of calls 5..7
    assert _as_lists(groups(plan.segments("snp.pvalidate")))[5] == [
        (5, 1, 1), (6, 1, 2), (8, 3, 1), (9, 3, 1), (10, 3, 1)]


# --- grouped and ungrouped agree ------------------------------------------------------

@pytest.mark.parametrize("vendor,level,plug,backends", [
    ("tdx", "2m", "16MiB", ["notifier", "callbacks", "plugged-bitmap"]),
    ("cca", "2m", "8MiB", ["start-shared"]),
    ("snp", "2m", "8MiB", ["start-shared", "plugged-bitmap"]),
])
def test_grouped_exploration_finds_the_outcomes_of_faulting_every_call(
        tmp_path: Path, vendor: str, level: str, plug: str, backends: list[str]):
    path = small(tmp_path, vendor, level, plug)
    words = [w for b in backends for w in ("--backend", b)]
    grouped = explore_json(path, *words)
    ungrouped = explore_json(path, *words, "--ungrouped")
    assert outcome_set(grouped) == outcome_set(ungrouped)
    for name, entry in grouped["backends"].items():
        every = ungrouped["backends"][name]
        # the same faults in all, in fewer runs
        assert sum(o["count"] for o in entry["outcomes"]) == \
            sum(o["count"] for o in every["outcomes"])
        assert entry["calls"] == {c: dict(v, groups=entry["calls"][c]["groups"])
                                  for c, v in every["calls"].items()}
        if any(c["made"] > c["groups"] for c in entry["calls"].values()):
            assert entry["runs"] < every["runs"]


def test_grouping_at_4k_mappings_where_one_chunk_is_many_calls(tmp_path: Path):
    """At 4 KiB mappings a 2 MiB chunk is a 2M ACCEPT and 512 4K ones, the bulk
    mechanism repeats some of them inside the chunk: one failure status per call
    keeps faulting every call on its own short."""
    from cocomem import yamlin
    from cocomem.explore import Runner, discover, explore_lines, lines_of, single_outcomes
    from cocomem.parallel import Spec

    path = small(tmp_path, "tdx", "4k", "4MiB")
    spec = Spec(yamlin.read_text(path), str(path), (), 60.0)
    _, segments = discover(spec, "callbacks", "tdx")
    statuses = {call: ("operand_busy",) if call.startswith("tdcall") else ("error",)
                for call in segments}
    found = {}
    for grouped in (True, False):
        lines = lines_of(segments, statuses, grouped)
        with Runner() as runner:
            runs = explore_lines(runner, spec, {"callbacks": ("tdx", lines)})
        outcomes = single_outcomes(lines)
        found[grouped] = (runs, {(o.verdict, o.kinds) for o in outcomes},
                          sum(o.count for o in outcomes))
    assert found[True][1:] == found[False][1:], found
    assert found[True][0] < found[False][0] / 4


def test_the_table_shows_the_groups_and_the_outcomes():
    result = cli("explore", SHIPPED, "--backend", "callbacks")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.splitlines()[0] == ("release-fails-halfway (vendor tdx): every fallible call "
                                    "made to fail once")
    assert "callbacks: without a fault degraded (device-broken)" in text
    # the 63 chunks of 2 MiB after the first repeat it, call for call
    assert "#514-32832 = 63 x #1-513" in text
    assert "crashed" in text and "accept-panic" in text
    data = explore_json(SHIPPED, "--backend", "callbacks")["backends"]["callbacks"]
    accept = data["calls"]["tdcall.accept"]
    # the second 128 MiB block replays the first: its calls join the first's groups
    assert {"first": 32833, "count": 32832, "repeats": {"first": 1, "count": 32832}} \
        in accept["segments"]
    assert accept["made"] == 65763 and accept["groups"] < 200


# --- outcomes, JSON and reproducers ------------------------------------------------

def test_json_has_the_stable_keys_and_every_fault_is_counted_once(tmp_path: Path):
    data = explore_json(small(tmp_path), "--backend", "callbacks", "--backend", "mainline")
    assert data["scenario"] == "small" and list(data["backends"]) == ["callbacks", "mainline"]
    entry = data["backends"]["callbacks"]
    assert isinstance(entry["runs"], int) and entry["runs"] > 1
    for outcome in entry["outcomes"]:
        assert set(outcome) >= {"verdict", "kinds", "count", "example", "scenario_file"}
        assert set(outcome["example"]) == {"call", "nth", "status"}
        assert outcome["scenario_file"] is None
    statuses = {"virtio_mem.plug": 3, "virtio_mem.unplug": 3, "virtio_mem.unplug_all": 3,
                "tdcall.accept": 4, "tdcall.release": 4, "tdvmcall.map_gpa": 3}
    faults = sum(c["made"] * statuses[name] for name, c in entry["calls"].items())
    assert sum(o["count"] for o in entry["outcomes"]) == faults
    keys = [(o["verdict"], tuple(o["kinds"])) for o in entry["outcomes"]]
    assert len(keys) == len(set(keys))


def test_out_writes_one_scenario_per_outcome_that_compare_reproduces(tmp_path: Path):
    out = tmp_path / "out"
    data = explore_json(SHIPPED, "--backend", "callbacks", "--backend", "plugged-bitmap",
                        "--out", out)
    files = sorted(out.iterdir())
    outcomes = [o for entry in data["backends"].values() for o in entry["outcomes"]]
    assert len(files) == len(outcomes) >= 3
    for name, entry in data["backends"].items():
        for outcome in entry["outcomes"]:
            path = Path(outcome["scenario_file"])
            text = path.read_text()
            example = outcome["example"]
            assert (f"- {{call: {example['call']}, nth: {example['nth']}, "
                    f"status: {example['status']}}}") in text
            # the original's own fault stays
            assert "- {call: tdcall.release, nth: 101, status: operand_busy}" in text
            result = cli("compare", path, "--backend", name, "--format", "json")
            assert result.exit_code == 0, (path, result.stderr)  # its expect: held
            got = json.loads(result.stdout)["results"][name]
            assert got["verdict"] == outcome["verdict"]
            assert sorted({v["kind"] for v in got["violations"]}) == outcome["kinds"]


# --- pairs -------------------------------------------------------------------------

def test_pairs_run_all_within_the_budget_and_a_seeded_sample_beyond(tmp_path: Path):
    path = small(tmp_path)
    every = explore_json(path, "--backend", "callbacks", "--pairs")
    pairs = every["backends"]["callbacks"]["pairs"]
    assert not pairs["sampled"] and pairs["runs"] <= pairs["space"] <= 2000
    for outcome in pairs["outcomes"]:
        first, second = outcome["example"]
        assert (first["call"], first["nth"]) != (second["call"], second["nth"])
    sample = explore_json(path, "--backend", "callbacks", "--pairs", "--budget", "40",
                          "--seed", "7")
    again = explore_json(path, "--backend", "callbacks", "--pairs", "--budget", "40",
                         "--seed", "7")
    assert sample == again
    part = sample["backends"]["callbacks"]["pairs"]
    assert part["sampled"] and part["runs"] <= 40 and part["space"] == pairs["space"]
    other = explore_json(path, "--backend", "callbacks", "--pairs", "--budget", "40",
                         "--seed", "8")
    assert other["backends"]["callbacks"]["pairs"] != part


# --- scale-out -----------------------------------------------------------------------

def test_worker_processes_give_the_same_results(tmp_path: Path):
    path = small(tmp_path)
    words = ["--backend", "notifier", "--backend", "callbacks", "--pairs", "--budget", "60"]
    assert explore_json(path, *words, "--jobs", "2") == explore_json(path, *words)


def test_a_dask_cluster_gives_the_same_results(tmp_path: Path):
    distributed = pytest.importorskip("distributed")
    path = small(tmp_path)
    words = ["--backend", "callbacks"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        on_dask = explore_json(path, *words, "--scheduler", cluster.scheduler_address)
    assert on_dask == explore_json(path, *words)


STALLER = '''
import os

from cocomem.backend import Backend
from cocomem.hookspecs import hookimpl


class Staller(Backend):
    """Hangs (or, with DIE, kills its process) once a PLUG was refused."""

    name = "staller"

    def post_plug(self, start, end):
        if any(self.ctx.counters.get(f"virtio_mem.plug.{r}") for r in ("nack", "busy")):
            if DIE:
                os._exit(3)
            while True:
                pass
        return super().post_plug(start, end)


@hookimpl
def register_backends(register):
    register(Staller)
'''


def staller(tmp_path: Path, die: bool) -> Path:
    path = tmp_path / "staller.py"
    path.write_text(f"DIE = {die}\n" + STALLER)
    return path


def test_a_run_that_hangs_is_an_error_outcome(tmp_path: Path):
    scenario = tmp_path / "two.yaml"
    scenario.write_text(SMALL.format(vendor="tdx", level="2m", plug="4MiB"))
    data = explore_json(scenario, "--backend", "staller", "--plugin", staller(tmp_path, False),
                        "--timeout", "0.5")
    errors = [o for o in data["backends"]["staller"]["outcomes"] if o["verdict"] == "error"]
    assert errors and "timed out after 0.5 s" in errors[0]["error"]
    assert errors[0]["example"]["status"] in ("nack", "busy")


def test_a_worker_that_dies_is_an_error_outcome(tmp_path: Path):
    scenario = tmp_path / "two.yaml"
    scenario.write_text(SMALL.format(vendor="tdx", level="2m", plug="4MiB"))
    data = explore_json(scenario, "--backend", "staller", "--plugin", staller(tmp_path, True),
                        "--jobs", "2")
    outcomes = data["backends"]["staller"]["outcomes"]
    died = [o for o in outcomes if o["verdict"] == "error"]
    assert died and died[0]["error"] == "the worker process died"
    assert any(o["verdict"] != "error" for o in outcomes)  # the others still report


# --- bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--format", "html"], "unknown format 'html'; formats: table, json"),
    (["--backend", "nope"], "unknown backend 'nope'"),
    (["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler at"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str):
    result = cli("explore", SHIPPED, *args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "cocomem: error: " in result.stderr
    assert message in result.stderr


def test_a_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch):
    import io
    import sys

    from cocomem.parallel import Progress

    result = cli("explore", SHIPPED, "--backend", "mainline")
    assert result.exit_code == 0 and result.stderr == ""  # not a terminal: nothing
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", terminal)
    with Progress(10, "single faults") as bar:
        bar.advance(10)
    assert bar._bar is not None and bar._bar.tasks[0].completed == 10


def test_outside_a_main_thread_a_run_is_stopped_by_an_exception_in_its_thread():
    """Dask runs tasks in worker threads, where the engine's signal cannot reach."""
    import threading
    import time

    from cocomem.engine import TimedOut
    from cocomem.parallel import time_limit

    caught = []

    def stuck() -> None:
        try:
            with time_limit(0.2):
                while True:
                    time.sleep(0.01)
        except TimedOut:
            caught.append(time.perf_counter())

    start = time.perf_counter()
    thread = threading.Thread(target=stuck)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and caught and caught[0] - start < 2
