"""Hostile scenario files: how fast, and in how little memory, each is refused.

Each file runs ``cocomem compare`` in a process of its own; the time is measured
inside it (after the interpreter started) with its peak RSS. Targets: well under
a second and 100 MiB each.

    python benchmarks/hostile.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_hostile import _MEASURED, HOSTILE  # noqa: E402


def main() -> None:
    print(f"{'file':32s} {'exit':>4s} {'time':>9s} {'peak':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(case, text) for case, text, _ in HOSTILE] + [("/dev/zero", None)]
        for case, text in cases:
            path = "/dev/zero"
            if text is not None:
                path = str(Path(tmp) / "t.yaml")
                Path(path).write_bytes(text if isinstance(text, bytes) else text.encode())
            proc = subprocess.run([sys.executable, "-c", _MEASURED, "compare", path],
                                  capture_output=True, text=True, cwd=ROOT, timeout=120)
            _, seconds, kib = proc.stderr.splitlines()[-1].split()
            print(f"{case:32s} {proc.returncode:4d} {float(seconds) * 1000:7.0f}ms "
                  f"{int(kib) / 1024:7.0f}MiB")


if __name__ == "__main__":
    main()
