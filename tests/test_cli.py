"""The command line as users and scripts rely on it (README "Comparing designs",
docs/model.md, README): the four backends in one table, the email and JSON formats, exit
status 1 on a failed ``expect:``, exit status 2 with one ``cocomem: error:``
line (file, line, key; never a traceback) on bad input, and ``--plugin``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import ROOT, cli, in_repo  # noqa: F401 (in_repo: a fixture)

pytestmark = pytest.mark.usefixtures("in_repo")

SHIPPED = "scenarios/half-plugged-block.yaml"  # relative: it appears in reproduce commands
BACKENDS = ["mainline", "notifier", "start-shared", "callbacks", "plugged-bitmap"]
#: the verdicts half-plugged-block.yaml pins for each built-in backend
VERDICTS = {"mainline": "crashed", "notifier": "unsafe", "start-shared": "ok",
            "callbacks": "ok", "plugged-bitmap": "unsafe"}
COCOMEM = Path(sys.executable).parent / "cocomem"


def rows(text: str) -> dict[str, list[str]]:
    """The table rows of ``compare`` output, by backend: the cells split on blanks."""
    out = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] in BACKENDS + ["accept-twice", "boom"] and line[0] != " ":
            out[cells[0]] = cells
    return out


# --- 1. compare on a shipped scenario -------------------------------------------------

def test_compare_table_lists_all_four_backends_with_verdicts():
    result = cli("compare", SHIPPED)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "half-plugged-block (vendor tdx)"
    assert lines[2].split()[:3] == ["backend", "verdict", "violations"]
    table = rows(result.stdout)
    assert list(table) == BACKENDS  # every backend, in the README's order
    for name, verdict in VERDICTS.items():
        assert table[name][1] == verdict
    assert table["mainline"][2] == "access-unaccepted"
    assert table["notifier"][2:5] == ["accept-unbacked,", "private-residue", "(vmm)"]
    assert table["callbacks"][2] == "-"


def test_compare_email_fits_72_columns_and_says_how_to_reproduce():
    result = cli("compare", SHIPPED, "--format", "email")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 72]
    assert too_wide == []
    assert lines[0] == "Scenario: half-plugged-block (vendor tdx)"
    reproduce = lines.index("Reproduce:")
    assert lines[reproduce + 1] == f"  $ cocomem compare {SHIPPED} --format email"
    table = rows(result.stdout)
    assert list(table) == BACKENDS
    assert {name: cells[1] for name, cells in table.items()} == VERDICTS
    assert "  mainline: access-unaccepted @1: 0x100000000 +4.0K" in lines


def test_compare_email_reproduce_command_keeps_the_options():
    result = cli("compare", SHIPPED, "--format", "email", "--backend", "callbacks",
                 "--vendor", "tdx")
    assert result.exit_code == 0, result.stderr
    command = result.stdout.split("Reproduce:\n", 1)[1].split("\n\n", 1)[0]
    unfolded = " ".join(part.strip(" \\") for part in command.splitlines())
    assert unfolded == (f"$ cocomem compare {SHIPPED} --backend callbacks --vendor tdx "
                        "--format email")
    assert all(len(line) <= 72 for line in result.stdout.splitlines())
    assert list(rows(result.stdout)) == ["callbacks"]


def test_compare_json_has_exactly_the_design_shape():
    result = cli("compare", SHIPPED, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"scenario", "vendor", "results"}
    assert data["scenario"] == "half-plugged-block"
    assert data["vendor"] == "tdx"
    assert list(data["results"]) == BACKENDS
    for name, r in data["results"].items():
        assert set(r) >= {"verdict", "violations", "counters", "cost_us", "host_bytes",
                          "why"}, name
        assert set(r) - {"verdict", "violations", "counters", "cost_us", "host_bytes",
                         "why"} <= {"cost", "touched", "unaccepted_online"}, name
        assert r["verdict"] == VERDICTS[name]
        for v in r["violations"]:
            assert set(v) == {"kind", "step", "start", "size", "by"}
            assert v["by"] == ("vmm" if v["kind"] == "private-residue" else "design")
            assert isinstance(v["kind"], str)
            assert all(type(v[k]) is int for k in ("step", "start", "size"))
        assert all(isinstance(k, str) and type(n) is int for k, n in r["counters"].items())
        assert type(r["cost_us"]) is float and r["cost_us"] > 0
        assert set(r["host_bytes"]) == {"peak", "end"}
        assert all(type(n) is int for n in r["host_bytes"].values())
    mainline = data["results"]["mainline"]
    assert mainline["violations"] == [{"kind": "access-unaccepted", "step": 1,
                                       "start": 4 << 30, "size": 4096, "by": "design"}]
    assert [v["kind"] for v in data["results"]["notifier"]["violations"]] == \
        ["accept-unbacked", "private-residue"]
    callbacks = data["results"]["callbacks"]
    assert callbacks["violations"] == []
    assert callbacks["counters"]["host.aug.4k"] == 16384
    assert callbacks["host_bytes"] == {"peak": 64 << 20, "end": 64 << 20}
    assert data["results"]["notifier"]["counters"]["host.aug.4k"] == 32768


def test_compare_github_format_is_tabulate_github():
    result = cli("compare", SHIPPED, "--format", "github")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].startswith("| backend ") and lines[2].endswith("|")
    assert lines[3].startswith("|----")
    body = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[4:]]
    assert [(cells[0], cells[1]) for cells in body] == list(VERDICTS.items())


def test_compare_output_file_is_written_and_nothing_printed(tmp_path: Path):
    out = tmp_path / "report.txt"
    result = cli("compare", SHIPPED, "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""
    assert out.read_text() == cli("compare", SHIPPED).stdout


def test_compare_output_to_unwritable_path_is_bad_input(tmp_path: Path):
    result = cli("compare", SHIPPED, "--output", tmp_path / "no" / "such" / "dir.txt")
    assert result.exit_code == 2
    assert result.stderr.startswith("cocomem: error: cannot write ")
    assert "No such file or directory" in result.stderr


def test_compare_one_backend_runs_only_that_one():
    result = cli("compare", SHIPPED, "--backend", "callbacks", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert list(json.loads(result.stdout)["results"]) == ["callbacks"]
    table = cli("compare", SHIPPED, "--backend", "callbacks").stdout
    assert list(rows(table)) == ["callbacks"]


# --- 2. a failed expect: --------------------------------------------------------------

def test_failed_expect_exits_1_and_names_backend_and_difference(tmp_path: Path):
    text = (ROOT / SHIPPED).read_text()
    wrong = text.replace("  callbacks:\n    verdict: ok\n", "  callbacks:\n    verdict: degraded\n")
    wrong = wrong.replace("host.aug.4k: 16384", "host.aug.4k: 16385")
    assert wrong.count("degraded") == 1 and "16385" in wrong
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(wrong)
    result = cli("compare", scenario)
    assert result.exit_code == 1
    assert list(rows(result.stdout)) == BACKENDS  # the table is still printed
    assert result.stderr.splitlines() == [
        "expect failed: callbacks: verdict ok, expected degraded",
        "expect failed: callbacks: counter host.aug.4k = 16384, expected 16385",
    ]


def test_failed_expect_on_violations(tmp_path: Path):
    text = (ROOT / SHIPPED).read_text()
    wrong = text.replace("violations: [accept-unbacked, private-residue]",
                         "violations: [private-residue]", 1)
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(wrong)
    result = cli("compare", scenario, "--format", "json")
    assert result.exit_code == 1
    json.loads(result.stdout)
    assert result.stderr.splitlines() == [
        "expect failed: notifier: violations ['accept-unbacked', 'private-residue'], "
        "expected ['private-residue']",
    ]


# --- 3. bad input: exit 2, one line, file:line: key: message -------------------------

BASE = """\
name: t
vendor: tdx
device:
  region_size: 1GiB
  block_size: 2MiB
