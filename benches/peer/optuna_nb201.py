#!/usr/bin/env python3
"""Python peer benchmark: Optuna samplers on the NAS-Bench-201 (CIFAR-10) table.

Each NB201 cell has 6 edges, each one of 5 ops; the search space is 6 categorical
parameters and the "training" of a cell is a lookup of the --objective column in
the table. For every sampler and seed we run a maximising Optuna study and record,
after each *unique* architecture queried, the best-by-objective architecture so far.
At each budget in --queries the reported value is that architecture's --report column.

The budget counts UNIQUE architectures: when a sampler proposes a cell it has already
seen, the cached objective value is told to the study (so the sampler sees it like
any other trial) but the query is free and does not count toward the budget.

Usage (see run.sh, which sets up the pinned venv):
  optuna_nb201.py --table cifar10.csv --objective test_acc_200ep \
      --report test_acc_200ep --queries 50,100,200 --seeds 50 --sampler tpe,random --json
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time

import numpy as np
import optuna

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
# Edge order as in the NB201 string: (1<-0) | (2<-0) (2<-1) | (3<-0) (3<-1) (3<-2).
EDGES = ["e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"]

# A study never runs more than this many trials per unique architecture of the largest
# budget. A sampler that keeps re-proposing seen cells (TPE can, once it has converged)
# would otherwise loop forever; if the cap is hit, the run stops early for that seed
# and the budgets it did not reach reuse the best found so far (a warning is printed).
TRIAL_CAP_FACTOR = 20


def parse_arch(arch: str) -> tuple[str, ...]:
    """'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' -> 6 ops in EDGES order."""
    ops = []
    for node in arch.strip("|").split("|+|"):
        for tok in node.strip("|").split("|"):
            op, _, src = tok.partition("~")
            if op not in OPS:
                raise ValueError(f"unknown op {op!r} in {arch!r}")
            ops.append(op)
    if len(ops) != len(EDGES):
        raise ValueError(f"expected {len(EDGES)} edges in {arch!r}")
    return tuple(ops)


def load_table(path: str, objective: str, report: str):
    """Returns {ops tuple: (row id, objective value, report value)} and the report column."""
    table = {}
    report_col = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for col in (objective, report):
            if col not in reader.fieldnames:
                sys.exit(f"column {col!r} not in {path} (have {reader.fieldnames})")
        for i, row in enumerate(reader):
            key = parse_arch(row["arch"])
            if key in table:
                sys.exit(f"duplicate arch {row['arch']!r} in {path}")
            table[key] = (i, float(row[objective]), float(row[report]))
            report_col.append(float(row[report]))
    if len(table) != len(OPS) ** len(EDGES):
        print(f"warning: table has {len(table)} archs, expected {len(OPS) ** len(EDGES)}",
              file=sys.stderr)
    return table, np.array(report_col)


def make_sampler(name: str, seed: int):
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)  # Optuna defaults, no tuning
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r} (tpe, random)")


def run_one(sampler_name: str, seed: int, table, budgets: list[int]):
    """One study. Returns (report value of best-by-objective arch at each budget,
    row id of that arch at each budget, total trials run)."""
    max_budget = max(budgets)
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler(sampler_name, seed))
    seen: dict[tuple[str, ...], float] = {}
    best_obj = -np.inf
    best = None  # (row id, report value) of the best-by-objective arch so far
    trace = []   # best after the k-th unique query, k = 1..
    trials = 0
    while len(seen) < max_budget and trials < TRIAL_CAP_FACTOR * max_budget:
        trial = study.ask()
        key = tuple(trial.suggest_categorical(e, OPS) for e in EDGES)
        trials += 1
        if key in seen:  # re-query: free, cached value, not counted
            study.tell(trial, seen[key])
            continue
        row, obj, rep = table[key]
        seen[key] = obj
        study.tell(trial, obj)
        # Strict '>': on equal objective values the first-seen arch stays the best.
        if obj > best_obj:
            best_obj, best = obj, (row, rep)
        trace.append(best)
    if len(seen) < max_budget:
        print(f"warning: {sampler_name} seed {seed} hit the trial cap "
              f"({trials} trials, {len(seen)} unique archs)", file=sys.stderr)
    picks = [trace[min(b, len(trace)) - 1] for b in budgets]
    return [p[1] for p in picks], [p[0] for p in picks], trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True, help="NB201 CSV (index,arch,...)")
    ap.add_argument("--objective", default="test_acc_200ep",
                    help="column the search maximises")
    ap.add_argument("--report", default="test_acc_200ep",
                    help="column reported for the best-by-objective arch")
    ap.add_argument("--queries", default="50,100,200",
                    help="comma-separated budgets of unique architectures")
    ap.add_argument("--seeds", type=int, default=50, help="seeds 0..N-1")
    ap.add_argument("--sampler", default="tpe,random", help="comma-separated: tpe,random")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()

    budgets = sorted({int(q) for q in args.queries.split(",") if q.strip()})
    samplers = [s.strip() for s in args.sampler.split(",") if s.strip()]
    if not budgets or min(budgets) < 1 or args.seeds < 1:
        sys.exit("--queries must be positive integers and --seeds >= 1")
    for s in samplers:
        make_sampler(s, 0)  # validate names up front

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)

    table, report_col = load_table(args.table, args.objective, args.report)
    report_max = float(report_col.max())
    optimum_rows = set(np.flatnonzero(report_col == report_max).tolist())

    results = []
    t_all = time.perf_counter()
    for s in samplers:
        vals = np.empty((args.seeds, len(budgets)))
        found = np.zeros((args.seeds, len(budgets)), dtype=bool)
        n_trials = 0
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            reps, rows, trials = run_one(s, seed, table, budgets)
            vals[seed] = reps
            found[seed] = [r in optimum_rows for r in rows]
            n_trials += trials
        dt = time.perf_counter() - t0
        print(f"optuna-{s}: {dt:.2f} s wall for {args.seeds} seeds, {n_trials} trials "
              f"({1e3 * dt / n_trials:.3f} ms/trial, "
              f"{1e3 * dt / (args.seeds * max(budgets)):.3f} ms/unique query)",
              file=sys.stderr)
        for j, b in enumerate(budgets):
            mean = float(vals[:, j].mean())
            results.append({
                "strategy": f"optuna-{s}",
                "queries": b,
                "seeds": args.seeds,
                "mean": mean,
                # Population std over seeds (numpy default ddof=0).
                "std": float(vals[:, j].std(ddof=0)),
                "regret": report_max - mean,
                "optimum_found": float(found[:, j].mean()),
            })
    total = time.perf_counter() - t_all
    print(f"total wall time: {total:.2f} s (python {sys.version.split()[0]}, "
          f"optuna {optuna.__version__}, numpy {np.__version__})", file=sys.stderr)

    if args.json:
        json.dump({"results": results}, sys.stdout, indent=2)
        print()
    else:
        print(f"objective={args.objective} report={args.report} "
              f"max({args.report})={report_max:.4f} seeds={args.seeds}")
        print(f"{'strategy':<16}{'queries':>8}{'mean':>10}{'std':>9}{'regret':>9}"
              f"{'optimum':>9}")
        for r in results:
            print(f"{r['strategy']:<16}{r['queries']:>8}{r['mean']:>10.4f}{r['std']:>9.4f}"
                  f"{r['regret']:>9.4f}{r['optimum_found']:>9.2f}")


if __name__ == "__main__":
    main()
