"""Scale: the same steps on a 1 GiB and on a 64 TiB device region.

State is kept as runs, so both regions must cost about the same: the wall
time ratio (64 TiB / 1 GiB) should stay <= 2 and the 64 TiB run should peak
under 300 MiB of memory. Each region runs in its own process so its peak
RSS is its own.

    python benchmarks/scale.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

STEPS = """
steps:
  - plug: 512MiB
  - use: 256MiB
  - unplug: 256MiB
  - plug: 384MiB
  - use: all
  - offline_block: 0
  - online_block: 0
  - free: 128MiB
  - unplug: 128MiB
  - kexec
  - unplug: 128MiB
"""

REGIONS = {"1GiB": "1GiB", "64TiB": "64TiB"}


def scenario_text(region: str, mapping: str) -> str:
    return (f"name: scale-{region}\nvendor: tdx\ndevice: {{region_size: {region}}}\n"
            f"vmm: {{mapping_level: {mapping}}}\n" + STEPS)


def measure(region: str, repeat: int) -> dict:
    """Run in this process: every backend, both mapping levels, best of ``repeat``."""
    from cocomem.compare import compare
    from cocomem.registry import load_registry
    from cocomem.scenario import parse_scenario

    registry = load_registry()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for mapping in ("4k", "2m"):
            loaded = parse_scenario(scenario_text(region, mapping), f"scale-{region}.yaml",
                                    set(registry.vendors))
            comparison = compare(loaded, registry)
            for result in comparison.results.values():
                assert result.error is None, result.error
        best = min(best, time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"region": region, "seconds": best, "peak_mib": peak_kib / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeat)))
        return 0
    rows = []
    for region in REGIONS:
        out = subprocess.run([sys.executable, __file__, "--child", region,
                              "--repeat", str(args.repeat)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out))
    for row in rows:
        print(f"{row['region']:>6}: {row['seconds'] * 1000:8.1f} ms "
              f"(every backend x 2 mapping levels, best of {args.repeat}), "
              f"peak RSS {row['peak_mib']:.0f} MiB")
    ratio = rows[1]["seconds"] / rows[0]["seconds"]
    print(f"time ratio 64TiB/1GiB: {ratio:.2f} (limit 2.00); "
          f"64TiB peak {rows[1]['peak_mib']:.0f} MiB (limit 300)")
    return 0 if ratio <= 2 and rows[1]["peak_mib"] < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
