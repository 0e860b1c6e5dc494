"""`keras-resnet-lr-find`: Smith's learning-rate range test (`keras_resnet.lr_find`).

    keras-resnet-lr-find --dataset cifar10 --data-dir .data --depth 20
    python -m keras_resnet.lr_find --dataset cifar10 --data-dir .data --depth 20   # the same

Takes the training command's model and data flags (not those of the recipe's
length, rate and schedule, which the test sets itself) and writes, into
`--output-dir` (default runs/lr_find-<dataset>-<model>):

- `lr_find.csv`: step, learning_rate, loss, smoothed_loss;
- `lr_find.png`: the smoothed loss against the rate on a log axis, the
  suggestion marked;
- `lr_find.json`: `suggested_lr`, the rule that chose it, and the run's facts.

Nothing it trains is kept. It prints the training command for one cycle at
the suggested rate. The same as `python -m keras_resnet_cli lr_find`.
"""

import dataclasses
import os

import numpy as np

from keras_resnet import files, lr_find, plotting, runtime, specs
from keras_resnet.cli import flags, run_command

# The TrainConfig fields the range test sets itself or has no use for.
SKIPPED_FIELDS = (
    "epochs",
    "steps",
    "steps_per_epoch",
    "lr",
    "schedule",
    "lr_boundaries",
    "warmup",
    "warmup_lr",
    "recipe",
    "output_dir",
    "log_every",
    "validation_split",
)


def build_parser():
    parser = flags.ArgumentParser(description="Smith's learning-rate range test.")
    flags.add_train_config_flags(parser, skip=SKIPPED_FIELDS)
    parser.add_argument("--min-lr", type=float, default=1e-5, help="first rate (default: 1e-5)")
    parser.add_argument("--max-lr", type=float, default=10.0, help="last rate (default: 10)")
    parser.add_argument("--steps", type=int, default=300, help="most steps (default: 300)")
    parser.add_argument(
        "--output-dir", help="where the files go (default: runs/lr_find-<dataset>-<model>)"
    )
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        # The range test's folder takes the place of the run directory: planned and checked
        # before anything trains (default runs/lr_find-<dataset>-<model>).
        config = dataclasses.replace(flags.train_config(args), output_dir=args.output_dir)
        result = lr_find.range_test(config, args.min_lr, args.max_lr, args.steps)
        write_results(result, result["output_dir"], args)

    return run_command(parser.prog, run)


def write_results(result, output_dir, args):
    """Writes lr_find.csv, lr_find.png and lr_find.json; prints the suggestion."""
    rows, suggested, config = result["rows"], result["suggested_lr"], result["config"]
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, "lr_find.csv")
    files.write_csv(csv_path, rows, ("step", "learning_rate", "loss", "smoothed_loss"))
    plotting.plot_lr_find(rows, suggested, os.path.join(output_dir, "lr_find.png"))
    losses = np.array([row["smoothed_loss"] for row in rows])
    summary = {
        "suggested_lr": suggested,
        "rule": result["rule"],
        "min_lr": args.min_lr,
        "max_lr": args.max_lr,
        "steps_planned": args.steps,
        "steps_run": len(rows),
        "stopped_on_divergence": len(rows) < args.steps,
        "lowest_smoothed_loss": float(np.nanmin(losses)) if len(rows) else None,
        "model": specs.model_name(config.depth, config.plain),
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "momentum": config.momentum,
        "weight_decay": config.weight_decay,
        "versions": runtime.versions(),
    }
    files.write_json(os.path.join(output_dir, "lr_find.json"), summary)
    print(f"Range test: {len(rows)} steps; lr_find.csv, lr_find.png, lr_find.json in {output_dir}")
    if suggested is None:
        print("The loss never fell: no suggestion. Try a lower --min-lr or more --steps.")
        return
    train_flags = [f"--dataset {config.dataset}"]
    if config.data_dir:
        train_flags.append(f"--data-dir {config.data_dir}")
    train_flags.append(f"--depth {config.depth}")
    if config.plain:
        train_flags.append("--plain")
    if config.weights:
        train_flags.append(f"--weights {config.weights}")
    print(f"Suggested maximum learning rate: {suggested:.3g} ({result['rule']}). One cycle at it:")
    print(f"  keras-resnet-train {' '.join(train_flags)} --schedule onecycle --lr {suggested:.3g}")
