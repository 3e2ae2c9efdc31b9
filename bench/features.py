#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""What a feature costs on the seed workload: `bench/run seed` runs alternating the
baseline and the feature (B F, F B, B F, ...: drift on a shared box hits both alike),
each feature next to baselines of its own series; medians, and feature/baseline.

    bench/features.py [--runs 3] [--messages 50000] [--build DIR] [FEATURE...]

Features (default: all):
  metrics  GET /metrics every second from the harness (bench/run --scrape 1)
  loghook  a webhook log hook on Delivery records to a local receiver (--webhook)
  reload   SIGHUP every 10 s, a policy reload under load (--reload-every 10)
  redis    path limits shared through a local redis-server (--redis) against local ones,
           both with a rate limiter on every path (--path-rate 1000000/min)
  bounces  the sink refuses 10% of recipients with provider 5xx replies, each new, which
           ternd classifies and bounces (--fail-share 10; classification is always on for
           failures, so this is its cost at a 10% failure share); throughput is then
           delivered + bounced per second
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (baseline arguments, feature arguments, goal: the largest acceptable cost)
FEATURES = {
    "metrics": ([], ["--scrape", "1"], 0.01),
    "loghook": ([], ["--webhook"], 0.05),
    "reload": ([], ["--reload-every", "10"], 0.05),
    "redis": (["--path-rate", "1000000/min"], ["--redis", "--path-rate", "1000000/min"], 0.05),
    "bounces": ([], ["--fail-share", "10"], 0.05),
}


def seed_run(args, extra):
    """One `bench/run seed`; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [os.path.join(ROOT, "bench", "run"), "seed", "--messages", str(args.messages),
                "--json", out.name, *(["--build", args.build] if args.build else []), *extra]
        p = subprocess.run(argv, capture_output=True, text=True)
        summary = [line for line in p.stdout.splitlines() if line.startswith("seed:")]
        print("    " + (summary[-1] if summary else p.stdout[-2000:] + p.stderr[-2000:]),
              flush=True)
        if p.returncode != 0:
            raise SystemExit(f"bench/run {' '.join(extra)} exited {p.returncode}")
        with open(out.name) as f:
            return json.loads(f.read().splitlines()[-1])


def throughput(result):
    """Messages finished per second: delivered, plus bounced when the sink refuses some."""
    return result["finished_per_s"] or result["delivered_per_s"]


def series(args, name):
    """args.runs baseline and feature runs, alternating; the comparison."""
    base_args, feat_args, goal = FEATURES[name]
    runs = {"baseline": [], "feature": []}
    for i in range(args.runs):
        order = ("baseline", "feature") if i % 2 == 0 else ("feature", "baseline")
        for which in order:
            print(f"  {name} run {i + 1}/{args.runs}: {which}", flush=True)
            runs[which].append(seed_run(args, base_args if which == "baseline" else feat_args))
    return compare(name, runs, goal)


def compare(name, runs, goal):
    med = {w: {"rate": statistics.median(throughput(r) for r in rs),
               "cpu": statistics.median(r["ternd_cpu_s_per_1000"] for r in rs)}
           for w, rs in runs.items()}
    ratio = med["feature"]["rate"] / med["baseline"]["rate"]
    cpu_ratio = med["feature"]["cpu"] / med["baseline"]["cpu"]
    each = {w: ", ".join(f"{throughput(r):.0f}" for r in rs) for w, rs in runs.items()}
    print(f"{name}: msg/s baseline {med['baseline']['rate']:.0f} ({each['baseline']}), feature "
          f"{med['feature']['rate']:.0f} ({each['feature']}) = {ratio:.3f}x; ternd CPU s/1000 "
          f"{med['baseline']['cpu']:.3f} -> {med['feature']['cpu']:.3f} = {cpu_ratio:.3f}x; "
          f"goal cost <= {100 * goal:.0f}%: "
          f"{'met' if ratio >= 1 - goal else 'not shown (throughput)'} / "
          f"{'met' if cpu_ratio <= 1 + goal else 'not shown (CPU)'}", flush=True)
    return {"feature": name, "runs": runs, "medians": med, "throughput_ratio": ratio,
            "cpu_ratio": cpu_ratio, "goal": goal}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", nargs="*", help="default: " + ", ".join(FEATURES))
    ap.add_argument("--runs", type=int, default=3, help="runs of each, baseline and feature")
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--build", help="bench/run --build (default: its own)")
    ap.add_argument("--json", help="append each feature's comparison to this file")
    args = ap.parse_args()
    for name in args.features:
        if name not in FEATURES:
            ap.error(f"unknown feature {name!r}; known: {', '.join(FEATURES)}")
    for name in args.features or list(FEATURES):
        out = series(args, name)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    sys.exit(main())
