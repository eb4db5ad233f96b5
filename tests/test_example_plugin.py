"""The plugin API, hook by hook (docs/plugins.md): each ``test_hook_<name>`` makes
one pluggy hook, Backend hook method, Vendor API method, Check or Report method
fire, and checks when it fires and with which ranges, as the guide's reference
says (tests/test_docs.py requires one such test per hook).

The example distribution (examples/cocomem-pagewise) is loaded from its files,
the way ``--plugin FILE.py`` loads them, so the main suite needs nothing
installed; its own tests (run by .ci/run) use it installed. A spy backend and a
spy check, written to a plugin file, record every call they get as a ``spy``
event, so a test reads the hooks in order among the core's events.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from scenario_builder import scenario_yaml

from cocomem import MEM_CANCEL_ONLINE, GuestCrash, load_registry
from cocomem.compare import compare_vendors
from cocomem.engine import BackendRun
from cocomem.registry import Registry
from cocomem.run import Event
from cocomem.scenario import load_scenario, parse_scenario
from cocomem.state import FREE, MAPPED_4K, PENDING_4K, PRIVATE, SHARED

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cocomem-pagewise"
#: the example's plugins (entry-point name = module name) and what each registers
EXAMPLE_PLUGINS = {"pagewise": ("vendor", "pagewise"),
                   "callbacks_kexec": ("backend", "callbacks-kexec"),
                   "host_within_plugged": ("check", "host-within-plugged"),
                   "csv_report": ("report", "csv")}
EXAMPLE_FILES = [EXAMPLE / "cocomem_pagewise" / f"{name}.py" for name in EXAMPLE_PLUGINS]
EXAMPLE_SCENARIOS = sorted((EXAMPLE / "tests" / "scenarios").glob("*.yaml"))
MB = 32768        # pages in one 128 MiB memory block
REGION = 262144   # pages in the 1 GiB region
MAX_ORDER = 1024  # pages in a MAX_PAGE_ORDER block (4 MiB)

SPY = '''
from pydantic import BaseModel, ConfigDict

from cocomem import Backend, Check, hookimpl


class SpyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: hooks that return False
    refuse: list[str] = []


class Spy(Backend):
    """Records each hook call as a ``spy`` event; accepts nothing."""

    name = "spy"
    Options = SpyOptions

    def _hook(self, hook, start, end, **info):
        self.ctx.emit("spy", start, end, hook=hook, **info)
        return hook not in self.options.refuse

    def post_plug(self, start, end):
        return self._hook("post_plug", start, end)

    def pre_unplug(self, start, end):
        return self._hook("pre_unplug", start, end)

    def unplug_failed(self, start, end):
        return self._hook("unplug_failed", start, end)

    def unplugged(self, start, end):
        self._hook("unplugged", start, end)

    def pre_unplug_all(self, start, end):
        return self._hook("pre_unplug_all", start, end)

    def unplugged_all(self, start, end):
        self._hook("unplugged_all", start, end)

    def memory_added(self, start, end):
        self._hook("memory_added", start, end)

    def memory_removing(self, start, end):
        self._hook("memory_removing", start, end)

    def memory_notify(self, action, start, end):
        return self._hook("memory_notify", start, end, action=action)

    def fake_online(self, start, end):
        self._hook("fake_online", start, end)


class Finisher(Check):
    """Records its on_finish call."""

    name = "finisher"
    events = ()

    def on_finish(self):
        self.run.ctx.emit("spy", hook="on_finish", step=self.run.ctx.step)


@hookimpl
def register_backends(register):
    register(Spy)


@hookimpl
def register_checks(register):
    register(Finisher)
'''


def example_registry(*extra: Path) -> Registry:
    """The registry with the example's plugins and ``extra`` plugin files: the
    installed distribution when it is installed, else its files."""
    registry = load_registry([str(path) for path in extra])
    if "pagewise" in registry.vendors:
        return registry
    return load_registry([str(path) for path in (*EXAMPLE_FILES, *extra)])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    spy = tmp_path_factory.mktemp("plugins") / "spy.py"
    spy.write_text(SPY)
    return example_registry(spy)


def run_of(registry: Registry, steps: list, *, backend: str = "spy", vendor: str = "none",
           refuse: tuple[str, ...] = (), faults: list[dict] | None = None,
           start: bool = True, **settings) -> tuple[BackendRun, list[Event]]:
    """A run of ``backend`` over ``steps`` on ``vendor`` (finished unless ``start`` is
    false) and the events it emitted."""
    text = scenario_yaml(steps, vendor=vendor, faults=faults, **settings)
    if refuse:
        text += f"backend_options: {{spy: {{refuse: {list(refuse)}}}}}\n"
    loaded = parse_scenario(text, "<test>", set(registry.vendors))
    events: list[Event] = []
    run = BackendRun(loaded, registry, backend, vendor, events)
    if start:
        run.run()
    return run, events


def hooks(events: list[Event], *core: str) -> list[tuple]:
    """The spy's calls as (hook, start, end[, action]), and the core events named in
    ``core`` as (name, what, start, end), in the order they happened."""
    out: list[tuple] = []
    for e in events:
        if e.name == "spy" and e.info["hook"] != "on_finish":
            out.append((e.info["hook"], e.start, e.end, *(
                [e.info["action"]] if "action" in e.info else [])))
        elif e.name in core:
            what = e.info.get("response") or e.info.get("request") or e.info.get("action")
            out.append((e.name, what, e.start, e.end))
    return out


# --- the four pluggy hooks: each example module implements one -------------------------

def _registered(registry: Registry, plugin: str, hook: str) -> type:
    """What ``plugin`` registered through ``hook``, checked against the listing."""
    kind, item = EXAMPLE_PLUGINS[plugin]
    assert hook == f"register_{kind}s"
    assert registry.origin[(kind, item)] == plugin
    row = {row["name"]: row for row in registry.plugin_info()}[plugin]
    assert (row["kinds"], row["provides"], row["hooks"]) == ([kind], [f"{kind}:{item}"], [hook])
    return registry.items[kind][item]


def test_hook_register_vendors(registry: Registry):
    assert _registered(registry, "pagewise", "register_vendors").__name__ == "Pagewise"


def test_hook_register_backends(registry: Registry):
    cls = _registered(registry, "callbacks_kexec", "register_backends")
    assert cls.__name__ == "CallbacksKexec"


def test_hook_register_checks(registry: Registry):
    cls = _registered(registry, "host_within_plugged", "register_checks")
    assert cls.kinds == {"host-over-plugged": "vmm"}


def test_hook_register_reports(registry: Registry):
    assert _registered(registry, "csv_report", "register_reports").__name__ == "CsvReport"


# --- Backend hook methods ---------------------------------------------------------------

def test_hook_post_plug(registry: Registry):
    # after the PLUG ACK, before the block is added; the plugged subblocks of one block
    _, events = run_of(registry, [{"plug": "256MiB"}])
    assert hooks(events, "request", "response", "add_memory")[:5] == [
        ("request", "plug", 0, MB), ("response", "ack", 0, MB), ("post_plug", 0, MB),
        ("add_memory", None, 0, MB), ("memory_added", 0, MB)]
    assert [h for h in hooks(events) if h[0] == "post_plug"] == [
        ("post_plug", 0, MB), ("post_plug", MB, 2 * MB)]


def test_hook_post_plug_into_a_partly_plugged_block(registry: Registry):
    # a block that is online already: only the newly plugged subblocks
    _, events = run_of(registry, [{"plug": "64MiB"}, {"plug": "32MiB"}])
    assert [h for h in hooks(events) if h[0] == "post_plug"] == [
        ("post_plug", 0, MB // 2), ("post_plug", MB // 2, 3 * MB // 4)]


def test_hook_post_plug_false_breaks_the_device(registry: Registry):
    run, events = run_of(registry, [{"plug": "128MiB"}], refuse=("post_plug",))
    assert hooks(events, "driver.broken")[-1] == ("driver.broken", None, 0, MB)
    assert run.driver.broken


def test_hook_pre_unplug(registry: Registry):
    # an online, fully plugged block goes whole: pre_unplug, the request, unplugged,
    # then offline and removal
    _, events = run_of(registry, [{"plug": "256MiB"}, {"unplug": "128MiB"}])
    step1 = events[[e.name for e in events].index("step", 1):]
    assert hooks(step1, "request", "response", "notify", "remove_memory") == [
        ("pre_unplug", MB, 2 * MB), ("request", "unplug", MB, 2 * MB),
        ("response", "ack", MB, 2 * MB), ("unplugged", MB, 2 * MB),
        ("notify", "MEM_GOING_OFFLINE", MB, 2 * MB),
        ("memory_notify", MB, 2 * MB, "MEM_GOING_OFFLINE"),
        ("notify", "MEM_OFFLINE", MB, 2 * MB), ("memory_notify", MB, 2 * MB, "MEM_OFFLINE"),
        ("memory_removing", MB, 2 * MB), ("remove_memory", None, MB, 2 * MB)]


def test_hook_pre_unplug_false_sends_no_request(registry: Registry):
    run, events = run_of(registry, [{"plug": "128MiB"}, {"unplug": "128MiB"}],
                         refuse=("pre_unplug",))
    assert ("request", "unplug", 0, MB) not in hooks(events, "request")
    assert run.driver.broken and run.host.plugged_pages == MB


def test_hook_unplugged(registry: Registry):
    _, events = run_of(registry, [{"plug": "256MiB"}, {"unplug": "128MiB"}])
    assert [h for h in hooks(events) if h[0] == "unplugged"] == [("unplugged", MB, 2 * MB)]


def test_hook_unplug_failed(registry: Registry):
    # the device answers BUSY: unplug_failed on the same range, the pages taken for the
    # unplug go back through fake_online, and the retry timer tries again
    faults = [{"call": "virtio_mem.unplug", "nth": 1, "status": "busy"}]
    _, events = run_of(registry, [{"plug": "256MiB"}, {"unplug": "128MiB"}], faults=faults)
    calls = [h for h in hooks(events, "response") if h[0] != "fake_online"]
    step1 = calls[calls.index(("pre_unplug", MB, 2 * MB)):]
    assert step1[:6] == [
        ("pre_unplug", MB, 2 * MB), ("response", "busy", MB, 2 * MB),
        ("unplug_failed", MB, 2 * MB),
        ("pre_unplug", MB, 2 * MB), ("response", "ack", MB, 2 * MB), ("unplugged", MB, 2 * MB)]


def test_hook_fake_online(registry: Registry):
    # one call per MAX_PAGE_ORDER block of the pages alloc_contig_range took
    faults = [{"call": "virtio_mem.unplug", "nth": 1, "status": "busy"}]
    _, events = run_of(registry, [{"plug": "256MiB"}, {"unplug": "128MiB"}], faults=faults)
    assert [h for h in hooks(events) if h[0] == "fake_online"] == [
        ("fake_online", s, s + MAX_ORDER) for s in range(MB, 2 * MB, MAX_ORDER)]


def test_hook_pre_unplug_all(registry: Registry):
    # the new kernel after kexec finds memory plugged: UNPLUG_ALL over the region
    # first, then it plugs the requested size again
    _, events = run_of(registry, [{"plug": "128MiB"}, "kexec"])
    step1 = events[[e.name for e in events].index("step", 1):]
    assert hooks(step1, "request", "response")[:5] == [
        ("pre_unplug_all", 0, REGION), ("request", "unplug_all", 0, REGION),
        ("response", "ack", 0, REGION), ("unplugged_all", 0, REGION),
        ("request", "plug", 0, MB)]


def test_hook_unplugged_all(registry: Registry):
    _, events = run_of(registry, [{"plug": "128MiB"}, "kexec"])
    assert [h for h in hooks(events) if h[0] == "unplugged_all"] == [
        ("unplugged_all", 0, REGION)]
    faults = [{"call": "virtio_mem.unplug_all", "nth": 1, "status": "busy"},
              {"call": "virtio_mem.unplug_all", "nth": 2, "status": "busy"}]
    _, events = run_of(registry, [{"plug": "128MiB"}, "kexec"], faults=faults)
    # not ACKed: no unplugged_all for those attempts
    assert [h[0] for h in hooks(events) if "all" in h[0]] == [
        "pre_unplug_all", "pre_unplug_all", "pre_unplug_all", "unplugged_all"]


def test_hook_memory_added(registry: Registry):
    _, events = run_of(registry, [{"plug": "128MiB"}])
    assert hooks(events, "add_memory", "notify") == [
        ("post_plug", 0, MB), ("add_memory", None, 0, MB), ("memory_added", 0, MB),
        ("notify", "MEM_GOING_ONLINE", 0, MB), ("memory_notify", 0, MB, "MEM_GOING_ONLINE"),
        ("notify", "MEM_ONLINE", 0, MB), ("memory_notify", 0, MB, "MEM_ONLINE")]


def test_hook_memory_removing(registry: Registry):
    _, events = run_of(registry, [{"plug": "256MiB"}, {"unplug": "256MiB"}])
    assert [h for h in hooks(events) if h[0] == "memory_removing"] == [
        ("memory_removing", MB, 2 * MB), ("memory_removing", 0, MB)]


def test_hook_memory_notify(registry: Registry):
    _, events = run_of(registry, [{"plug": "128MiB"}, {"offline_block": 0},
                                  {"online_block": 0}])
    assert [h for h in hooks(events) if h[0] == "memory_notify"] == [
        ("memory_notify", 0, MB, action) for action in (
            "MEM_GOING_ONLINE", "MEM_ONLINE", "MEM_GOING_OFFLINE", "MEM_OFFLINE",
            "MEM_GOING_ONLINE", "MEM_ONLINE")]


def test_hook_memory_notify_false_cancels_the_online(registry: Registry):
    # NOTIFY_BAD: the core emits MEM_CANCEL_ONLINE and sends it down the chain
    # (online_pages' failed_addition), the block stays offline and its plugged memory
    # is leaked
    run, events = run_of(registry, [{"plug": "128MiB"}], refuse=("memory_notify",))
    assert hooks(events, "notify") == [
        ("post_plug", 0, MB), ("memory_added", 0, MB),
        ("notify", "MEM_GOING_ONLINE", 0, MB), ("memory_notify", 0, MB, "MEM_GOING_ONLINE"),
        ("notify", MEM_CANCEL_ONLINE, 0, MB),
        ("memory_notify", 0, MB, MEM_CANCEL_ONLINE)]
    assert [v.kind for v in run.ctx.violations] == ["leak"]


# --- the Vendor API (the example's pagewise vendor) -------------------------------------

def pagewise(registry: Registry, faults: list[dict] | None = None) -> BackendRun:
    """A pagewise run with 128 MiB plugged by mainline (nothing accepted yet)."""
    run, _ = run_of(registry, [{"plug": "128MiB"}], backend="mainline", vendor="pagewise",
                    faults=faults)
    return run


def test_hook_accept_memory(registry: Registry):
    run = pagewise(registry)
    vendor, counters = run.vendor, run.ctx.counters
    assert vendor.accept_memory(0, 512) is True
    assert run.host.private.to_list()[0] == (0, 512, MAPPED_4K)
    assert (counters["pw.accept.4k.ok"], counters["exit.pw_fault"],
            counters["host.pw_add.4k"]) == (512, 512, 512)
    # a second accept stops at the first page: already accepted is a failure ...
    assert vendor.accept_memory(0, 512) is False
    assert counters["pw.accept.4k.already_accepted"] == 1
    # ... unless the caller tolerates it (the notifier series' patch 1 on TDX)
    seen: list[Event] = []
    run.ctx.listeners.append(seen.append)
    assert vendor.accept_memory(0, 512, ignore=("already_accepted",)) is True
    already = [e for e in seen if e.name == "accept.already"]
    assert all(e.info == {"tolerated": True} for e in already)
    assert (already[0].start, already[-1].end) == (0, 512)
    assert counters["pw.accept.4k.already_accepted"] == 1 + 512


def test_hook_release_memory(registry: Registry):
    run = pagewise(registry)
    assert run.vendor.accept_memory(0, 512) and run.vendor.release_memory(0, 512)
    assert run.host.private.to_list()[0] == (0, 512, PENDING_4K)
    assert run.ctx.counters["pw.release.4k.ok"] == 512
    # the 3rd RELEASE fails: the 2 pages released so far are accepted again
    run = pagewise(registry, faults=[{"call": "pw.release", "nth": 3, "status": "busy"}])
    assert run.vendor.accept_memory(0, 512)
    assert run.vendor.release_memory(0, 512) is False
    assert run.host.private.to_list()[0] == (0, 512, MAPPED_4K)
    assert run.ctx.counters["pw.accept.4k.ok"] == 512 + 2


def test_hook_set_memory_decrypted(registry: Registry):
    run = pagewise(registry)
    assert run.vendor.accept_memory(0, 512) and run.vendor.set_memory_decrypted(0, 512)
    assert run.host.attr.to_list()[0] == (0, 512, SHARED)
    assert run.host.private.to_list()[0] == (0, REGION, FREE)  # the host freed them
    assert (run.ctx.counters["pw.convert.4k.ok"], run.ctx.counters["exit.pw_convert"],
            run.ctx.counters["host.pw_remove.4k"]) == (512, 512, 512)


def test_hook_set_memory_encrypted(registry: Registry):
    run = pagewise(registry)
    assert run.vendor.set_memory_decrypted(0, 512)
    assert run.vendor.set_memory_encrypted(0, 512)
    assert run.host.attr.to_list() == [(0, REGION, PRIVATE)]
    assert run.host.private.to_list()[0] == (0, 512, MAPPED_4K)
    assert run.ctx.counters["pw.convert.4k.ok"] == 1024


def test_hook_inaccessible(registry: Registry):
    run = pagewise(registry)
    assert run.vendor.inaccessible(0, MB) == [(0, MB)]
    run.vendor.accept_memory(0, 512)
    assert run.vendor.inaccessible(0, MB) == [(512, MB)]


def test_hook_touch(registry: Registry):
    # the first page is added (one exit), the access to it, PENDING, is fatal (another)
    run = pagewise(registry)
    run.vendor.touch(0, MB)
    assert run.host.private.to_list()[:2] == [(0, 1, PENDING_4K), (1, REGION, FREE)]
    assert run.ctx.counters["exit.pw_fault"] == 2
    assert run.ctx.counters["host.pw_add.4k"] == 1
    # nothing to do where everything is accepted
    run.vendor.accept_memory(512, 1024)
    run.vendor.touch(512, 1024)
    assert run.ctx.counters["exit.pw_fault"] == 2 + 512


def test_hook_arch_accept_memory(registry: Registry):
    run = pagewise(registry, faults=[{"call": "pw.accept", "nth": 1, "status": "busy"}])
    with pytest.raises(GuestCrash) as crash:
        run.vendor.arch_accept_memory(0, 512)
    assert (crash.value.kind, crash.value.start, crash.value.end) == ("accept-panic", 0, 512)


def test_hook_each(registry: Registry):
    run = pagewise(registry)
    seen: list[Event] = []
    run.ctx.listeners.append(seen.append)
    called: list[int] = []

    def piece(pos: int, end: int) -> tuple[int, bool]:
        called.append(pos)
        return pos + 512, True

    # a uniform range: the first piece is called, the rest applied at once
    assert run.vendor.each(0, 2048, piece) == (2048, True)
    assert called == [0]
    assert [(e.name, e.start, e.end, e.info) for e in seen] == [
        ("repeat", 512, 2048, {"times": 3, "piece": 512})]
    # a piece that fails stops it there
    assert run.vendor.each(0, 2048, lambda pos, end: (pos, False)) == (0, False)


def test_hook_new_kernel(registry: Registry, monkeypatch: pytest.MonkeyPatch):
    # at boot, after kexec, when the kdump capture kernel starts, and after the reset
    # that follows it and a reboot
    vendor_cls = registry.vendors["pagewise"]
    booted: list[int] = []
    monkeypatch.setattr(vendor_cls, "new_kernel", lambda self: booted.append(self.ctx.step),
                        raising=False)
    run_of(registry, [{"plug": "128MiB"}, "kexec", "kdump", "reboot"], backend="callbacks-kexec",
           vendor="pagewise")
    assert booted == [0, 1, 2, 2, 3]


def test_hook_removing_private(registry: Registry, monkeypatch: pytest.MonkeyPatch):
    # before the host frees private pages: the maps still show them
    vendor_cls = registry.vendors["pagewise"]
    seen: list[tuple[int, int, list]] = []
    monkeypatch.setattr(vendor_cls, "removing_private", lambda self, s, e: seen.append(
        (s, e, self.host.private.runs_where(s, e, MAPPED_4K))), raising=False)
    run = pagewise(registry)
    run.vendor.accept_memory(0, 512)
    run.vendor.set_memory_decrypted(0, 2)
    # the first page's conversion frees it; the second repeats it in bulk (whatever
    # the hook did to the vendor's own maps is repeated with the rest of the state)
    assert seen == [(0, 1, [(0, 1)])]
    assert run.host.private.to_list()[:2] == [(0, 2, FREE), (2, 512, MAPPED_4K)]


def test_hook_repeatable(registry: Registry):
    run = pagewise(registry)
    seen: list[Event] = []
    run.ctx.listeners.append(seen.append)
    walks: list[int] = []

    def walk(start: int, end: int) -> int:
        walks.append(start)
        return run.vendor.accept_memory(start, end) and end

    for start in (0, 1024, 2048):  # three 4 MiB chunks in one state: one walk
        assert run.vendor.repeatable("accept", start, start + 1024,
                                     lambda s=start: walk(s, s + 1024)) == start + 1024
    assert walks == [0]
    assert [(e.start, e.end) for e in seen if e.name == "replay"] == [(1024, 2048),
                                                                      (2048, 3072)]
    assert run.host.private.to_list()[0] == (0, 3072, MAPPED_4K)
    assert run.ctx.counters["pw.accept.4k.ok"] == 3072
    # a different key, or a range in another state, is walked
    run.vendor.repeatable("accept", 3072, 4096, lambda: walk(3072, 4096), key=("other",))
    assert walks == [0, 3072]


def test_hook_describe(registry: Registry):
    vendor = registry.vendors["pagewise"]
    event = Event("pw", 0, 1, {"op": "accept", "status": "ok"})
    assert vendor.describe(event, "0x100000000+4KiB") == "PAGEWISE ACCEPT 0x100000000+4KiB -> OK"
    assert vendor.describe(Event("guest.access", 0, 1), "") is None


# --- Check ------------------------------------------------------------------------------

def test_hook_on_event(registry: Registry, monkeypatch: pytest.MonkeyPatch):
    # host-within-plugged gets the step.end of each step (its ``events``), and reports
    # the unplugged block the host keeps at the step of the unplug, the VMM's finding
    check = registry.checks["host-within-plugged"]
    seen: list[tuple[str, int]] = []
    on_event = check.on_event

    def spy(self, event: Event) -> None:
        seen.append((event.name, self.run.ctx.step))
        on_event(self, event)

    monkeypatch.setattr(check, "on_event", spy)
    loaded = load_scenario(ROOT / "scenarios" / "noop-unplug-replug.yaml",
                           set(registry.vendors))
    (comparison,) = compare_vendors(loaded, registry, ["callbacks-kexec"], ["pagewise"])
    assert seen == [("step.end", step) for step in range(6)]
    result = comparison.results["callbacks-kexec"]
    assert result.verdict == "ok"
    assert [(v["kind"], v["step"], v["by"]) for v in result.violations] == [
        ("host-over-plugged", 2, "vmm"), ("private-residue", 5, "vmm")]


def test_hook_on_finish(registry: Registry):
    # once per run, after the last step, and after a crash too
    for backend, steps, last_step in (("spy", [{"plug": "128MiB"}, {"use": "all"}], 1),
                                      ("mainline", [{"plug": "128MiB"}, {"use": "all"},
                                                    {"unplug": "128MiB"}], 1)):
        _, events = run_of(registry, steps, backend=backend, vendor="pagewise")
        finished = [e for e in events if e.name == "spy" and e.info["hook"] == "on_finish"]
        assert [e.info["step"] for e in finished] == [last_step]
        assert [e.name for e in events].index("finish") < events.index(finished[0])


# --- Report -----------------------------------------------------------------------------

def _csv_comparisons(registry: Registry, vendors: list[str]):
    loaded = load_scenario(EXAMPLE_SCENARIOS[-1], set(registry.vendors))
    return compare_vendors(loaded, registry, ["mainline", "callbacks-kexec"], vendors)


def test_hook_render(registry: Registry):
    (comparison,) = _csv_comparisons(registry, ["pagewise"])
    rows = list(csv.DictReader(io.StringIO(registry.reports["csv"]("csv").render(comparison))))
    assert [(r["backend"], r["verdict"], r["violations"]) for r in rows] == [
        ("mainline", "crashed", "access-unaccepted"),
        ("callbacks-kexec", "ok", "host-over-plugged")]
    kexec = rows[1]
    assert (kexec["calls"], kexec["exits"], kexec["requests"]) == (
        str(163840 + 294912), "65536", "7")


def test_hook_render_many(registry: Registry):
    comparisons = _csv_comparisons(registry, ["pagewise", "tdx"])
    text = registry.reports["csv"]("csv").render_many(comparisons)
    lines = text.splitlines()
    assert lines[0].startswith("scenario,vendor,backend,") and len(lines) == 5
    assert [line.split(",")[1] for line in lines[1:]] == ["pagewise"] * 2 + ["tdx"] * 2


# --- the example distribution as a whole --------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLE_SCENARIOS, ids=lambda p: p.stem)
def test_example_scenario_expectations_hold(registry: Registry, path: Path):
    loaded = load_scenario(path, set(registry.vendors))
    (comparison,) = compare_vendors(loaded, registry)
    assert comparison.expectation_failures == []
    assert all(r.error is None and not r.plugin_errors for r in comparison.results.values())


def test_example_pyproject_names_each_plugin_module():
    import tomllib

    data = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["cocomem"] == {
        name: f"cocomem_pagewise.{name}" for name in EXAMPLE_PLUGINS}
