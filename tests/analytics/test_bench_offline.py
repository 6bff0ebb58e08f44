"""``sealscope detect`` on a 1,000,000-row, 10-channel file: rows/s and peak memory.

Each run is a child process so its peak RSS is its own; the bytes per row come from the
difference between a 100k-row and a 1M-row run (the interpreter and numpy are not rows).
Prints figures, asserts no timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.bench

_CHILD = """
import json, resource, sys, time
from analytics.offline import run_detect
t0 = time.perf_counter()
s = run_detect(input=sys.argv[1], output=sys.argv[2], time_column="t", progress=False)
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"s": dt, "rss": rss, "rows": s.rows, "flagged": s.rows_flagged}))
"""


def _file(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write("t," + ",".join(f"c{j}" for j in range(10)) + "\n")
        for lo in range(0, rows, 100_000):
            n = min(100_000, rows - lo)
            load = np.sin(np.arange(lo, lo + n) / 500.0)[:, None]
            x = 5 + load * np.linspace(0.5, 2, 10) + rng.normal(0, 0.1, (n, 10))
            t = 1_700_000_000 + np.arange(lo, lo + n)
            np.savetxt(f, np.column_stack([t, x]), fmt=["%d"] + ["%.3f"] * 10, delimiter=",")
    return path


def _run(src: Path, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), str(out)],
        check=True, capture_output=True, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bench_detect_1m_rows_10_channels(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    small = _run(_file(tmp_path / "s.csv", 100_000), tmp_path / "so.csv")
    big_src = _file(tmp_path / "b.csv", 1_000_000)
    print(f"\ngenerated inputs in {time.perf_counter() - t0:.1f} s "
          f"({big_src.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
    big = _run(big_src, tmp_path / "bo.csv")
    per_row = (big["rss"] - small["rss"]) / 900_000
    print(
        f"sealscope detect, 1,000,000 rows x 10 channels: {big['rows'] / big['s']:,.0f} rows/s "
        f"({big['s']:.1f} s), peak RSS {big['rss'] / 1e6:.0f} MB "
        f"(100k rows: {small['rss'] / 1e6:.0f} MB), {per_row:.0f} bytes per extra row; "
        f"{big['flagged']} rows flagged"
    )
    assert big["rows"] == 1_000_000
