#!/usr/bin/env python3
"""The markdown tables of a benches/peers/run.sh run: every system's rows, the ratios
against issue 13's goals, and ninety's batched row. Usage: table.py OUT_DIR."""
import glob
import json
import os
import re
import statistics
import sys

SYSTEMS = ["postgres", "etcd", "ninety"]
# Issue 13's goals.
P50_RATIO_MAX_AT_1 = 2.0  # ninety's granted-hold p50 within 2x PostgreSQL's at 1 client
OPS_RATIO_PG_MIN = 2.0  # from 16 clients up, >= 2x PostgreSQL's ops/s
OPS_RATIO_ETCD_MIN = 3.0  # and >= 3x etcd's
BATCH_HOLDS_PER_S_MIN = 50_000
BATCH_P99_MS_MAX = 100


def rows(path):
    with open(path) as f:
        v = json.load(f)
    return v["rows"] if isinstance(v, dict) else v


def load(out):
    """{repeat: {system: {clients: row}}}"""
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "r*-*.json"))):
        m = re.match(r"r(\d+)-(\w+)\.json", os.path.basename(path))
        if not m:
            continue
        r, system = int(m.group(1)), m.group(2)
        runs.setdefault(r, {})[system] = {row["clients"]: row for row in rows(path)}
    return runs


def fmt(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(values):
    """Median, then each repeat's value in brackets."""
    vs = [v for v in values if v is not None]
    if not vs:
        return "–"
    if len(vs) == 1:
        return fmt(vs[0])
    return f"**{fmt(statistics.median(vs))}** ({' / '.join(fmt(v) for v in vs)})"


def get(runs, r, system, clients, key):
    row = runs.get(r, {}).get(system, {}).get(clients)
    return None if row is None else row.get(key)


def figures(runs, repeats, clients):
    print("| clients | system | ops/s | granted holds/s | hold p50 ms | hold p99 ms | errors (sum) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for c in clients:
        for s in SYSTEMS:
            col = lambda k: cell([get(runs, r, s, c, k) for r in repeats])
            errors = {}
            for r in repeats:
                for k, v in (get(runs, r, s, c, "errors") or {}).items():
                    errors[k] = errors.get(k, 0) + v
            err = ", ".join(f"{k} ×{v}" for k, v in errors.items()) or "–"
            print(f"| {c} | {s} | {col('ops_per_s')} | {col('holds_per_s')} | "
                  f"{col('hold_p50_ms')} | {col('hold_p99_ms')} | {err} |")


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def goals(runs, repeats, clients):
    print()
    print("| clients | goal | ninety ÷ peer, per repeat | median | met |")
    print("| ---: | --- | --- | ---: | --- |")
    for c in clients:
        if c == 1:
            checks = [("hold p50 ÷ PostgreSQL's ≤ 2", "postgres", "hold_p50_ms", P50_RATIO_MAX_AT_1, False)]
        else:
            checks = [
                ("ops/s ÷ PostgreSQL's ≥ 2", "postgres", "ops_per_s", OPS_RATIO_PG_MIN, True),
                ("ops/s ÷ etcd's ≥ 3", "etcd", "ops_per_s", OPS_RATIO_ETCD_MIN, True),
            ]
        for name, peer, key, bound, at_least in checks:
            rs = [ratio(get(runs, r, "ninety", c, key), get(runs, r, peer, c, key)) for r in repeats]
            rs = [x for x in rs if x is not None]
            if not rs:
                continue
            med = statistics.median(rs)
            met = med >= bound if at_least else med <= bound
            print(f"| {c} | {name} | {' / '.join(f'{x:.2f}' for x in rs)} | {med:.2f} | "
                  f"{'yes' if met else 'no'} |")


def batch(out):
    path = os.path.join(out, "batch-ninety.json")
    if not os.path.exists(path):
        return
    print()
    print("| ninety batched | clients × items | holds/s | p50 ms | p99 ms | goal met (≥ 50,000/s, p99 ≤ 100 ms) |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for row in rows(path):
        met = row["holds_per_s"] >= BATCH_HOLDS_PER_S_MIN and row["p99_ms"] <= BATCH_P99_MS_MAX
        print(f"| batch | {row['clients']} × {row['batch']} | {fmt(row['holds_per_s'])} | "
              f"{fmt(row['p50_ms'])} | {fmt(row['p99_ms'])} | {'yes' if met else 'no'} |")


def main():
    out = sys.argv[1]
    runs = load(out)
    repeats = sorted(runs)
    clients = sorted({c for r in runs.values() for s in r.values() for c in s})
    figures(runs, repeats, clients)
    goals(runs, repeats, clients)
    batch(out)
    for name in ["machine.txt", "versions.txt", "uptime.log"]:
        p = os.path.join(out, name)
        if os.path.exists(p):
            print(f"\n{name}:\n```")
            print(open(p).read().rstrip())
            print("```")


if __name__ == "__main__":
    main()
