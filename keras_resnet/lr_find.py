"""Smith's learning-rate range test: `keras-resnet-lr-find` / `python -m keras_resnet.lr_find`.

    keras-resnet-lr-find --dataset cifar10 --data-dir .data --depth 20

Trains a fresh copy of the network while the learning rate rises
exponentially from `--min-lr` to `--max-lr` over `--steps` steps (Smith,
"Cyclical Learning Rates for Training Neural Networks", 2017, Section 3.3),
and stops early once the loss has clearly diverged. It takes the training
command's model and data flags and writes, into `--output-dir`:

- `lr_find.csv`: step, learning_rate, loss, smoothed_loss;
- `lr_find.png`: the smoothed loss against the rate on a log axis, the
  suggestion marked;
- `lr_find.json`: `suggested_lr`, the rule that chose it, and the run's facts.

Nothing it trains is kept. It prints the training command for one cycle at
the suggested rate.
"""

import argparse
import dataclasses
import math
import os
import sys

import keras
import numpy as np

from keras_resnet.cli import run_command
from keras_resnet import config as config_lib
from keras_resnet import data as data_lib
from keras_resnet import plotting, rundir, runtime, schedules, specs, training

# The loss is smoothed by an exponential moving average with this factor, bias-corrected.
SMOOTHING = 0.95
# The test stops once the smoothed loss exceeds this multiple of its lowest value.
DIVERGENCE = 4.0
SUGGESTION_RULE = (
    "the rate at the lowest smoothed loss: the largest rate at which the loss still falls, "
    "where Smith puts the peak of one cycle"
)
# Flags of the training command that the range test sets itself or has no use for.
SKIPPED_FLAGS = (
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


class _LossRecorder(keras.callbacks.Callback):
    """Records each step's loss and stops the fit once it has diverged.

    Keras hands batch callbacks the epoch's running mean of the loss; the
    step's own loss is recovered from consecutive means.
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.rows = []
        self._previous_mean = 0.0
        self._average = 0.0
        self._lowest = math.inf

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        step = len(self.rows)
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
        smoothed = self._average / (1 - SMOOTHING ** (step + 1))
        rate = float(self.schedule(step))
        self.rows.append(
            {"step": step, "learning_rate": rate, "loss": loss, "smoothed_loss": smoothed}
        )
        self._lowest = min(self._lowest, smoothed)
        if not math.isfinite(smoothed) or smoothed > DIVERGENCE * self._lowest:
            self.model.stop_training = True


def suggest(rows):
    """The suggested maximum rate of one cycle: see `SUGGESTION_RULE`.

    Args:
        rows: the test's records, as `range_test` returns them.

    Returns:
        The suggested rate, or None when the loss never fell.
    """
    finite = [row for row in rows if math.isfinite(row["smoothed_loss"])]
    if len(finite) < 3:
        return None
    best = min(finite, key=lambda row: row["smoothed_loss"])
    if best["smoothed_loss"] >= finite[0]["smoothed_loss"]:
        return None
    return best["learning_rate"]


def range_test(config, min_lr=1e-5, max_lr=10.0, steps=300, log=print):
    """Runs the range test for a training configuration; keeps nothing it trains.

    Args:
        config: a `keras_resnet.config.TrainConfig` (its model, data, batch
            size, momentum, weight decay and weights are used).
        min_lr: float, the first step's rate.
        max_lr: float, the last step's rate.
        steps: int, the most steps (fewer when the loss diverges).
        log: function taking one line of progress text.

    Returns:
        A dict: `rows` (step, learning_rate, loss, smoothed_loss), `suggested_lr`,
        `rule`, and the resolved `config`.

    Raises:
        ValueError: for invalid arguments, before anything is trained.
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(
            f"--min-lr and --max-lr must satisfy 0 < min-lr < max-lr, received {min_lr} "
            f"and {max_lr}."
        )
    if steps < 10:
        raise ValueError(f"--steps must be at least 10, received {steps}.")
    strategy = runtime.setup_devices(config)
    data = training.load_config_data(config)
    config, weights = training.follow_weights(config)
    run = config_lib.resolve(config, data)
    run = dataclasses.replace(run, steps_per_epoch=steps, total_steps=steps, epochs=1)
    schedule = schedules.Exponential(min_lr, max_lr, steps)
    with strategy.scope():
        model = training.build_and_compile(
            run, data, training.read_pretrained(run.config, weights), schedule=schedule
        )
    log(
        f"{model.name}: rate from {min_lr:g} to {max_lr:g} over at most {steps} steps of "
        f"batch {run.config.batch_size}."
    )
    recorder = _LossRecorder(schedule)
    model.fit(
        data_lib.train_dataset(data, run.config.batch_size, run.config.seed),
        epochs=1,
        steps_per_epoch=steps,
        callbacks=[recorder],
        shuffle=False,  # the pipeline shuffles
        verbose=1 if sys.stdout.isatty() else 0,
    )
    return {
        "rows": recorder.rows,
        "suggested_lr": suggest(recorder.rows),
        "rule": SUGGESTION_RULE,
        "config": run.config,
    }


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    config_lib.add_config_flags(parser, skip=SKIPPED_FLAGS)
    parser.add_argument("--min-lr", type=float, default=1e-5, help="first rate (default: 1e-5)")
    parser.add_argument("--max-lr", type=float, default=10.0, help="last rate (default: 10)")
    parser.add_argument("--steps", type=int, default=300, help="most steps (default: 300)")
    parser.add_argument(
        "--output-dir", help="where the files go (default: runs/lr_find-<dataset>-<model>)"
    )
    args = parser.parse_args(argv)

    def run():
        own = {"min_lr", "max_lr", "steps", "output_dir"}
        namespace = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in own})
        config = config_lib.config_from_namespace(parser, namespace)
        if args.output_dir:
            rundir.check_writable(args.output_dir)
        result = range_test(config, args.min_lr, args.max_lr, args.steps)
        resolved = result["config"]
        output_dir = args.output_dir or os.path.join(
            "runs", f"lr_find-{resolved.dataset}-{specs.model_name(resolved.depth, resolved.plain)}"
        )
        rundir.check_writable(output_dir)
        write_results(result, output_dir, args)
        return 0

    return run_command(parser.prog, run)


def write_results(result, output_dir, args):
    """Writes lr_find.csv, lr_find.png and lr_find.json; prints the suggestion."""
    rows, suggested, config = result["rows"], result["suggested_lr"], result["config"]
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, "lr_find.csv")
    rundir.write_csv(csv_path, rows, ("step", "learning_rate", "loss", "smoothed_loss"))
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
    rundir.write_json(os.path.join(output_dir, "lr_find.json"), summary)
    print(f"Range test: {len(rows)} steps; lr_find.csv, lr_find.png, lr_find.json in {output_dir}")
    if suggested is None:
        print("The loss never fell: no suggestion. Try a lower --min-lr or more --steps.")
        return
    flags = [f"--dataset {config.dataset}"]
    if config.data_dir:
        flags.append(f"--data-dir {config.data_dir}")
    flags.append(f"--depth {config.depth}")
    if config.plain:
        flags.append("--plain")
    if config.weights:
        flags.append(f"--weights {config.weights}")
    print(f"Suggested maximum learning rate: {suggested:.3g} ({result['rule']}). One cycle at it:")
    print(f"  keras-resnet-train {' '.join(flags)} --schedule onecycle --lr {suggested:.3g}")


if __name__ == "__main__":
    sys.exit(main())
