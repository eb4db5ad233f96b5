"""The performance targets, measured side by side in one run.

Each case runs in a process of its own (its peak memory is its own) and prints
its time, its peak memory and how far it is from its target:

- plug + use + unplug at 4K with 128 MiB memory blocks, 1 GiB against a large
  plug (4 TiB by default, ``--big 16TiB`` for more): ratio <= 1.2
- accepting 90 GiB at 4K, engine only (TDX ``accept_memory``): <= 60 ms
- the same accept end to end, every backend: <= 0.3 s
- ``cocomem --help``: <= 0.15 s
- a scenario of 10,000 steps, every backend: <= 1 s
- ``use: all`` over a map fragmented into 262,144 runs: <= 1 s
- the whole scenario library, every backend, every vendor it pins: <= 3 s
- every case's peak memory: <= 150 MiB

    python benchmarks/targets.py [--big 16TiB]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cocomem.units import parse_size  # noqa: E402

_PEAK = """
def _peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
"""

SCALE = """
import sys, time
from cocomem import load_registry
from cocomem.compare import compare_vendors
from cocomem.scenario import parse_scenario
registry = load_registry()
plug, region = sys.argv[1], sys.argv[2]
text = f'''name: scale
device: {{region_size: {region}, block_size: 2MiB}}
guest: {{memory_block_size: 128MiB}}
vmm: {{mapping_level: 4k}}
steps: [{{plug: {plug}}}, {{use: all}}, {{unplug: {plug}}}]
'''
loaded = parse_scenario(text, "scale.yaml", set(registry.vendors))
start = time.perf_counter()
compare_vendors(loaded, registry)
print(time.perf_counter() - start, _peak_kib())
"""

ACCEPT = """
import time
from cocomem import load_registry
from cocomem.engine import BackendRun
from cocomem.scenario import parse_scenario
registry = load_registry()
text = '''name: accept
device: {region_size: 90GiB, block_size: 2MiB}
guest: {memory_block_size: 1GiB}
steps: [{plug: 90GiB}]
'''
loaded = parse_scenario(text, "accept.yaml", set(registry.vendors))
run = BackendRun(loaded, registry, "mainline", "tdx")
run.run()
start = time.perf_counter()
assert run.vendor.accept_memory(0, run.host.npages)
print(time.perf_counter() - start, _peak_kib())
"""

ACCEPT_ALL = """
import time
from cocomem import load_registry
from cocomem.compare import compare_vendors
from cocomem.scenario import parse_scenario
registry = load_registry()
text = '''name: accept
device: {region_size: 90GiB, block_size: 2MiB}
guest: {memory_block_size: 1GiB, accept_memory: eager}
steps: [{plug: 90GiB}]
'''
loaded = parse_scenario(text, "accept.yaml", set(registry.vendors))
start = time.perf_counter()
compare_vendors(loaded, registry)
print(time.perf_counter() - start, _peak_kib())
"""

STEPS = """
import time
from cocomem import load_registry
from cocomem.compare import compare_vendors
from cocomem.scenario import parse_scenario
start = time.perf_counter()
registry = load_registry()
steps = "".join("  - plug: 2MiB\\n  - unplug: 2MiB\\n" for _ in range(5000))
text = "name: steps\\ndevice: {region_size: 1GiB}\\nsteps:\\n" + steps
loaded = parse_scenario(text, "steps.yaml", set(registry.vendors))
compare_vendors(loaded, registry)
print(time.perf_counter() - start, _peak_kib())
"""

FRAGMENTED = """
import sys, time
sys.path.insert(0, "tests")
from scenario_builder import make_run
from cocomem import load_registry
from cocomem.state import USED
registry = load_registry()
run = make_run(registry, [{"plug": "2GiB"}], backend="callbacks", region="4GiB",
               accept_memory="eager")
run.run()
for page in range(1, 2 * 262144, 2):
    run.driver.page.set(page, page + 1, USED)
start = time.perf_counter()
run.use(None)
print(time.perf_counter() - start, _peak_kib())
"""

LIBRARY = """
import time
from pathlib import Path
from cocomem import load_registry, load_scenario
from cocomem.compare import compare_vendors
start = time.perf_counter()
registry = load_registry()
for path in sorted(Path("scenarios").glob("*.yaml")):
    loaded = load_scenario(path, set(registry.vendors))
    compare_vendors(loaded, registry, vendors=[loaded.scenario.vendor,
                                               *loaded.scenario.vendor_expect])
print(time.perf_counter() - start, _peak_kib())
"""

HELP = """
import sys, time
start = time.perf_counter()
from cocomem.cli import main
sys.argv = ["cocomem", "--help"]
import io, contextlib
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
print(time.perf_counter() - start, _peak_kib())
"""


def measure(code: str, *args: str) -> tuple[float, float]:
    """(seconds, peak MiB) of ``code`` in a fresh interpreter; the best of three
    for the time."""
    best, peak = float("inf"), 0.0
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", _PEAK + code, *args], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
        best = min(best, float(out[0]))
        peak = max(peak, int(out[1]) / 1024)
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", default="4TiB", help="the large plug (default 4TiB)")
    big = parser.parse_args().big
    region = f"{2 * parse_size(big)}"
    rows = []
    small_t, small_m = measure(SCALE, "1GiB", "2GiB")
    big_t, big_m = measure(SCALE, big, region)
    rows.append((f"plug+use+unplug 1GiB vs {big} (ratio)", big_t / small_t, 1.2,
                 max(small_m, big_m), f"{small_t * 1000:.0f} ms vs {big_t * 1000:.0f} ms"))
    for label, code, target in (("accept 90GiB at 4K, engine", ACCEPT, 0.060),
                                ("accept 90GiB at 4K, all backends", ACCEPT_ALL, 0.3),
                                ("cocomem --help", HELP, 0.15),
                                ("10,000 steps, all backends", STEPS, 1.0),
                                ("use: all over 262,144 runs", FRAGMENTED, 1.0),
                                ("scenario library, all backends", LIBRARY, 3.0)):
        seconds, peak = measure(code)
        rows.append((label, seconds, target, peak, ""))
    print(f"{'case':42s} {'value':>9s} {'target':>7s} {'x target':>9s} {'peak':>8s}")
    for label, value, target, peak, note in rows:
        unit = "" if "ratio" in label else "s"
        print(f"{label:42s} {value:8.3f}{unit or ' '} {target:6.2f}{unit or ' '} "
              f"{value / target:8.2f}x {peak:6.0f}MiB  {note}")


if __name__ == "__main__":
    main()