vmm:
  memory: start-private
steps:
  - plug: 64MiB
"""


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def test_base_scenario_is_good(tmp_path: Path):
    scenario = tmp_path / "t.yaml"
    scenario.write_text(BASE)
    result = cli("compare", scenario)
    assert result.exit_code == 0, result.stderr


# (case id, scenario text, extra arguments, the message after "cocomem: error: t.yaml")
BAD_SCENARIOS = [
    ("malformed-yaml", edit("block_size: 2MiB", "block_size: [2MiB"), [],
     ":6: malformed YAML: did not find expected ',' or ']'"),
    ("tab-indent", edit("  block_size", "\tblock_size"), [],
     ":5: malformed YAML: found a tab character that violates indentation"),
    ("not-a-mapping", "- plug: 64MiB\n", [],
     ":1: a scenario is a YAML mapping (name:, device:, steps:, ...)"),
    ("empty-file", "", [],
     ":1: a scenario is a YAML mapping (name:, device:, steps:, ...)"),
    ("missing-device", "name: t\n", [], ":1: device: required key is missing"),
    ("unknown-top-level-key", BASE + "colour: red\n", [], ":10: colour: unknown key"),
    ("unknown-device-key", edit("  block_size: 2MiB\n", "  block_size: 2MiB\n  colour: red\n"),
     [], ":6: device.colour: unknown key"),
    ("unknown-vmm-key", edit("  memory: start-private\n",
                             "  memory: start-private\n  colour: red\n"),
     [], ":8: vmm.colour: unknown key"),
    ("unknown-tdx-key", BASE + "tdx: {page_release: true, colour: red}\n", [],
     ":10: vendor_options.tdx.colour: unknown key"),
    ("unknown-backend-options-key", BASE + "backend_options:\n  callbacks: {colour: red}\n", [],
     ":11: backend_options.callbacks.colour: unknown key"),
    ("duplicate-key", BASE + "expect:\n  callbacks: {verdict: ok}\n"
     "  callbacks: {verdict: unsafe}\n", [], ":12: expect.callbacks: duplicate key"),
    ("unknown-vendor", edit("vendor: tdx", "vendor: nosuch"), [],
     ":2: vendor: unknown vendor 'nosuch'; known: "),
    ("unknown-vendor-flag", BASE, ["--vendor", "nosuch"],
     ": --vendor: unknown vendor 'nosuch'; known: "),
    ("unknown-backend-flag", BASE, ["--backend", "callbacks", "--backend", "nosuch"],
     ": --backend: unknown backend 'nosuch'; known: callbacks, mainline, notifier, "
     "plugged-bitmap, start-shared"),
    ("unknown-backend-key", BASE + "backends: [callbacks, nosuch]\n", [],
     ":10: backends.1: unknown backend 'nosuch'; known: callbacks, mainline, notifier, "
     "plugged-bitmap, start-shared"),
    ("unknown-expect-backend", BASE + "expect:\n  nosuch: {verdict: ok}\n", [],
     ":11: expect.nosuch: unknown backend 'nosuch'; known: callbacks, mainline, notifier, "
     "plugged-bitmap, start-shared"),
    ("removed-callbacks-option",
     BASE + "backend_options:\n  callbacks: {skip_release_without_page_release: true}\n", [],
     ":11: backend_options.callbacks: skip_release_without_page_release was removed: RFC v1 "
     "as posted issues no RELEASE without PAGE_RELEASE"),
    ("unknown-verdict", BASE + "expect:\n  callbacks: {verdict: fine}\n", [],
     ":11: expect.callbacks.verdict: Input should be 'ok', 'degraded', 'unsafe', "
     "'crashed' or 'error'"),
    ("unknown-violation-kind", BASE + "expect:\n  callbacks: {violations: [nosuch]}\n", [],
     ":11: expect.callbacks.violations: unknown violation kind 'nosuch'; kinds: "),
    ("negative-size", edit("region_size: 1GiB", "region_size: -1GiB"), [],
     ":4: device.region_size: must not be negative (got '-1GiB')"),
    ("negative-bytes", edit("block_size: 2MiB", "block_size: -2097152"), [],
     ":5: device.block_size: must not be negative (got -2097152)"),
    ("not-a-size", edit("plug: 64MiB", "plug: 64 apples"), [],
     ":9: steps.0: not a size: '64 apples' (use e.g. 2MiB, 512M, 1GiB or bytes)"),
    ("block-size-not-power-of-two", edit("block_size: 2MiB", "block_size: 3MiB"), [],
     ":5: device.block_size: must be a power of two (got 3145728 bytes)"),
    ("plug-not-block-aligned", edit("plug: 64MiB", "plug: 3MiB"), [],
     ":9: steps.0: plug size 3MiB is not a multiple of the subblock size 2MiB"),
    ("plug-not-4m-block-aligned",
     edit("block_size: 2MiB", "block_size: 4MiB").replace("plug: 64MiB", "plug: 6MiB"), [],
     ":9: steps.0: plug size 6MiB is not a multiple of the subblock size 4MiB"),
    ("plug-larger-than-region", edit("plug: 64MiB", "plug: 2GiB"), [],
     ":9: steps.0: requested size 2GiB is larger than the region (1GiB)"),
    ("unplug-more-than-plugged", BASE + "  - unplug: 128MiB\n", [],
     ":10: steps.1: unplugs more than was requested"),
    ("plug-without-size", edit("plug: 64MiB", "plug:"), [],
     ":9: steps.0: step 'plug' needs a size"),
    ("offline-without-block", BASE + "  - offline_block:\n", [],
     ":10: steps.1: step 'offline_block' needs a memory block number"),
    ("vmm-step-without-settings", BASE + "  - vmm:\n", [],
     ":10: steps.1: step 'vmm' needs VMM settings"),
    ("unknown-step", BASE + "  - jump: 1\n", [],
     ":10: steps.1: unknown step 'jump'; steps: plug, unplug, use, free, kexec, kdump, "
     "reboot, offline_block, online_block, vmm"),
    ("unknown-fault-call", BASE + "faults:\n  - {call: tdcall.nosuch, nth: 1, status: ok}\n",
     [], ":11: faults.0.call: unknown call 'tdcall.nosuch'; calls: "),
    ("unknown-fault-status",
     BASE + "faults:\n  - {call: virtio_mem.plug, nth: 1, status: maybe}\n", [],
     ":11: faults.0.status: virtio_mem.plug has no status 'maybe'; statuses: "),
]


#: ``run`` does not judge ``expect:``, so it does not look at the violation kinds there
COMPARE_ONLY = {"unknown-violation-kind"}


@pytest.mark.parametrize("case,text,args,message", BAD_SCENARIOS,
                         ids=[case[0] for case in BAD_SCENARIOS])
def test_bad_scenario_is_one_error_line_with_file_line_and_key(
        tmp_path: Path, case: str, text: str, args: list[str], message: str):
    scenario = tmp_path / "t.yaml"
    scenario.write_text(text)
    commands = [["compare", scenario], ["run", scenario, "--backend", "callbacks"]]
    for command in commands[:1] if case in COMPARE_ONLY else commands:
        if "--backend" in args:
            command = command[:2]  # run takes one --backend: the case's
        result = cli(*command, *args)
        assert result.exit_code == 2, (command, result.stdout, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        prefix = f"cocomem: error: {scenario}"
        assert lines[0].startswith(prefix + message), lines[0]


def test_unknown_format_is_bad_input():
    result = cli("compare", SHIPPED, "--format", "nosuch")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("cocomem: error: unknown format 'nosuch'; formats: email, json, "
                           "table and tabulate's (")
    assert " github, grid, " in line


def test_missing_scenario_file_is_bad_input(tmp_path: Path):
    missing = tmp_path / "missing.yaml"
    result = cli("compare", missing)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"cocomem: error: {missing}: cannot read scenario: No such file or directory"]


def test_scenario_that_is_not_text_is_bad_input(tmp_path: Path):
    scenario = tmp_path / "binary.yaml"
    scenario.write_bytes(b"name: \xff\xfe\n")
    result = cli("compare", scenario)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"cocomem: error: {scenario}:1: cannot read scenario: not UTF-8 text (byte 6)"]


def write_plugin(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


PLUGIN_HEAD = """\
from cocomem.backend import Backend
from cocomem.hookspecs import hookimpl
"""

BAD_PLUGINS = [
    ("missing", None, "--plugin {path}: no such file"),
    ("syntax", "def broken(:\n    pass\n",
     "--plugin {path}: SyntaxError: invalid syntax (syntax.py, line 1)"),
    ("importerror", "import cocomem_no_such_module\n",
     "--plugin {path}: ModuleNotFoundError: No module named 'cocomem_no_such_module'"),
    ("raises", PLUGIN_HEAD + "@hookimpl\ndef register_backends(register):\n"
     "    raise ValueError('no backends today')\n",
     "plugin 'raises' ({path}) failed in register_backends: ValueError: no backends today"),
    ("notsub", PLUGIN_HEAD + "class X:\n    name = 'x'\n"
     "@hookimpl\ndef register_backends(register):\n    register(X)\n",
     "plugin 'notsub' ({path}) registered <class 'cocomem_plugin_notsub.X'> as a backend, "
     "but it is not a subclass of cocomem.backend.Backend"),
    ("dup", PLUGIN_HEAD + "class X(Backend):\n    name = 'callbacks'\n"
     "@hookimpl\ndef register_backends(register):\n    register(X)\n",
     "plugin 'dup' ({path}) registers backend 'callbacks', already registered by 'callbacks'"),
    ("misspelt", PLUGIN_HEAD + "@hookimpl\ndef register_backend(register):\n    pass\n",
     "--plugin {path}: unknown hook 'register_backend'; hooks: register_vendors, "
     "register_backends, register_checks, register_reports"),
    ("callbacks", PLUGIN_HEAD,
     "--plugin {path}: a plugin named 'callbacks' is already loaded; rename the file"),
]


@pytest.mark.parametrize("stem,body,message", BAD_PLUGINS, ids=[c[0] for c in BAD_PLUGINS])
def test_bad_plugin_is_one_error_line_naming_the_file(
        tmp_path: Path, stem: str, body: str | None, message: str):
    path = tmp_path / f"{stem}.py"
    if body is not None:
        path.write_text(body)
    expected = [f"cocomem: error: {message.format(path=path)}"]
    for command in (["plugins"], ["compare", SHIPPED],
                    ["run", SHIPPED, "--backend", "callbacks"]):
        result = cli(*command, "--plugin", path)
        assert result.exit_code == 2, (command, result.stdout, result.stderr)
        assert result.stdout == ""
        assert result.stderr.splitlines() == expected


@pytest.mark.parametrize("args", [
    ["compare", "{tmp}/bad.yaml"],
    ["compare", "{tmp}/plugless.yaml"],
    ["compare", SHIPPED, "--plugin", "{tmp}/raises.py"],
    ["compare", SHIPPED, "--plugin", "{tmp}/syntax.py"],
], ids=["malformed-yaml", "plug-without-size", "plugin-raises", "plugin-syntax"])
def test_bad_input_never_shows_a_traceback_from_the_installed_command(
        tmp_path: Path, args: list[str]):
    (tmp_path / "bad.yaml").write_text(edit("block_size: 2MiB", "block_size: [2MiB"))
    (tmp_path / "plugless.yaml").write_text(edit("plug: 64MiB", "plug:"))
    write_plugin(tmp_path / "raises.py", BAD_PLUGINS[3][1])
    write_plugin(tmp_path / "syntax.py", BAD_PLUGINS[1][1])
    argv = [arg.format(tmp=tmp_path) for arg in args]
    proc = subprocess.run([str(COCOMEM), *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("cocomem: error: ") and str(tmp_path) in line


# --- 4. third-party plugins -----------------------------------------------------------

GOOD_PLUGIN = PLUGIN_HEAD + '''
__version__ = "9.9"


class AcceptTwice(Backend):
    name = "accept-twice"
    description = "accepts on plug"

    def post_plug(self, start, end):
        return self.vendor.accept_memory(start, end)


@hookimpl
def register_backends(register):
    register(AcceptTwice)
'''

BOOM_PLUGIN = PLUGIN_HEAD + '''

class Boom(Backend):
    name = "boom"

    def post_plug(self, start, end):
        raise RuntimeError("kaboom in post_plug")


@hookimpl
def register_backends(register):
    register(Boom)
'''


def test_plugin_backend_is_listed_by_plugins(tmp_path: Path):
    plugin = write_plugin(tmp_path / "third_party.py", GOOD_PLUGIN)
    result = cli("plugins", "--plugin", plugin)
    assert result.exit_code == 0, result.stderr
    table = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert table["third_party"] == ["third_party", "backend", "accept-twice", "9.9",
                                    "register_backends"]
    assert table["callbacks"] == ["callbacks", "backend", "callbacks", "0.1.0",
                                  "register_backends"]
    assert "third_party" not in cli("plugins").stdout


def test_plugin_backend_runs_beside_the_builtins(tmp_path: Path):
    plugin = write_plugin(tmp_path / "third_party.py", GOOD_PLUGIN)
    result = cli("compare", SHIPPED, "--plugin", plugin)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    table = rows(result.stdout)
    assert list(table) == BACKENDS + ["accept-twice"]
    # it accepts exactly the plugged range, as callbacks does
    assert table["accept-twice"][1:] == table["callbacks"][1:]
    one = cli("compare", SHIPPED, "--plugin", plugin, "--backend", "accept-twice",
              "--format", "json")
    assert one.exit_code == 0, one.stderr
    assert json.loads(one.stdout)["results"]["accept-twice"]["verdict"] == "ok"


def test_plugin_backend_that_raises_gets_verdict_error_and_others_still_report(
        tmp_path: Path):
    plugin = write_plugin(tmp_path / "boomer.py", BOOM_PLUGIN)
    result = cli("compare", SHIPPED, "--plugin", plugin)
    assert result.exit_code == 0  # not bad input; the built-ins' expectations held
    table = rows(result.stdout)
    assert list(table) == BACKENDS + ["boom"]
    assert {name: table[name][1] for name in BACKENDS} == VERDICTS
    assert table["boom"][1] == "error"
    assert result.stderr.splitlines() == [
        "cocomem: backend boom (plugin 'boomer') failed: RuntimeError: kaboom in post_plug"]

    data = json.loads(cli("compare", SHIPPED, "--plugin", plugin, "--format", "json").stdout)
    assert data["results"]["boom"]["verdict"] == "error"
    assert data["results"]["boom"]["error"] == "RuntimeError: kaboom in post_plug"
    assert data["results"]["boom"]["plugin"] == "boomer"
    assert data["results"]["callbacks"]["verdict"] == "ok"

    email = cli("compare", SHIPPED, "--plugin", plugin, "--format", "email").stdout
    assert ("  boom: error (plugin 'boomer'): RuntimeError: kaboom in post_plug"
            in email.splitlines())


def test_plugin_backend_can_be_expected_to_error(tmp_path: Path):
    plugin = write_plugin(tmp_path / "boomer.py", BOOM_PLUGIN)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(BASE + "expect:\n  boom: {verdict: ok}\n")
    result = cli("compare", scenario, "--plugin", plugin)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "cocomem: backend boom (plugin 'boomer') failed: RuntimeError: kaboom in post_plug",
        "expect failed: boom: verdict error, expected ok",
    ]
    scenario.write_text(BASE + "expect:\n  boom: {verdict: error}\n")
    assert cli("compare", scenario, "--plugin", plugin).exit_code == 0


# --- 5. run --trace -------------------------------------------------------------------

def test_run_trace_prints_every_step_then_the_verdict_and_counters():
    result = cli("run", SHIPPED, "--backend", "callbacks", "--trace")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "step 0: plug 64MiB"
    trace = lines[:lines.index("")]
    # every line but the step headers names the function it models
    assert "  virtio-mem PLUG 0x100000000+64MiB  [virtio_mem_send_plug_request]" in trace
    assert "  virtio-mem PLUG -> ACK  [QEMU virtio_mem_state_change_request]" in trace
    assert "  tdx_accept_memory 0x100000000+64MiB" in trace
    assert ("  TDCALL TDG.MEM.PAGE.ACCEPT 0x100000000+2MiB level=2m -> SIZE_MISMATCH"
            "  [try_accept_one]" in trace)
    assert ("  TDCALL TDG.MEM.PAGE.ACCEPT 0x100000000+4KiB level=4k -> OK  [try_accept_one]"
            in trace)
    assert ("    exit EPT_VIOLATION 0x100000000+4KiB level=2m  [KVM tdx_handle_ept_violation]"
            in trace)
    assert ("  memory notifier MEM_GOING_ONLINE 0x100000000+128MiB"
            "  [online_pages: memory_notify]" in trace)
    assert all(line.endswith("]") for line in trace
               if not line.startswith(("step ", "  tdx_", "  guest ", "  ...")))
    assert "step 1: use all" in trace
    summary = lines[len(trace) + 1:]
    assert summary[0] == "callbacks: ok (no violation of the design)"
    assert "  host.aug.4k = 16384" in summary
    assert "  tdcall.accept.4k.ok = 16384" in summary
    assert "  virtio_mem.plug.ack = 1" in summary
    assert all(line.startswith("  ") and " = " in line for line in summary[1:])


def test_run_without_trace_prints_only_the_result():
    result = cli("run", SHIPPED, "--backend", "mainline")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("mainline: crashed (access-unaccepted at step 1, 0x100000000+4KiB: "
                        "guest touched memory it has not accepted)")
    # the TD dies at the first page: KVM adds it, then the PENDING-type violation
    # is fatal (tdx_handle_ept_violation)
    assert lines[1] == "  access-unaccepted at step 1: 0x100000000 size 0x1000"
    assert "  exit.ept_violation = 2" in lines
    assert not any("TDCALL" in line or line.startswith("step ") for line in lines)


# --- 6. explain and plugins --verbose ------------------------------------------------

def test_explain_gives_the_chain_of_each_violation():
    result = cli("explain", "scenarios/noop-unplug-replug.yaml", "--backend", "notifier")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "notifier: unsafe (stale-assumed-zero, double-accept, private-residue)"
    first = lines.index("stale-assumed-zero 0x108000000+4KiB: holds data written at step 1, "
                        "unplugged since")
    chain = lines[first + 1:lines.index("double-accept 0x108000000+4KiB")]
    # the write, the unplug that took the data away (and what the host did),
    # the re-plug, and the call whose status the guest ignored, in order
    assert chain[chain.index("  step 1: guest writes 0x100000000+256MiB") + 1:] == [
        "  step 2: virtio-mem UNPLUG 0x108000000+128MiB  [virtio_mem_send_unplug_request]",
        "  step 2: host discard 0x108000000+128MiB planes=shared  "
        "[QEMU virtio_mem_set_block_state]",
        "  step 2: virtio-mem UNPLUG -> ACK  [QEMU virtio_mem_state_change_request]",
        "  step 2: remove_memory 0x108000000+128MiB  [offline_and_remove_memory]",
        "  step 3: virtio-mem PLUG 0x108000000+128MiB  [virtio_mem_send_plug_request]",
        "  step 3: virtio-mem PLUG -> ACK  [QEMU virtio_mem_state_change_request]",
        "  step 3: add_memory 0x108000000+128MiB  [add_memory_driver_managed]",
        "  step 3: memory notifier MEM_GOING_ONLINE 0x108000000+128MiB  "
        "[online_pages: memory_notify]",
        "  step 3: tdx_accept_memory 0x108000000+128MiB",
        "  step 3: TDCALL TDG.MEM.PAGE.ACCEPT 0x108000000+4KiB level=4k -> ALREADY_ACCEPTED"
        "  [try_accept_one]",
    ]


def test_explain_of_a_clean_run_says_so():
    result = cli("explain", SHIPPED, "--backend", "callbacks")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["callbacks: ok (no violations)"]


def test_explain_unknown_backend_is_bad_input():
    result = cli("explain", SHIPPED, "--backend", "nosuch")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"cocomem: error: {SHIPPED}: --backend: unknown backend")


def test_plugins_verbose_names_each_revision_and_assumption():
    result = cli("plugins", "--verbose")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert ('  callbacks: "[RFC PATCH 0/6] Support virtio-mem memory hotplug in TDX guests", '
            "2026-06-04, <20260604093551.1511079-1-zhenzhong.duan@intel.com>") in out
    assert "  mainline: mainline Linux" in out
    assert "departs (unplug-all-untouched):" in out
    assert "tdx (release-not-accepted):" in out
    assert "  boot-memory-1g: the guest booted with 1 GiB" in out
