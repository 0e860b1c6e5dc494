"""Smith's learning-rate range test, the library of `keras-resnet-lr-find`.

    keras-resnet-lr-find --dataset cifar10 --data-dir .data --depth 20
    python -m keras_resnet.lr_find --dataset cifar10 --data-dir .data --depth 20   # the same

`range_test` trains a fresh copy of the network while the learning rate rises
exponentially from `min_lr` to `max_lr` over `steps` steps (Smith, "Cyclical
Learning Rates for Training Neural Networks", 2017, Section 3.3), stops early
once the loss has clearly diverged, and keeps nothing it trains; `suggest`
picks the peak rate of one cycle from its records. The command
(`keras_resnet.cli.lr_find`) writes them out.
"""

import math
import sys

import keras

from keras_resnet import data as data_lib
from keras_resnet import planning, runtime, schedules, training

# The loss is smoothed by an exponential moving average with this factor, bias-corrected.
SMOOTHING = 0.95
# The test stops once the smoothed loss exceeds this multiple of its lowest value.
DIVERGENCE = 4.0
SUGGESTION_RULE = (
    "the rate at the lowest smoothed loss: the largest rate at which the loss still falls, "
    "where Smith puts the peak of one cycle"
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

    The run is planned as a training run is (`keras_resnet.planning.prepare`:
    every check, weights read once), with its folder for the results:
    `config.output_dir`, by default `runs/lr_find-<dataset>-<model>`. A run
    trained in that folder is left as it is; only the test's files are added.

    Args:
        config: a `keras_resnet.config.TrainConfig` (its model, data, batch
            size, momentum, weight decay and weights are used).
        min_lr: float, the first step's rate.
        max_lr: float, the last step's rate.
        steps: int, the most steps (fewer when the loss diverges).
        log: function taking one line of progress text.

    Returns:
        A dict: `rows` (step, learning_rate, loss, smoothed_loss), `suggested_lr`,
        `rule`, the resolved `config`, and `output_dir`, the results' folder.

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
    plan = planning.prepare(
        config,
        planning.load_config_data(config),
        strategy,
        output_prefix="lr_find-",
        trains_run_dir=False,
    )
    schedule = schedules.Exponential(min_lr, max_lr, steps)
    with strategy.scope():
        model = training.build_model(plan, schedule=schedule)
    log(
        f"{model.name}: rate from {min_lr:g} to {max_lr:g} over at most {steps} steps of "
        f"batch {plan.config.batch_size}."
    )
    recorder = _LossRecorder(schedule)
    model.fit(
        data_lib.train_dataset(plan.data, plan.config.batch_size, plan.config.seed),
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
        "config": plan.config,
        "output_dir": plan.run_dir.path,
    }


if __name__ == "__main__":
    import keras_resnet_cli

    sys.exit(keras_resnet_cli.run_module("lr_find"))
