"""Fuzzing the command line with hostile scenarios: random documents from the
scenario grammar (valid and invalid values at every key) and shipped scenarios
mutated (lines deleted, duplicated, truncated, tokens replaced, YAML syntax
inserted). Whatever the input: no traceback, exit status 0, 1 or 2 only, and
bounded time and memory per case.

CI runs ``COCOMEM_FUZZ`` cases per strategy (default 60); the long run is
``python -m pytest tests/test_fuzz.py --fuzz-examples 5000``.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import cli

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
EXAMPLES = int(os.environ.get("COCOMEM_FUZZ", "60"))
# the CI run is the same every time; a long run explores with fresh seeds
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="COCOMEM_FUZZ" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TALLY = {"cases": 0, "exit 0": 0, "exit 1": 0, "exit 2": 0}

#: atoms a hostile writer puts anywhere: valid sizes, wrong types, YAML specials
ATOMS = st.one_of(
    st.sampled_from(["2MiB", "128MiB", "1GiB", "4096", "0", "-1", "1e9", "2 MB", "all",
                     "~", "null", "true", "no", ".inf", ".nan", "!!float 1", "!!str x",
                     "&a [1]", "*a", "[", "{", "}", "'", '"', "|", "- ", "\t", "0x10",
                     "9" * 60, "a" * 300, "é", "\u202e", "tdx", "snp", "cca", "none",
                     "callbacks", "kexec", "plug", "start-shared", "start-private"]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=12),
)
KEYS = st.sampled_from(["name", "vendor", "backends", "device", "guest", "vmm", "tdx",
                        "snp", "cca", "vendor_options", "backend_options", "cost", "steps",
                        "faults", "expect", "description", "region_size", "block_size",
                        "addr", "usable_extent", "memory_block_size", "subblock_size",
                        "accept_memory", "memory", "unplug_discards", "mapping_level",
                        "implicit_conversion", "page_release", "prefault", "call", "nth",
                        "status", "count", "verdict", "violations", "counters", "plug",
                        "unplug", "use", "free", "offline_block", "online_block", "1",
                        "true"])
VALUES = st.recursive(ATOMS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


def _check(text: str, tmp: Path) -> None:
    """Run ``compare`` on ``text``: an exit status of 0, 1 or 2 (``cli`` itself
    fails on any exception but SystemExit), bounded time and memory."""
    path = tmp / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = cli("compare", path, "--timeout", "2")
    elapsed = time.perf_counter() - start
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.stderr, text[:500])
    if result.exit_code == 2:
        assert len(result.stderr.splitlines()) == 1, (result.stderr, text[:500])
    assert elapsed < 30, (elapsed, text[:500])
    assert grown_kib < 200 * 1024, (grown_kib, text[:500])
    TALLY["cases"] += 1
    TALLY[f"exit {result.exit_code}"] += 1


@FUZZ
@given(doc=st.dictionaries(KEYS, VALUES, max_size=8))
def test_documents_from_the_grammar(tmp_path_factory, doc: dict):
    doc.setdefault("name", "fuzz")
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    _check(text, tmp_path_factory.mktemp("grammar"))


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if not lines:
            break
        at = data.draw(st.integers(0, len(lines) - 1), label="line")
        kind = data.draw(st.sampled_from(["delete", "duplicate", "replace", "insert",
                                          "truncate", "indent"]), label="kind")
        if kind == "delete":
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, lines[at])
        elif kind == "replace":
            words = lines[at].split(" ")
            index = data.draw(st.integers(0, len(words) - 1), label="word")
            words[index] = data.draw(ATOMS, label="atom")
            lines[at] = " ".join(words)
            if not lines[at].endswith("\n"):
                lines[at] += "\n"
        elif kind == "insert":
            key = data.draw(KEYS, label="key")
            lines.insert(at, f"{key}: {data.draw(ATOMS, label='atom')}\n")
        elif kind == "truncate":
            cut = data.draw(st.integers(0, len(lines[at])), label="cut")
            lines = lines[:at] + [lines[at][:cut]]
        else:
            lines[at] = data.draw(st.sampled_from(["", " ", "  ", "\t"]), label="ws") + \
                lines[at].lstrip()
    return "".join(lines)


@FUZZ
@given(data=st.data())
def test_mutated_shipped_scenarios(tmp_path_factory, data: st.DataObject):
    source = data.draw(st.sampled_from(SHIPPED), label="scenario")
    _check(_mutate(source.read_text(), data), tmp_path_factory.mktemp("mutated"))


def test_fuzz_tally_is_reported():
    # the counts of the two runs above, for the summary line (see conftest)
    assert TALLY["cases"] == TALLY["exit 0"] + TALLY["exit 1"] + TALLY["exit 2"]
