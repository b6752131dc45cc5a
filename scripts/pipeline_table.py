#!/usr/bin/env python3
"""Accuracy table of pipeline runs by stage and seed, and the across-seed comparison that #10's
acceptance asks for: RL's gain over the instruct stage against the spread between seeds.

    python3 scripts/pipeline_table.py RUN_DIR [RUN_DIR...]

Each RUN_DIR is a `mathrl run recipes/main.lua --out RUN_DIR` directory; its seed is read from
log.txt ("pipeline size S, seed N"), its wall time from the first and last log timestamps. Runs
are grouped by their parent directory name's variant prefix (NAME-sSEED), so one call can compare
several variants."""
import json
import os
import re
import sys
from collections import defaultdict

STAGES = ("base", "instruct", "rl")


def overall(path):
    try:
        with open(path) as f:
            return json.load(f)["results"][0]["overall"]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def stage_timings(run):
    """Seconds from the pipeline's start to each stage's end, from log.txt timestamps."""
    try:
        with open(os.path.join(run, "log.txt")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None, None
    stamps = []
    seed = None
    for line in lines:
        m = re.match(r"^\[?(\d\d):(\d\d):(\d\d)", line)
        if m:
            stamps.append(int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]))
        s = re.search(r"pipeline size \S+, seed (\d+)", line)
        if s:
            seed = int(s[1])
    wall = None
    if len(stamps) >= 2:
        wall = (stamps[-1] - stamps[0]) % 86400
    return seed, wall


def row(run):
    seed, wall = stage_timings(run)
    r = {"run": run, "seed": seed, "wall": wall}
    for stage in STAGES:
        g = overall(os.path.join(run, "eval", stage, "greedy", "summary.json"))
        s = overall(os.path.join(run, "eval", stage, "sampled", "summary.json"))
        r[stage] = g["accuracy"]["mean"] * 100 if g else None
        if s:
            r[stage + "/mean"] = s["accuracy"]["mean"] * 100
            k = max(int(x) for x in s["maj_at"]) if s["maj_at"] else None
            if k:
                r[stage + "/maj"] = s["maj_at"][str(k)]["mean"] * 100
                r[stage + "/pass"] = s["pass_at"][str(k)]["mean"] * 100
                r["k"] = k
    return r


def fmt(v):
    return "–" if v is None else f"{v:.1f}"


def main(runs):
    groups = defaultdict(list)
    for run in runs:
        name = os.path.basename(os.path.normpath(run))
        variant = re.sub(r"-s\d+$", "", name) if re.search(r"-s\d+$", name) else "runs"
        groups[variant].append(row(run))
    for variant, rows in groups.items():
        rows.sort(key=lambda r: (r["seed"] is None, r["seed"]))
        k = next((r["k"] for r in rows if "k" in r), "k")
        print(f"\n### {variant}\n")
        print(f"| run | seed | wall s | base | instruct | rl | RL gain | instruct maj@{k} | rl maj@{k} | "
              f"instruct mean@{k} | rl mean@{k} | instruct pass@{k} | rl pass@{k} |")
        print("|---" * 13 + "|")
        gains = []
        for r in rows:
            gain = r["rl"] - r["instruct"] if r["rl"] is not None and r["instruct"] is not None else None
            if gain is not None:
                gains.append(gain)
            print("| " + " | ".join([os.path.basename(os.path.normpath(r["run"])), str(r["seed"]), str(r["wall"]) if r["wall"] is not None else "–",
                                     fmt(r["base"]), fmt(r["instruct"]), fmt(r["rl"]),
                                     "–" if gain is None else f"{gain:+.1f}",
                                     fmt(r.get("instruct/maj")), fmt(r.get("rl/maj")),
                                     fmt(r.get("instruct/mean")), fmt(r.get("rl/mean")),
                                     fmt(r.get("instruct/pass")), fmt(r.get("rl/pass"))]) + " |")
        done = [r for r in rows if r["rl"] is not None and r["instruct"] is not None]
        if len(done) >= 2:
            spread = lambda key: max(r[key] for r in done) - min(r[key] for r in done)
            mean_gain = sum(gains) / len(gains)
            print(f"\nmean RL gain {mean_gain:+.1f} points (smallest {min(gains):+.1f}); spread between seeds "
                  f"(max - min): instruct {spread('instruct'):.1f}, rl {spread('rl'):.1f}, "
                  f"gain {max(gains) - min(gains):.1f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
