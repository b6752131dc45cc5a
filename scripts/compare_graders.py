#!/usr/bin/env python3
"""Compares mathrl's native grader with Math-Verify on answer pairs built from MATH500.

For every MATH500 answer it writes the same answer in other notations (\\dfrac, $...$, spaces,
\\left/\\right, decimals for simple fractions, reordered sets) and near misses (the next problem's
answer, one digit changed, a tuple reversed), then grades every pair with both graders.

  python3 scripts/compare_graders.py [--shared ../shared] [--binary build/mathrl] [--fixture OUT.jsonl]

Prints the agreement and every disagreement. With --fixture, writes the pairs with Math-Verify's
verdict ("math_verify") and the verdict a careful reader gives ("expected": Math-Verify's unless
listed in OVERRIDES below with a reason); tests/reward/grader_agreement_test.cpp checks mathrl
against "expected". Needs `pip install math-verify` (setup.sh --dev does not install it).
"""
import argparse
import json
import random
import re
import subprocess
import sys
from fractions import Fraction

# (pred, gold) -> (expected verdict, why Math-Verify's differs). Filled after reading the
# disagreements this script prints.
WHY_THOUSANDS = "',\\!' is LaTeX's thousands separator; spaces beside it do not turn the number into a list"
OVERRIDES = {
    ("11, \\! 111, \\! 111, \\! 100", "11,\\! 111,\\! 111,\\! 100"): (True, WHY_THOUSANDS),
    ("\\$32, \\!348", "\\$32,\\!348"): (True, WHY_THOUSANDS),
    ("10, \\!080", "10,\\!080"): (True, WHY_THOUSANDS),
}


def variants(answer):
    """Equal rewritings of a MATH answer."""
    out = set()
    out.add("$" + answer + "$")
    out.add(answer.replace("\\frac", "\\dfrac"))
    out.add(answer.replace(",", ", ").replace("  ", " "))
    if answer.startswith("(") and answer.endswith(")"):
        out.add("\\left" + answer[:-1] + "\\right)")
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", answer)
    if m:
        f = Fraction(int(m.group(2)), int(m.group(3)))
        if m.group(1):
            f = -f
        if f.denominator in (1, 2, 4, 5, 8, 10, 20, 25, 50, 100):
            out.add(str(float(f)))
        out.add(f"{m.group(1)}{m.group(2)}/{m.group(3)}")
    if re.fullmatch(r"-?\d+", answer):
        out.add(answer + ".0")
        if len(answer.lstrip("-")) > 3:
            n = int(answer)
            out.add(f"{n:,}")
    m = re.fullmatch(r"(\d+)\^\\circ", answer)
    if m:
        out.add(m.group(1))
    out.discard(answer)
    return sorted(out)


def near_misses(answer, other):
    out = set()
    if other != answer:
        out.add(other)
    digits = [i for i, c in enumerate(answer) if c.isdigit()]
    if digits:
        i = digits[len(digits) // 2]
        out.add(answer[:i] + str((int(answer[i]) + 1) % 10) + answer[i + 1:])
    m = re.fullmatch(r"\((-?[\d.]+),\s*(-?[\d.]+)\)", answer)
    if m and m.group(1) != m.group(2):
        out.add(f"({m.group(2)}, {m.group(1)})")
    return sorted(out)


def math_verify_equal(pred, gold):
    from math_verify import parse, verify
    try:
        g = parse("$" + gold + "$")
        p = parse("$" + pred + "$") if not pred.startswith("$") else parse(pred)
        return bool(verify(g, p))
    except Exception:
        return False


def mathrl_equal(binary, pairs):
    lines = "".join(json.dumps({"pred": "\\boxed{" + p + "}", "gold": g}) + "\n" for p, g in pairs)
    out = subprocess.run([binary, "grade", "--no-fallback"], input=lines, capture_output=True, text=True, check=True)
    return [json.loads(l)["equal"] for l in out.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--binary", default="build/mathrl")
    ap.add_argument("--fixture", default="")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    answers = [json.loads(l)["answer"] for l in open(f"{args.shared}/data/math500/test.jsonl")]
    random.seed(args.seed)
    pairs, kinds = [], []
    for i, a in enumerate(answers):
        for v in variants(a):
            pairs.append((v, a))
            kinds.append("variant")
        for v in near_misses(a, answers[(i + 1) % len(answers)]):
            pairs.append((v, a))
            kinds.append("near_miss")
    ours = mathrl_equal(args.binary, pairs)
    theirs = [math_verify_equal(p, g) for p, g in pairs]
    agree = sum(o == t for o, t in zip(ours, theirs))
    print(f"{len(pairs)} pairs; mathrl and Math-Verify agree on {agree} ({100 * agree / len(pairs):.1f}%)")
    for kind in ("variant", "near_miss"):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        print(f"  {kind}: {len(idx)} pairs, mathrl equal {sum(ours[i] for i in idx)}, "
              f"Math-Verify equal {sum(theirs[i] for i in idx)}")
    for (p, g), o, t, k in zip(pairs, ours, theirs, kinds):
        if o != t:
            print(f"  DIFF [{k}] mathrl={o} math_verify={t}: pred={p!r} gold={g!r}")
    if args.fixture:
        with open(args.fixture, "w") as f:
            for (p, g), t, k in zip(pairs, theirs, kinds):
                expected, why = OVERRIDES.get((p, g), (t, ""))
                rec = {"pred": p, "gold": g, "kind": k, "math_verify": t, "expected": expected}
                if why:
                    rec["why"] = why
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"wrote {args.fixture}")


if __name__ == "__main__":
    sys.exit(main())
