#!/usr/bin/env python3
"""Python peer benchmark: multi-objective Optuna samplers on the NAS-Bench-201 (CIFAR-10) table.

Same space and lookup as optuna_nb201.py (6 categorical edges of 5 ops; "training" a cell is a
table lookup), but every study has two objectives: the --objective column of --table,
maximised, and the cell's parameter count from --costs (the CSV arch,params,macs that
`cargo run -p nasforge-core --example nb201_costs` writes), minimised.

The budget counts UNIQUE architectures exactly as optuna_nb201.py does: a re-proposed cell is
told its cached values and is free, and a study stops after TRIAL_CAP_FACTOR trials per unique
architecture of the largest budget (the budgets it did not reach reuse what it had found).

At each budget in --queries, per sampler, over seeds 0..N-1:
  hypervolume  the hypervolume of the (accuracy, -params) points of the archs queried so far,
               with the reference point --reference (accuracy 85.0, params 1.6e6), divided by
               that of the whole table's true Pareto front (1.0 = the true front's hypervolume);
               mean and population std (ddof=0) over seeds;
  front share  the fraction of the true front's archs (equal points all count) that are among
               the queried archs, mean over seeds;
  seconds      wall time of the studies up to that budget, summed over seeds.

Usage (see run_mo.sh, which sets up the pinned venv):
  optuna_mo_nb201.py --table cifar10.csv --costs nb201_costs.csv \
      --queries 50,100,200 --seeds 50 --sampler nsga2,tpe,random --json
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

from optuna_nb201 import EDGES, OPS, TRIAL_CAP_FACTOR, load_table, parse_arch


def make_sampler(name: str, seed: int):
    # Optuna defaults, no tuning (NSGA-II: population 50; TPE is multi-objective because the
    # study has two directions).
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r} (nsga2, tpe, random)")


def load_costs(path: str) -> dict[tuple[str, ...], float]:
    """{ops tuple: parameter count} from an arch,params,... CSV."""
    costs = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for col in ("arch", "params"):
            if col not in (reader.fieldnames or []):
                sys.exit(f"column {col!r} not in {path} (have {reader.fieldnames})")
        for row in reader:
            key = parse_arch(row["arch"])
            if key in costs:
                sys.exit(f"duplicate arch {row['arch']!r} in {path}")
            costs[key] = float(row["params"])
    return costs


def hypervolume_2d(points, reference) -> float:
    """Exact area dominated by `points` (both coordinates maximised) and dominating
    `reference`. Points not strictly better than the reference in both coordinates add
    nothing; equal points count once. Sort by the first coordinate, best first, and add for
    each point the strip above the highest second coordinate seen so far."""
    rx, ry = reference
    boxes = sorted(((x - rx, y - ry) for x, y in points if x > rx and y > ry), reverse=True)
    area, top = 0.0, 0.0
    for w, h in boxes:
        if h > top:
            area += w * (h - top)
            top = h
    return area


def true_front(points: dict) -> set:
    """Keys of the points no other point dominates ((accuracy, -params), both maximised).
    Sweep by accuracy, best first: within one accuracy only the smallest parameter count can
    be on the front, and only if no more accurate point is as small."""
    order = sorted(points, key=lambda k: (-points[k][0], -points[k][1]))
    front = set()
    best_higher = -np.inf  # best -params among strictly more accurate points
    i = 0
    while i < len(order):
        acc = points[order[i]][0]
        j = i
        while j < len(order) and points[order[j]][0] == acc:
            j += 1
        group_best = points[order[i]][1]  # sorted, so the group's best -params comes first
        if group_best > best_higher:
            front.update(k for k in order[i:j] if points[k][1] == group_best)
            best_higher = group_best
        i = j
    return front


def run_one(sampler_name: str, seed: int, table, costs, budgets: list[int]):
    """One study. Returns the unique archs in query order and the wall time (seconds since
    the start) at which each budget was reached."""
    max_budget = max(budgets)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler_name, seed))
    seen: dict[tuple[str, ...], tuple[float, float]] = {}
    queried = []
    reached = {}
    trials = 0
    t0 = time.perf_counter()
    while len(seen) < max_budget and trials < TRIAL_CAP_FACTOR * max_budget:
        trial = study.ask()
        key = tuple(trial.suggest_categorical(e, OPS) for e in EDGES)
        trials += 1
        if key in seen:  # re-query: free, cached values, not counted
            study.tell(trial, seen[key])
            continue
        values = (table[key][1], costs[key])
        seen[key] = values
        study.tell(trial, values)
        queried.append(key)
        if len(queried) in budgets:
            reached[len(queried)] = time.perf_counter() - t0
    if len(seen) < max_budget:
        print(f"warning: {sampler_name} seed {seed} hit the trial cap "
              f"({trials} trials, {len(seen)} unique archs)", file=sys.stderr)
    end = time.perf_counter() - t0
    return queried, [reached.get(b, end) for b in budgets], trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True, help="NB201 CSV (index,arch,...)")
    ap.add_argument("--costs", required=True,
                    help="CSV arch,params,... (the nb201_costs example's output)")
    ap.add_argument("--objective", default="test_acc_200ep",
                    help="table column maximised (the other objective, params, is minimised)")
    ap.add_argument("--reference", default="85.0,1.6e6",
                    help="hypervolume reference point: objective,params")
    ap.add_argument("--queries", default="50,100,200",
                    help="comma-separated budgets of unique architectures")
    ap.add_argument("--seeds", type=int, default=50, help="seeds 0..N-1")
    ap.add_argument("--sampler", default="nsga2,tpe,random",
                    help="comma-separated: nsga2,tpe,random")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()

    budgets = sorted({int(q) for q in args.queries.split(",") if q.strip()})
    samplers = [s.strip() for s in args.sampler.split(",") if s.strip()]
    if not budgets or min(budgets) < 1 or args.seeds < 1:
        sys.exit("--queries must be positive integers and --seeds >= 1")
    try:
        ref_obj, ref_params = (float(v) for v in args.reference.split(","))
    except ValueError:
        sys.exit(f"--reference must be two numbers objective,params (got {args.reference!r})")
    for s in samplers:
        try:
            make_sampler(s, 0)  # validate names up front
        except ValueError as e:
            sys.exit(str(e))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)

    table, _ = load_table(args.table, args.objective, args.objective)
    costs = load_costs(args.costs)
    missing = [k for k in table if k not in costs]
    if missing:
        sys.exit(f"{len(missing)} archs of {args.table} have no cost in {args.costs}, "
                 f"e.g. {'|' + '|+|'.join(missing[0]) + '|'}")
    # (objective, -params): both maximised, as the hypervolume wants.
    points = {k: (table[k][1], -costs[k]) for k in table}
    reference = (ref_obj, -ref_params)
    front = true_front(points)
    front_hv = hypervolume_2d((points[k] for k in front), reference)
    if front_hv <= 0.0:
        sys.exit(f"no arch of the table is better than the reference {args.reference}")
    print(f"true Pareto front: {len(front)} archs, "
          f"{len({points[k] for k in front})} distinct points, hypervolume {front_hv:.4f} "
          f"(reference {ref_obj}, {ref_params:g} params)", file=sys.stderr)

    results = []
    t_all = time.perf_counter()
    for s in samplers:
        hv = np.empty((args.seeds, len(budgets)))
        share = np.empty((args.seeds, len(budgets)))
        secs = np.zeros(len(budgets))
        n_trials = 0
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            queried, reached, trials = run_one(s, seed, table, costs, budgets)
            n_trials += trials
            secs += reached
            for j, b in enumerate(budgets):
                found = queried[:b]
                hv[seed, j] = hypervolume_2d((points[k] for k in found), reference) / front_hv
                share[seed, j] = len(front.intersection(found)) / len(front)
        dt = time.perf_counter() - t0
        print(f"optuna-{s}: {dt:.2f} s wall for {args.seeds} seeds, {n_trials} trials "
              f"({1e3 * dt / n_trials:.3f} ms/trial)", file=sys.stderr)
        for j, b in enumerate(budgets):
            results.append({
                "sampler": f"optuna-{s}",
                "queries": b,
                "seeds": args.seeds,
                "hypervolume_mean": float(hv[:, j].mean()),
                # Population std over seeds (numpy default ddof=0).
                "hypervolume_std": float(hv[:, j].std(ddof=0)),
                "front_share_mean": float(share[:, j].mean()),
                "seconds": float(secs[j]),
            })
    total = time.perf_counter() - t_all
    print(f"total wall time: {total:.2f} s (python {sys.version.split()[0]}, "
          f"optuna {optuna.__version__}, numpy {np.__version__})", file=sys.stderr)

    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        print(f"objectives: max {args.objective}, min params; reference ({ref_obj}, "
              f"{ref_params:g}); true front {len(front)} archs, hypervolume {front_hv:.4f}; "
              f"seeds={args.seeds}")
        print(f"{'sampler':<16}{'queries':>8}{'hv mean':>10}{'hv std':>9}{'front':>8}"
              f"{'seconds':>10}")
        for r in results:
            print(f"{r['sampler']:<16}{r['queries']:>8}{r['hypervolume_mean']:>10.4f}"
                  f"{r['hypervolume_std']:>9.4f}{r['front_share_mean']:>8.3f}"
                  f"{r['seconds']:>10.2f}")


if __name__ == "__main__":
    main()
