"""The plugin author's guide, docs/plugins.md, kept true the way datasette keeps its
plugin docs: every hook, Backend hook method, Vendor API method and Check and
Report method has a section (with the code's parameters) and a ``test_hook_*``
test that makes it fire; every class attribute of the base classes is in its
table; every event a run of the shipped scenarios emits is in the event
reference with its fields; the code the guide quotes from the example
distribution is the example's code, word for word, and covers all of it; and
every command it shows prints what it shows."""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from test_example_plugin import EXAMPLE, EXAMPLE_FILES, EXAMPLE_SCENARIOS, example_registry
from typer.testing import CliRunner

from cocomem import Backend, Check, Report, Vendor, hookspecs, load_registry
from cocomem.cli import app
from cocomem.engine import BackendRun
from cocomem.registry import Registry
from cocomem.run import Event
from cocomem.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "plugins.md"
DOC = DOC_PATH.read_text()
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


# --- the hooks ---------------------------------------------------------------------------

def _hookspecs() -> list[tuple[str, object]]:
    return [(name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "cocomem_spec")]


def _methods(cls: type) -> list[tuple[str, object]]:
    """The public methods a base class defines (the plugin API), classmethods too."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, classmethod):
            out.append((f"{cls.__name__}.{name}", value.__func__))
        elif inspect.isfunction(value):
            out.append((f"{cls.__name__}.{name}", value))
    return out


#: every hook: (name as the guide's heading writes it, the function)
HOOKS = _hookspecs() + [m for cls in (Backend, Vendor, Check, Report) for m in _methods(cls)]


def _params(fn: object) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]


HEADING = re.compile(r"^#{2,6} `(?P<name>[\w.]+)\((?P<params>[^)]*)\)", re.MULTILINE)
DOCUMENTED = {m["name"]: [p.split("=")[0].split(":")[0].strip()
                          for p in m["params"].split(",") if p.strip() not in ("", "*")]
              for m in HEADING.finditer(DOC)}


def test_the_hooks_are_found():
    names = [name for name, _ in HOOKS]
    assert {"register_vendors", "Backend.post_plug", "Vendor.accept_memory", "Vendor.each",
            "Vendor.describe", "Check.on_event", "Report.render_many"} <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name,fn", HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_has_a_section_with_its_parameters(name: str, fn: object):
    assert name in DOCUMENTED, f"docs/plugins.md has no heading `{name}(...)`"
    assert DOCUMENTED[name] == _params(fn), f"{name}: the heading's parameters differ"


def test_every_section_is_a_hook():
    assert sorted(set(DOCUMENTED) - {name for name, _ in HOOKS}) == []


def _hook_tests() -> dict[str, str]:
    """``test_hook_*`` functions in tests/: name -> source (without the def line)."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_"):
                body = ast.get_source_segment(text, node) or ""
                found[node.name] = body.split("\n", 1)[1] if "\n" in body else ""
    return found


HOOK_TESTS = _hook_tests()


@pytest.mark.parametrize("name", [name for name, _ in HOOKS], ids=[name for name, _ in HOOKS])
def test_every_hook_has_a_test_that_makes_it_fire(name: str):
    # datasette's convention: test_hook_<name>; its body must use the hook by name
    short = name.split(".")[-1]
    test = f"test_hook_{short}"
    assert test in HOOK_TESTS, f"no {test} in tests/"
    assert short in HOOK_TESTS[test], f"{test} never names {short}"


# --- class attributes ----------------------------------------------------------------------

def _section(title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, re.MULTILINE | re.DOTALL)
    assert match, f"docs/plugins.md has no section '## {title}'"
    return match.group(1)


@pytest.mark.parametrize("cls", [Vendor, Backend, Check, Report], ids=lambda c: c.__name__)
def test_every_class_attribute_is_in_its_table(cls: type):
    section = _section(cls.__name__)
    missing = [name for name in cls.__annotations__ if f"| `{name}` |" not in section]
    assert missing == []


# --- events --------------------------------------------------------------------------------

EVENTS = _section("Events")


def _row(name: str) -> str | None:
    """The event reference's table row whose first cell names ``name``."""
    for line in EVENTS.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2 and f"`{name}`" in cells[1]:
            return line
    return None


def test_every_event_the_core_emits_is_in_the_reference():
    # by reading the code: events no shipped scenario reaches count too
    names = set()
    for path in (ROOT / "cocomem").glob("*.py"):
        names |= set(re.findall(r'\.emit\(\s*"([\w.]+)"', path.read_text()))
    assert {"step", "guest.access", "notify"} <= names
    assert sorted(name for name in names if _row(name) is None) == []


class _Collector:
    """A RunContext listener: each event name, and its fields by who emitted it (the
    caller of ``ctx.emit``): ``core``, or the vendor whose module emitted it."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.vendors: dict[str, set[str]] = defaultdict(set)
        self.vendor = ""
        self.vendor_module = ""

    def run(self, registry: Registry, path: Path) -> None:
        loaded = load_scenario(path, set(registry.vendors))
        s = loaded.scenario
        for vendor in [s.vendor, *s.vendor_expect]:
            self.vendor, self.vendor_module = vendor, registry.vendors[vendor].__module__
            for backend in sorted(registry.backends):
                run = BackendRun(loaded, registry, backend, vendor)
                run.ctx.listeners.insert(0, self.listen)
                run.run()

    def listen(self, event: Event) -> None:
        caller = sys._getframe(2).f_globals.get("__name__", "")  # listen <- emit <- caller
        if caller == "cocomem.bulk":  # a repetition: its first piece was seen already
            return
        owner = self.vendor if caller == self.vendor_module else "core"
        self.fields[event.name][owner] |= set(event.info)
        self.vendors[event.name].add(self.vendor)


@pytest.fixture(scope="module")
def collected() -> tuple[_Collector, Registry]:
    """Every event of every shipped scenario, on its vendor and on every vendor it
    pins, for every backend; and of the example's scenarios with the example."""
    collector = _Collector()
    registry = load_registry()
    for path in SCENARIOS:
        collector.run(registry, path)
    example = example_registry()
    for path in EXAMPLE_SCENARIOS:
        collector.run(example, path)
    return collector, example


