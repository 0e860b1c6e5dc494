"""Training throughput of the training command in two checkouts, alternating.

Measures what `train_throughput.py` measures on our side (`train.py --dataset
synthetic`, `summary.json`'s `examples_per_second`, warm-up excluded) in this
checkout and in another one (e.g. a `git worktree` of the commit before a
change), alternating runs so that a slow spell of the machine falls on both;
which side goes first alternates from round to round.

    git worktree add ../before <commit>
    python benchmarks/before_after.py --other ../before --depths 20 110 --rounds 3

Appends a Markdown section to `--output` when given.
"""

import argparse
import os
import statistics
import subprocess
import sys

import common
from train_throughput import ours


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", required=True, help="the other checkout")
    parser.add_argument("--depths", nargs="+", type=int, default=[20, 110])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60, help="train.py steps (20 are warm-up)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--output", help="append the Markdown results here")
    args = parser.parse_args()
    other = os.path.abspath(args.other)
    commit = subprocess.run(
        ["git", "-C", other, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rows = [
        f"| network | {commit} (other) images/s, median | this checkout images/s, median "
        "| ratio of medians | per-round ratios |",
        "|---|---:|---:|---:|---|",
    ]
    for depth in args.depths:
        before, after = [], []
        for round_ in range(args.rounds):
            # Which side runs first alternates too: a process right after another may be slower.
            for side in ("other", "this") if round_ % 2 == 0 else ("this", "other"):
                if side == "other":
                    before.append(ours(depth, args.steps, args.batch_size, repo=other))
                else:
                    after.append(ours(depth, args.steps, args.batch_size))
            print(f"ResNet-{depth}: other {before[-1]:.1f}, this {after[-1]:.1f}", flush=True)
        ratios = ", ".join(f"{b / a:.2f}x" for a, b in zip(before, after))
        a, b = statistics.median(before), statistics.median(after)
        rows.append(f"| ResNet-{depth} | {a:.1f} | {b:.1f} | {b / a:.2f}x | {ratios} |")
        print(rows[-1], flush=True)
    common.report(
        f"Training throughput before and after a change (other checkout: {commit})",
        f"python benchmarks/before_after.py --other {args.other} "
        f"--depths {' '.join(map(str, args.depths))} --rounds {args.rounds} "
        f"--steps {args.steps} --batch-size {args.batch_size}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    sys.exit(main())
