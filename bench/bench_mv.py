#!/usr/bin/python3
"""Mean-variance benchmark: keel's QP against CVXOPT's solvers.qp on the same
long-only utility problems with proportional buy/sell costs,

    max mu'w - 1/2 w'Sw - cb'(w - w0)^+ - cs'(w0 - w)^+,  sum w = 1, w >= 0,

at n = 20, 100, 500, 1000 with a dense covariance and n = 5000 with a
20-factor model. Problems are seeded (numpy) and written as raw doubles
for the keel half (bench_mv.c). CVXOPT gets the standard formulation with
explicit buy and sell variables (3n variables; for the factor model also
f = B'w, with sparse matrices so it never forms n x n). Prints, per size:
keel's cold time, CVXOPT's time, their ratio, keel's time as a multiple of
one dpotrf of an n x n matrix on this machine, the warm-started re-solve
after a small change in mu and w0 against a cold solve of the same problem,
and the largest weight difference between the two solvers.

Usage: bench_mv.py [BENCH_BINARY] [REPEATS] [SIZES...]
Needs Debian's python3-numpy and python3-cvxopt.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from cvxopt import matrix, solvers, spmatrix

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from refcommon import lifted_utility  # noqa: E402  (the same formulation as the fixtures)
solvers.options.update({"show_progress": False, "abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9, "maxiters": 200})


def problem(n, k, rng):
    """Annualised-looking inputs: vols 15-45%, mu 2-12%, costs 10-30 bp."""
    mu = rng.uniform(0.02, 0.12, n)
    w0 = rng.dirichlet(np.ones(n))
    cb = rng.uniform(0.001, 0.003, n)
    cs = rng.uniform(0.001, 0.003, n)
    if k:
        B = rng.normal(0, 1, (n, k)) * 0.1
        B[:, 0] += 1.0
        L = rng.normal(0, 0.05, (k, k))
        F = L @ L.T + np.diag(np.full(k, 0.02))
        F[0, 0] += 0.02
        d = rng.uniform(0.01, 0.09, n)
        data = {"B": B, "F": F, "d": d}
    else:
        X = rng.normal(0, 1, (2 * n + 50, n)) * rng.uniform(0.15, 0.45, n) / np.sqrt(252)
        S = np.cov(X, rowvar=False) * 252
        data = {"S": S}
    mu2 = mu * (1 + 0.01 * rng.normal(size=n))
    w02 = w0 * (1 + 0.002 * rng.normal(size=n))
    w02 /= w02.sum()
    data.update(mu=mu, w0=w0, cb=cb, cs=cs, mu2=mu2, w02=w02)
    return data


def cvxopt_dense(S, mu, w0, cb, cs):
    n = len(mu)
    P, q, G, h, A, b = lifted_utility(S, mu, 1.0, w0, cb, cs)
    t0 = time.perf_counter()
    sol = solvers.qp(matrix(P), matrix(q), matrix(G), matrix(h), matrix(A), matrix(b))
    t = time.perf_counter() - t0
    return np.array(sol["x"]).ravel()[:n], t, sol["status"], sol["iterations"]


def cvxopt_factor(B, F, d, mu, w0, cb, cs):
    """Variables (w, b, s, f) with f = B'w: P = diag(d, 0, 0) + F on f, sparse."""
    n, k = B.shape
    N = 3 * n + k
    I = list(range(n)) + [3 * n + i for i in range(k) for _ in range(k)]
    J = list(range(n)) + [3 * n + j for _ in range(k) for j in range(k)]
    V = list(d) + list(F.ravel())
    P = spmatrix(V, I, J, (N, N))
    q = matrix(np.concatenate([-mu, cb, cs, np.zeros(k)]))
    rows, cols, vals = [], [], []
    for j in range(n):  # budget
        rows.append(0), cols.append(j), vals.append(1.0)
    for i in range(n):  # w - b + s = w0
        rows += [1 + i] * 3
        cols += [i, n + i, 2 * n + i]
        vals += [1.0, -1.0, 1.0]
    for a in range(k):  # f - B'w = 0
        rows += [1 + n + a] * (n + 1)
        cols += list(range(n)) + [3 * n + a]
        vals += list(-B[:, a]) + [1.0]
    A = spmatrix(vals, rows, cols, (1 + n + k, N))
    b = matrix(np.concatenate([[1.0], w0, np.zeros(k)]))
    G = spmatrix(-1.0, range(3 * n), range(3 * n), (3 * n, N))
    h = matrix(np.zeros(3 * n))
    t0 = time.perf_counter()
    sol = solvers.qp(P, q, G, h, A, b)
    t = time.perf_counter() - t0
    return np.array(sol["x"]).ravel()[:n], t, sol["status"], sol["iterations"]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "bench", "bench_mv")
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sizes = [int(a) for a in sys.argv[3:]] or [20, 100, 500, 1000, 5000]
    rng = np.random.default_rng(20261125)
    print("OPENBLAS_NUM_THREADS=%s (both solvers)" % os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
    print(f"{'n':>6} {'model':>8} {'keel s':>10} {'CVXOPT s':>10} {'ratio':>7} {'x dpotrf':>9} "
          f"{'warm s':>10} {'cold s':>10} {'warm gain':>9} {'|dw|':>9}  iters")
    for n in sizes:
        k = 20 if n >= 5000 else 0
        data = problem(n, k, rng)
        with tempfile.TemporaryDirectory() as tmp:
            for name, arr in data.items():
                np.ascontiguousarray(arr, dtype="<f8").tofile(os.path.join(tmp, name + ".bin"))
            out = subprocess.run([binary, tmp, str(n), str(k), str(reps)], check=True, capture_output=True,
                                 text=True).stdout
            res = json.loads(out)
            wk = np.fromfile(os.path.join(tmp, "w_keel.bin"), dtype="<f8")
        if k:
            wc, tc, status, its = cvxopt_factor(data["B"], data["F"], data["d"], data["mu"], data["w0"], data["cb"],
                                                data["cs"])
        else:
            wc, tc, status, its = cvxopt_dense(data["S"], data["mu"], data["w0"], data["cb"], data["cs"])
        dw = np.abs(wk - wc).max()
        print(f"{n:>6} {('%d-factor' % k) if k else 'dense':>8} {res['cold']:>10.4g} {tc:>10.4g} "
              f"{tc / res['cold']:>7.1f} {res['cold'] / res['dpotrf']:>9.2g} {res['warm']:>10.4g} "
              f"{res['cold_changed']:>10.4g} {res['cold_changed'] / res['warm']:>9.1f} {dw:>9.2g}  "
              f"keel {res['iterations']} (polished {res['polished']}, warm {res['warm_used']}), "
              f"CVXOPT {its} ({status})", flush=True)


if __name__ == "__main__":
    main()
