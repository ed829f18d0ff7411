#!/usr/bin/python3
"""Advice benchmark: keel_advise with the standard template
(strategies/templates/standard.lua) against the same advice written in
plain Python, the way a Python backend would compute it, for the same
stream of profiles (bench_advice.c documents it).

The Python side does everything keel's call does: the template's rules
(docs/templates.md), the trade list from the holdings to the combined
baskets with 10 bp costs and a fee of 1 per trade (fractional shares: the
post-trade value solves V' = V - c sum |w V' - x| - fee * trades by fixed
point, as the engine's reference does), the yearly fees and the
explanation text. Before printing any ratio it checks that both sides
agree on the first NCHECK profiles: the total, the costs and the cash
after to 1e-9 relative, the number of trades and the risk score exactly.

Usage: bench_advice.py [BENCH_BINARY] [NCALLS] [REPEATS]
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "strategies", "templates", "standard.lua")
SYM = ["CASH", "BOND", "EQUITY", "EM_EQUITY", "GOLD", "CRYPTO"]
PRICE = [127.5099, 141.7317, 216.9675, 179.8098, 1829.5233, 8614.107]
EXPENSE = {"CASH": 0.0010, "BOND": 0.0005, "EQUITY": 0.0003, "EM_EQUITY": 0.0011, "GOLD": 0.0040, "CRYPTO": 0.0025}
GOALS = ["general", "travel", "education", "retirement"]
COST, FEE = 10 / 1e4, 1.0
NCHECK = 200


def clamp(x, a, b):
    return a if x < a else b if x > b else x


def equity_share(risk, h, goal, age):
    e = (0.10 + 0.08 * (risk - 1)) * clamp((h - 1) / 14, 0, 1)
    if goal == "retirement":
        e = min(e, clamp((110 - age) / 100, 0, 1))
    return e


def core_weights(e, h):
    short = clamp(1 - (h - 1) / 9, 0, 1)
    gold = 0.1 * (1 - e) if h >= 3 else 0
    rest = 1 - e - gold
    w = {"EQUITY": 0.75 * e, "EM_EQUITY": 0.25 * e, "GOLD": gold, "CASH": rest * short, "BOND": rest * (1 - short)}
    return {k: v for k, v in w.items() if v > 0}


def money(x):
    return f"{x:,.2f}"


def pct(x):
    s = f"{100 * x:.1f}"
    return (s[:-2] if s.endswith(".0") else s) + "%"


def profile(i):
    return {"age": 25 + i % 40, "risk": 1 + i % 10, "horizon": 1 + i % 30, "goal": GOALS[i % 4],
            "initial": 1000.0 * (i % 50), "monthly": 100.0 * (i % 7), "liquidity": 500.0 * (i % 11),
            "held": {"EQUITY": 10.0 * (i % 13), "BOND": 5.0 * (i % 17)}, "cash": 100.0 * (i % 5) + 100}


def advise(p):
    held = [p["held"].get(s, 0.0) for s in SYM]
    total = p["cash"] + p["initial"]
    for j in range(6):
        total += held[j] * PRICE[j]
    risk, h, goal = p["risk"], p["horizon"], p["goal"]
    reserve = min(p["liquidity"], total)
    invest = total - reserve
    e = equity_share(risk, h, goal, p["age"])
    sat_share = 0.02 * (risk - 7) if risk >= 8 and h >= 5 and goal != "travel" else 0
    satellite = invest * sat_share
    core = invest - satellite
    monthly = p["monthly"]
    to_reserve = monthly / 2 if monthly > 0 and reserve < p["liquidity"] else 0
    rest = monthly - to_reserve
    to_sat = rest * sat_share
    to_core = rest - to_sat
    subs = []
    if reserve > 0 or to_reserve > 0:
        subs.append(("reserve", reserve, {"CASH": 1.0}, to_reserve))
    if core > 0 or to_core > 0:
        subs.append(("core", core, core_weights(e, h), to_core))
    if satellite > 0:
        subs.append(("satellite", satellite, {"CRYPTO": 1.0}, to_sat))
    fees = sum(a * w * EXPENSE[s] for _, a, ws, _ in subs for s, w in ws.items())
    # the trade list: one rebalance to the combined baskets
    tau = [0.0] * 6
    for _, a, ws, _ in subs:
        for s, w in ws.items():
            tau[SYM.index(s)] += a * w / total
    wsum = sum(tau)
    if wsum > 1:
        tau = [t / wsum for t in tau]
    x = [held[j] * PRICE[j] for j in range(6)]
    vp = total
    for _ in range(200):
        trades = [j for j in range(6) if abs(tau[j] * vp - x[j]) > 1e-12 * total]
        v1 = total - sum(COST * abs(tau[j] * vp - x[j]) for j in trades) - FEE * len(trades)
        if abs(v1 - vp) <= 1e-15 * total:
            vp = v1
            break
        vp = v1
    trades = [j for j in range(6) if abs(tau[j] * vp - x[j]) > 1e-12 * total]
    cost = sum(COST * abs(tau[j] * vp - x[j]) for j in trades) + FEE * len(trades)
    cash = vp - sum(tau[j] * vp for j in range(6))
    buys = sum(tau[j] * vp - x[j] for j in trades if tau[j] * vp > x[j])
    sells = sum(x[j] - tau[j] * vp for j in trades if tau[j] * vp < x[j])
    # the explanation
    parts = [f"Your risk score is {risk} out of 10."]
    descr = []
    for name, a, ws, _ in subs:
        if name == "reserve":
            descr.append(f"a cash reserve of {money(a)} for money you may need soon")
        elif name == "core":
            mix = [(ws.get("EQUITY", 0) + ws.get("EM_EQUITY", 0), "shares"), (ws.get("BOND", 0), "bonds"),
                   (ws.get("GOLD", 0), "gold"), (ws.get("CASH", 0), "cash")]
            descr.append(f"a core portfolio of {money(a)} ({', '.join(pct(v) + ' ' + n for v, n in mix if v > 0.0005)})")
        else:
            descr.append(f"a satellite of {money(a)} in crypto-assets")
    parts.append(f"For a {goal} goal {h:g} years away we suggest: {'; '.join(descr)}.")
    if monthly > 0:
        parts.append(f"Each month {money(monthly)} goes in: "
                     + ", ".join(f"{money(d)} to the {n}" for n, _, _, d in subs if d > 0) + ".")
    parts.append(f"Getting there takes {len(trades)} trades ({money(buys)} of purchases, {money(sells)} of sales) "
                 f"costing {money(cost)} now.")
    parts.append(f"Fund fees come to about {money(fees)} a year.")
    return {"total": total, "cost": cost, "cash": cash, "ntrades": len(trades), "risk": risk,
            "explanation": " ".join(parts)}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "bench", "bench_advice")
    ncalls = int(sys.argv[2]) if len(sys.argv) > 2 else 50000
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    threads = min(2, len(os.sched_getaffinity(0)))
    out = subprocess.run([binary, TEMPLATE, str(ncalls), str(threads), str(reps), str(NCHECK)], check=True,
                         capture_output=True, text=True).stdout
    res = json.loads(out)
    for i, k in enumerate(res["check"]):
        py = advise(profile(i))
        for f in ("total", "cost", "cash"):
            if abs(k[f] - py[f]) > 1e-9 * max(1.0, abs(py[f])):
                sys.exit(f"bench_advice.py: profile {i}: {f} keel {k[f]!r} Python {py[f]!r}")
        if k["ntrades"] != py["ntrades"] or k["risk"] != py["risk"]:
            sys.exit(f"bench_advice.py: profile {i}: trades/risk keel {k['ntrades']}/{k['risk']} "
                     f"Python {py['ntrades']}/{py['risk']}")
    print(f"check: the first {NCHECK} advices agree (total, costs, cash after to 1e-9; trades and risk exactly)")
    n_py = max(ncalls // 5, 1000)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for i in range(n_py):
            advise(profile(i))
        best = min(best, time.perf_counter() - t0)
    py_rate = n_py / best
    print(f"standard template, 6 assets, from holdings, 10 bp + fee 1; best of {reps}")
    print(f"  {'':28s} {'advice/s':>12s}")
    print(f"  {'keel, 1 thread':28s} {res['per_second_1']:12.0f}")
    print(f"  {'keel, %d threads' % threads:28s} {res['per_second_n']:12.0f}")
    print(f"  {'plain Python, 1 thread':28s} {py_rate:12.0f}")
    print(f"  ratio keel / Python (1 thread): {res['per_second_1'] / py_rate:.2f}x;  "
          f"keel {threads} threads / 1 thread: {res['per_second_n'] / res['per_second_1']:.2f}x")


if __name__ == "__main__":
    main()
