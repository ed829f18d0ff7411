#!/usr/bin/python3
"""CSV load benchmark: keel_panel_read_csv against pandas.read_csv.

Writes a seeded 5,000-row x 500-asset wide price CSV (prices with six
decimals, a few assets listed late), then times both loaders on the same
file, best of R runs each, and prints them side by side with the ratio.

Usage: bench_csv.py [BENCH_BINARY] [ROWS] [COLS] [REPEATS]
  BENCH_BINARY defaults to build/bench/bench_csv_load under the source tree.
Needs Debian's python3-numpy and python3-pandas.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "bench", "bench_csv_load")
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    cols = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    rng = np.random.default_rng(20261125)
    r = rng.normal(0.0003, 0.015, (rows, cols))
    px = 100 * np.exp(np.cumsum(r, axis=0))
    for j in range(0, cols, 25):  # late listings: leading empty cells
        px[: rng.integers(0, rows // 2), j] = np.nan
    dates = pd.bdate_range("2000-01-03", periods=rows)
    df = pd.DataFrame(px, index=dates, columns=[f"A{j:04d}" for j in range(cols)])
    df.index.name = "date"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "prices.csv")
        df.to_csv(path, float_format="%.6f", date_format="%Y-%m-%d")
        mb = os.path.getsize(path) / 1e6
        out = subprocess.run([binary, path, str(reps)], check=True, capture_output=True, text=True).stdout
        keel_s = float(out.split("keel_load_s=")[1].split()[0])
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            got = pd.read_csv(path, index_col=0, parse_dates=True)
            best = min(best, time.perf_counter() - t0)
        assert got.shape == (rows, cols)
    print(f"{'rows':>6} {'cols':>5} {'MB':>6} {'keel s':>8} {'pandas s':>9} {'pandas/keel':>11}")
    print(f"{rows:6d} {cols:5d} {mb:6.1f} {keel_s:8.3f} {best:9.3f} {best / keel_s:11.2f}")


if __name__ == "__main__":
    main()
