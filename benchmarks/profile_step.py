"""Where a ResNet-20 training step spends its time, by TensorFlow's profiler.

Records a TensorFlow profile of `model.fit` steps on one fixed batch of 128
(levers.py's step: oneDNN on, XLA off), once with Keras 3's batch norm and
once with keras_resnet's fused one, and prints the op types ranked by their
share of the CPU self-time of all ops. The profiles stay in `--logdir` for
TensorBoard's Profile tab (`tensorboard --logdir DIR`).

Reading the profiles needs xprof (`pip install xprof`), a benchmark-only
dependency like PyTorch.

    python benchmarks/profile_step.py --logdir runs/profile --output benchmarks/results.md
"""

import argparse
import collections
import glob
import json
import os

import common
import levers


def self_time_by_op_type(profile_dir):
    """{op type: seconds of self-time} over the ops of one recorded profile."""
    from xprof.convert import raw_to_tool_data

    paths = glob.glob(os.path.join(profile_dir, "**", "*.xplane.pb"), recursive=True)
    if len(paths) != 1:
        raise RuntimeError(f"expected one profile under {profile_dir}, found {len(paths)}")
    data, _ = raw_to_tool_data.xspace_to_tool_data(paths, "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    seconds = collections.Counter()
    for row in table["rows"]:
        op = dict(zip(columns, (cell["v"] for cell in row["c"])))
        if op["type"] != "IDLE":  # threads waiting for work
            seconds[op["type"]] += op["total_self_time"] / 1e6
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=8, help="op types listed per batch norm")
    parser.add_argument("--logdir", default="runs/profile")
    parser.add_argument("--output")
    args = parser.parse_args()

    rows = [
        "| batch norm | images/s (profiled) | op type | share of op self-time |",
        "|---|---:|---|---:|",
    ]
    for batch_norm in ("keras", "fused"):
        profile_dir = os.path.join(args.logdir, batch_norm)
        if os.path.exists(profile_dir):
            raise SystemExit(f"profile_step.py: error: {profile_dir} exists; give another --logdir")
        rate = levers.measure(args.steps, batch_norm=batch_norm, profile_dir=profile_dir)
        seconds = self_time_by_op_type(profile_dir)
        total = sum(seconds.values())
        for rank, (op_type, value) in enumerate(seconds.most_common(args.top)):
            rows.append(
                f"| {batch_norm if rank == 0 else ''} | {f'{rate:.0f}' if rank == 0 else ''} "
                f"| {op_type} | {100 * value / total:.1f}% |"
            )
        rest = total - sum(value for _, value in seconds.most_common(args.top))
        rows.append(f"| | | all other op types | {100 * rest / total:.1f}% |")
        print("\n".join(rows), flush=True)
    common.report(
        "Where ResNet-20's training step spends its time (TF profiler)",
        f"python benchmarks/profile_step.py --steps {args.steps} --logdir {args.logdir}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
