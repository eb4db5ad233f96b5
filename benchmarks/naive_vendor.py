"""What a naive vendor costs: the example's one-call-per-page platform
(examples/cocomem-pagewise, built on the bulk mechanism ``Vendor.each``) against
the built-in TDX vendor, side by side on scenarios/plug-64g-4k.yaml and on a
1 GiB variant of it; then the same naive vendor without the bulk mechanism
(every page called for real) on small plugs only, extrapolated to 64 GiB.

    python benchmarks/naive_vendor.py [--repeat N] [--naive-sizes 16MiB,64MiB,256MiB]

Each backend's run is timed on its own (wall time, best of N). On pagewise the
series that hook TDX only (``platforms = ("tdx",)``) run as mainline, so the
design to compare across vendors is one that runs on both: the example's
``callbacks-kexec`` (accept after PLUG), ``start-shared`` and ``plugged-bitmap``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from cocomem import load_registry
from cocomem.engine import run_backend
from cocomem.registry import Registry
from cocomem.scenario import parse_scenario
from cocomem.units import format_size, parse_size

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "plug-64g-4k.yaml"
EXAMPLE = ROOT / "examples" / "cocomem-pagewise" / "cocomem_pagewise"
#: backends that do the same thing on both vendors
ACROSS = ("callbacks-kexec", "start-shared", "plugged-bitmap")


def registry_with_example() -> Registry:
    """The installed plugins, plus the example's vendor and backend from their files
    when the example is not installed; and the naive vendor without bulk."""
    registry = load_registry()
    if "pagewise" not in registry.vendors:
        registry = load_registry([str(EXAMPLE / "pagewise.py"),
                                  str(EXAMPLE / "callbacks_kexec.py")])
    pagewise = registry.vendors["pagewise"]

    class PagewiseNoBulk(pagewise):
        """The same platform, every piece called for real."""

        name = "pagewise-nobulk"

        def each(self, start, end, piece):
            pos = start
            while pos < end:
                nxt, ok = piece(pos, end)
                if not ok:
                    return nxt, False
                pos = nxt
            return pos, True

    # the registry has no call to add a class from code (only plugin files and entry
    # points): put it in the table directly
    registry.vendors[PagewiseNoBulk.name] = PagewiseNoBulk
    return registry


def variant(size: str) -> str:
    """plug-64g-4k.yaml plugging ``size`` into a region twice as large (at least
    1 GiB), with 128 MiB memory blocks (a 2 GiB block must fit in the usable
    region), without its expect: block."""
    text = SCENARIO.read_text().split("\nexpect:")[0]
    region = max(2 * parse_size(size), parse_size("1GiB"))
    text = re.sub(r"region_size: \S+", f"region_size: {region}", text)
    text = re.sub(r"memory_block_size: \S+", "memory_block_size: 128MiB", text)
    return re.sub(r"- plug: \S+", f"- plug: {size}", text)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.1f}ms"


def time_run(registry: Registry, text: str, name: str, backend: str, vendor: str,
             repeat: int) -> tuple[float, str]:
    """Best wall time of ``repeat`` runs of one backend, and its verdict."""
    loaded = parse_scenario(text, name, set(registry.vendors))
    best, verdict = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        result = run_backend(loaded, registry, backend, vendor)
        best = min(best, time.perf_counter() - start)
        verdict = result.verdict
        assert result.error is None, result.error
    return best, verdict


def side_by_side(registry: Registry, label: str, text: str, repeat: int) -> None:
    backends = sorted(registry.backends, key=lambda n: (registry.backends[n].order, n))
    print(f"{label}: every backend, tdx vs pagewise (best of {repeat})")
    print(f"  {'backend':<16} {'tdx':>11} {'pagewise':>11} {'ratio':>7}")
    totals = [0.0, 0.0]
    for backend in backends:
        t_tdx, _ = time_run(registry, text, label, backend, "tdx", repeat)
        t_pw, _ = time_run(registry, text, label, backend, "pagewise", repeat)
        platforms = registry.backends[backend].platforms
        note = "" if platforms is None or "pagewise" in platforms else \
            "  (mainline on pagewise: hooks tdx only)"
        totals[0] += t_tdx
        totals[1] += t_pw
        print(f"  {backend:<16} {ms(t_tdx)} {ms(t_pw)} {t_pw / t_tdx:6.2f}x{note}")
    print(f"  {'all':<16} {ms(totals[0])} {ms(totals[1])} {totals[1] / totals[0]:6.2f}x")


def without_bulk(registry: Registry, sizes: list[str], repeat: int) -> None:
    target = parse_size("64GiB")
    print("pagewise with and without the bulk mechanism (plug N, use all; best of "
          f"{repeat}; 64 GiB extrapolated linearly from the largest N)")
    print(f"  {'backend':<16} {'plug':>7} {'bulk':>11} {'no bulk':>11} {'per page':>9} "
          f"{'64 GiB est.':>12}")
    for backend in ACROSS:
        for size in sizes:
            text = variant(size)
            t_bulk, v1 = time_run(registry, text, size, backend, "pagewise", repeat)
            t_naive, v2 = time_run(registry, text, size, backend, "pagewise-nobulk", 1)
            assert v1 == v2, (backend, size, v1, v2)
            pages = parse_size(size) // 4096
            estimate = t_naive / pages * (target // 4096)
            print(f"  {backend:<16} {format_size(parse_size(size)):>7} {ms(t_bulk)} "
                  f"{ms(t_naive)} {t_naive / pages * 1e6:7.1f}us "
                  f"{estimate / 60:9.1f} min")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-sizes", default="16MiB,64MiB,256MiB")
    args = parser.parse_args()
    registry = registry_with_example()
    side_by_side(registry, "plug-64g-4k (64 GiB)", SCENARIO.read_text().split("\nexpect:")[0],
                 args.repeat)
    side_by_side(registry, "plug-1g-4k (1 GiB)", variant("1GiB"), args.repeat)
    without_bulk(registry, args.naive_sizes.split(","), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
