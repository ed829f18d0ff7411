#!/usr/bin/python3
"""Backtest benchmark: keel's engine against a plain NumPy day loop on the
same seeded panel and policy,

    fixed weights, monthly rebalance to target, daily 5/25 band check
    (|w - t| > min(0.05, 0.25 t) for some asset: back to target),
    10 bp buy and sell costs, no fee, no lots,

for (1) one backtest of 500 assets x 5,000 days and (2) a batch of 1,000
backtests of 20 assets x 5,000 days (each its own seeded weights, one
shared panel) on 1 and on 2 threads. bench_backtest.c builds the panel
and the weights from the fixtures' LCG; this script reproduces them bit
for bit (and checks the last row against the driver's), runs the NumPy
loop in-process and keel as a subprocess, and checks that the final values
agree to 1e-9 relative and the numbers of rebalances are equal before
printing any ratio.

Timing: best of REPEATS for each. keel is timed inside the driver around
keel_backtest_run_account only (for the batch: wall time of the whole
batch, thread start to join); the NumPy loop around the day loop only. The
NumPy time for the batch is extrapolated from NSAMPLE runs (said so in the
output).

Usage: bench_backtest.py [BENCH_BINARY] [REPEATS] [NSAMPLE]
Needs Debian's python3-numpy. Run with OPENBLAS_NUM_THREADS=1.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PANEL_SEED = 20260601
BATCH_SEED0 = 1000
MASK = 0xFFFFFFFF
LCG_A, LCG_C = 1664525, 1013904223
CAPITAL = 100000.0
COST = 10 / 1e4  # 10 bp both sides
BAND_ABS, BAND_REL = 0.05, 0.25


def lcg_states(seed, count, block=4096):
    """The LCG's next `count` states as uint64 (state = A state + C mod 2^32),
    a block at a time from the jump-ahead coefficients of 1..block steps."""
    A = np.empty(block, np.uint64)
    C = np.empty(block, np.uint64)
    a, c = 1, 0
    for k in range(block):
        a, c = (LCG_A * a) & MASK, (LCG_A * c + LCG_C) & MASK
        A[k], C[k] = a, c
    out = np.empty(count, np.uint64)
    s = np.uint64(seed)
    for i in range(0, count, block):
        m = min(block, count - i)
        out[i:i + m] = (A[:m] * s + C[:m]) & np.uint64(MASK)  # wraps mod 2^64, a multiple of 2^32
        s = out[i + m - 1]
    return out


def lcg_uniform(seed, count):
    return lcg_states(seed, count).astype(np.float64) / 4294967296.0 - 0.5


def make_panel(na, nd):
    """Prices (nd x na) and a month key per row, exactly as bench_backtest.c."""
    u = lcg_uniform(PANEL_SEED, na * nd).reshape(nd, na)
    j = np.arange(na, dtype=np.float64)
    s = 0.02 + 0.04 * j / (na - 1) if na > 1 else np.full(na, 0.02)
    f = (1 + 0.0002) + s * u
    f[0] = 100 * (1 + u[0])
    P = np.cumprod(f, axis=0)  # sequential: p_t = p_{t-1} f_t, as in C
    # weekdays from Monday 2000-01-03: month key per row
    days = np.datetime64("2000-01-03") + np.arange(nd * 7 // 5 + 7)
    days = days[((days.astype("datetime64[D]").view("int64") - 4) % 7) < 5][:nd]  # 1970-01-01 was a Thursday
    month = days.astype("datetime64[M]").view("int64")
    return P, month


def make_weights(seed, na):
    if seed == 0:
        return np.full(na, 1.0 / na)
    w = 1 + lcg_uniform(seed, na)
    total = 0.0
    for v in w:  # summed in order, as in C
        total += v
    return w / total


def numpy_loop(P, month, w):
    """The day loop: mark to market, rebalance to target on a new month or
    a band breach; the post-trade value solves V' = V - c sum |w V' - x|
    (fixed point, a contraction by c). Returns (final value, rebalances,
    band rebalances)."""
    nd = P.shape[0]
    width = np.minimum(BAND_ABS, BAND_REL * w)
    wsum = w.sum()

    def solve(V, x):
        vp = V
        for _ in range(100):
            v1 = V - COST * np.abs(w * vp - x).sum()
            if abs(v1 - vp) <= 1e-15 * V:
                return v1
            vp = v1
        return vp

    vp = solve(CAPITAL, np.zeros_like(w))
    shares = w * vp / P[0]
    cash = vp * (1 - wsum)
    nreb, nband = 1, 0
    V = vp
    for t in range(1, nd):
        p = P[t]
        x = shares * p
        V = cash + x.sum()
        if month[t] != month[t - 1]:
            pass
        elif (np.abs(x / V - w) > width).any():
            nband += 1
        else:
            continue
        vp = solve(V, x)
        h = w * vp
        shares = h / p
        cash = vp - h.sum()
        V = vp
        nreb += 1
    return V, nreb, nband


def best_of(reps, fn):
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def on_one_cpu():
    """The single-backtest figures of both sides are taken on one CPU: a
    process the scheduler moves between the two cores mid-run lost up to
    half its speed here, at random."""
    cpus = sorted(os.sched_getaffinity(0))
    return {cpus[-1]}


def driver(binary, *args, pin=False):
    pre = (lambda: os.sched_setaffinity(0, on_one_cpu())) if pin else None
    out = subprocess.run([binary, *map(str, args)], check=True, capture_output=True, text=True,
                         preexec_fn=pre).stdout
    return json.loads(out)


def check(what, keel_v, np_v, keel_n, np_n):
    rel = abs(keel_v - np_v) / abs(np_v)
    ok = rel <= 1e-9 and keel_n == np_n
    print(f"  check {what}: final keel {keel_v:.10f}  NumPy {np_v:.10f}  rel diff {rel:.2e};  "
          f"rebalances keel {keel_n}  NumPy {np_n}  -> {'OK' if ok else 'MISMATCH'}")
    if not ok:
        sys.exit(f"bench_backtest.py: {what}: keel and the NumPy loop disagree; the timings would mean nothing")


def check_panel(P, res):
    s = 0.0
    for v in P[-1]:
        s += v
    if s != res["last_row_sum"]:
        sys.exit(f"bench_backtest.py: the reproduced panel differs from the driver's "
                 f"(last row sums {s!r} and {res['last_row_sum']!r})")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "bench", "bench_backtest")
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    nsample = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    print("OPENBLAS_NUM_THREADS=%s; best of %d; policy: fixed weights, monthly to target + daily 5/25 band, "
          "10 bp buy/sell" % (os.environ.get("OPENBLAS_NUM_THREADS", "unset"), reps))

    # 1. one backtest, 500 assets x 5,000 days, equal weights
    # (each driver runs before the script builds its own copy of the panel:
    # with the script's lists of Python floats resident, the driver's timings
    # were up to 1.7x slower and jumpier on these machines)
    na, nd = 500, 5000
    res = driver(binary, "single", na, nd, reps, pin=True)
    P, month = make_panel(na, nd)
    w = make_weights(0, na)
    check_panel(P, res)
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, on_one_cpu())
    t_np, (v_np, n_np, b_np) = best_of(reps, lambda: numpy_loop(P, month, w))
    os.sched_setaffinity(0, everywhere)
    print(f"\n1. one backtest, {na} assets x {nd} days: {res['rebalances']} rebalances "
          f"({res['band']} on the band; NumPy {b_np}), {res['trades']} trades")
    check("500 x 5000", res["final"], v_np, res["rebalances"], n_np)
    t_k = res["seconds"]
    print(f"  {'':<28} {'ms':>10}")
    print(f"  {'keel':<28} {t_k * 1e3:>10.2f}")
    print(f"  {'NumPy day loop':<28} {t_np * 1e3:>10.2f}")
    print(f"  {'ratio NumPy / keel':<28} {t_np / t_k:>10.1f}")

    # 2. a batch of 1,000 backtests, 20 assets x 5,000 days
    na, nd, nruns = 20, 5000, 1000
    del P
    r1 = driver(binary, "batch", na, nd, nruns, 1, reps)
    r2 = driver(binary, "batch", na, nd, nruns, 2, reps)
    P, month = make_panel(na, nd)
    check_panel(P, r1)
    if r1["final"] != r2["final"] or r1["rebalances"] != r2["rebalances"]:
        sys.exit("bench_backtest.py: the 1- and 2-thread batches give different results")
    t_sample = 0.0
    print(f"\n2. a batch of {nruns} backtests, {na} assets x {nd} days (run r: weights seeded {BATCH_SEED0} + r), "
          f"one shared panel; NumPy timed on the first {nsample} runs and extrapolated x {nruns / nsample:g}")
    worst = 0.0
    for r in range(nsample):
        wr = make_weights(BATCH_SEED0 + r, na)
        t, (v, n, _) = best_of(1, lambda: numpy_loop(P, month, wr))
        t_sample += t
        rel = abs(r1["final"][r] - v) / abs(v)
        worst = max(worst, rel)
        if rel > 1e-9 or r1["rebalances"][r] != n:
            check(f"batch run {r}", r1["final"][r], v, r1["rebalances"][r], n)
    print(f"  check: runs 0..{nsample - 1}: largest final-value rel diff {worst:.2e}, rebalances equal -> OK "
          f"(run 0: {r1['rebalances'][0]} rebalances)")
    t_np = t_sample * nruns / nsample
    print(f"  {'':<34} {'wall s':>10} {'ms/run':>10}")
    print(f"  {'keel, 1 thread':<34} {r1['seconds']:>10.3f} {r1['seconds'] / nruns * 1e3:>10.3f}")
    print(f"  {'keel, 2 threads':<34} {r2['seconds']:>10.3f} {r2['seconds'] / nruns * 1e3:>10.3f}")
    print(f"  {'NumPy day loop (extrapolated)':<34} {t_np:>10.3f} {t_np / nruns * 1e3:>10.3f}")
    print(f"  speed-up 2 threads / 1 thread: {r1['seconds'] / r2['seconds']:.2f}x;  "
          f"ratio NumPy / keel: {t_np / r1['seconds']:.1f} (1 thread), {t_np / r2['seconds']:.1f} (2 threads)")


if __name__ == "__main__":
    main()