def _vendor_page(vendor: str) -> str:
    page = ROOT / "docs" / f"{vendor}.md"
    return page.read_text() if page.exists() else ""


def test_every_event_of_the_shipped_scenarios_is_in_the_reference_with_its_fields(collected):
    # core events and their fields: in docs/plugins.md; a vendor's own events, host
    # words and the fields its code adds: there, or on the vendor's page in docs/
    collector, registry = collected
    assert {"step", "request", "accept.done", "guest.access"} <= set(collector.fields)
    problems = []
    for name, by_owner in sorted(collector.fields.items()):
        row = _row(name)
        words = {w for v in collector.vendors[name] for w in (
            registry.vendors[v].host_words.add, registry.vendors[v].host_words.remove,
            registry.vendors[v].host_words.demote)}
        owners = set(by_owner) - {"core"} | (collector.vendors[name] if name in words else set())
        if row is None and ("core" in by_owner and name not in words or not all(
                f"`{name}`" in _vendor_page(v) for v in owners)):
            problems.append(f"{name}: not in docs/plugins.md's event reference")
            continue
        for owner, fields in by_owner.items():
            for field in sorted(fields):
                if f"`{field}`" in (row or ""):
                    continue
                if owner != "core" and f"`{field}`" in _vendor_page(owner):
                    continue
                problems.append(f"{name}: field {field} ({owner}) not in its row")
    assert problems == []


# --- code quoted from the example ----------------------------------------------------------

QUOTE = re.compile(r"<!-- quote: (?P<path>\S+) -->\n```\w*\n(?P<code>.*?)\n```", re.DOTALL)
QUOTES = [(m["path"], m["code"]) for m in QUOTE.finditer(DOC)]


def test_the_guide_quotes_the_example():
    assert {path for path, _ in QUOTES} >= {str(p.relative_to(ROOT)) for p in EXAMPLE_FILES}


@pytest.mark.parametrize("path,code", QUOTES, ids=[f"{p}:{i}" for i, (p, _) in enumerate(QUOTES)])
def test_quoted_code_is_the_examples_word_for_word(path: str, code: str):
    source = (ROOT / path).read_text()
    assert code in source, f"docs/plugins.md quotes {path}, which does not say:\n{code}"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_the_tutorials_quote_every_line_of_each_example_plugin(path: Path):
    # the guide grows each plugin from its first line to its last: nothing is left out
    source = path.read_text()
    body = source.split('"""', 2)[2]  # after the module docstring
    quoted = "\n".join(code for p, code in QUOTES if (ROOT / p) == path)
    missing = [line for line in body.splitlines()
               if line.strip() and line not in quoted.splitlines()]
    assert missing == []


def test_every_other_python_block_compiles():
    quoted = {m.start() for m in QUOTE.finditer(DOC)}
    for match in re.finditer(r"```python\n(.*?)\n```", DOC, re.DOTALL):
        if not any(0 <= match.start() - start < 200 for start in quoted):
            compile(match.group(1), "docs/plugins.md", "exec")


# --- commands and what they print ----------------------------------------------------------

def _console_blocks() -> list[tuple[list[str], str]]:
    """Each ```console block that runs cocomem: (its words, the output shown)."""
    blocks = []
    for match in re.finditer(r"```console\n(.*?)\n```", DOC, re.DOTALL):
        lines = match.group(1).splitlines()
        command = lines.pop(0)
        while command.endswith("\\"):
            command = command[:-1] + lines.pop(0)
        words = shlex.split(command.removeprefix("$ "))
        if words[0] == "cocomem":
            blocks.append((words[1:], "\n".join(lines)))
    return blocks


COMMANDS = _console_blocks()


def test_the_guide_shows_commands():
    assert len(COMMANDS) >= 4


@pytest.mark.parametrize("words,shown", COMMANDS, ids=[" ".join(w[:2]) for w, _ in COMMANDS])
def test_every_command_prints_what_the_guide_shows(words: list[str], shown: str,
                                                   monkeypatch: pytest.MonkeyPatch):
    if "pagewise" in load_registry().vendors:
        pytest.skip("the example is installed: its --plugin files would be loaded twice")
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, words)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.rstrip("\n") == shown


# --- links -----------------------------------------------------------------------------------

def test_links_and_paths_in_the_guide_exist():
    links = re.findall(r"\]\((\.\./[^)#]+)", DOC)
    paths = re.findall(r"`((?:examples|cocomem|plugins|scenarios|docs|tests)/[\w./-]+)`", DOC)
    missing = [link for link in links if not (DOC_PATH.parent / link).exists()]
    missing += [path for path in paths if "<" not in path and not (
        (ROOT / path).exists() or (EXAMPLE / path).exists())]
    assert missing == []
