#!/usr/bin/env python3
"""Check mathrl's TensorBoard event files with the real `tensorboard` package (not run by CI).

Usage:
  python3 -m venv /tmp/tbvenv && /tmp/tbvenv/bin/pip install tensorboard
  /tmp/tbvenv/bin/python scripts/check_tfevents.py [RUN_DIR]

With RUN_DIR, loads every event file under it and checks each scalar against the metrics.jsonl
beside it (same tags, steps and values to float32 precision). Without it, runs a tiny `mathrl run`
script recipe that logs known values (build/mathrl must exist) and checks those.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

from tensorboard.backend.event_processing import event_accumulator, event_multiplexer


def metrics_file_for(event_dir):
    """metrics.jsonl for <dir>, metrics.rankN.jsonl for <dir>/rankN."""
    direct = os.path.join(event_dir, "metrics.jsonl")
    if os.path.exists(direct):
        return direct
    parent, leaf = os.path.split(event_dir)
    ranked = os.path.join(parent, "metrics.%s.jsonl" % leaf)
    return ranked if os.path.exists(ranked) else None


def expected_from_jsonl(path):
    expected = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            step = rec.pop("step")
            for tag, value in rec.items():
                expected.setdefault(tag, []).append((step, value))
    return expected


def check_dir(event_dir):
    acc = event_accumulator.EventAccumulator(event_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    metrics = metrics_file_for(event_dir)
    if metrics is None:
        raise SystemExit("%s: event files but no metrics.jsonl beside them" % event_dir)
    expected = expected_from_jsonl(metrics)
    if sorted(expected) != tags:
        raise SystemExit("%s: tags %s, metrics.jsonl has %s" % (event_dir, tags, sorted(expected)))
    count = 0
    for tag in tags:
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        want = expected[tag]
        if len(got) != len(want):
            raise SystemExit("%s: tag %s has %d events, metrics.jsonl %d" % (event_dir, tag, len(got), len(want)))
        for (gs, gv), (ws, wv) in zip(got, want):
            if gs != ws:
                raise SystemExit("%s: tag %s: step %d, expected %d" % (event_dir, tag, gs, ws))
            if wv is None:  # NaN or inf in the run; metrics.jsonl writes null
                ok = not math.isfinite(gv)
            else:
                ok = math.isclose(gv, wv, rel_tol=1e-6, abs_tol=1e-30)
            if not ok:
                raise SystemExit("%s: tag %s step %d: %r, expected %r" % (event_dir, tag, gs, gv, wv))
            count += 1
    print("%s: %d tags, %d scalars match metrics.jsonl" % (event_dir, len(tags), count))
    return count


def check_run(run_dir):
    dirs = sorted({root for root, _, files in os.walk(run_dir) if any(f.startswith("events.out.tfevents.") for f in files)})
    if not dirs:
        raise SystemExit("%s: no events.out.tfevents.* files" % run_dir)
    # `tensorboard --logdir RUN_DIR` finds one run per directory holding event files.
    mux = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(run_dir)
    runs = sorted(os.path.normpath(os.path.join(run_dir, r)) for r in mux.Runs())
    if runs != sorted(os.path.normpath(d) for d in dirs):
        raise SystemExit("tensorboard sees runs %s, expected %s" % (runs, dirs))
    return sum(check_dir(d) for d in dirs)


RECIPE = """
return mathrl.script {
  name = "tfevents_check",
  main = function(run)
    for i = 1, 20 do
      run.metric(i, { loss = 3 / i, ["rl/reward"] = 0.05 * i, kl = (i == 7) and 0/0 or 1e-3 * i * i })
    end
    run.metric(1000000, { loss = 0.125 })
  end,
}
"""


def main():
    if len(sys.argv) > 1:
        check_run(sys.argv[1])
        return
    binary = os.environ.get("MATHRL_BINARY", os.path.join(os.path.dirname(__file__), "..", "build", "mathrl"))
    with tempfile.TemporaryDirectory() as tmp:
        recipe = os.path.join(tmp, "check.lua")
        with open(recipe, "w") as f:
            f.write(RECIPE)
        out = os.path.join(tmp, "run")
        subprocess.run([binary, "run", recipe, "--out", out], check=True)
        n = check_run(out)
        if n != 61:
            raise SystemExit("expected 61 scalars, read %d" % n)
    print("ok: tensorboard reads mathrl's event files")


if __name__ == "__main__":
    main()
