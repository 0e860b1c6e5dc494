"""Training with the paper's recipes under tf.distribute, resumable and observable.

`TrainConfig` is the one typed configuration: every field is a command-line
flag of train.py, `None` means "the recipe's value", and the resolved config
is saved as the run's `config.json`. Recipes (`RECIPES`):

- `paper-cifar` (Section 4.2): batch 128, SGD momentum 0.9, weight decay 1e-4
  (gradient 1e-4 * w), lr 0.1 divided by 10 at 32k and 48k iterations, 64k in
  all; for depth >= 110 a warm-up at lr 0.01 for the first 400 iterations
  (the paper warms up "until the training error is below 80% (about 400
  iterations)"; here it is a function of the step, as every schedule is).
- `paper-imagenet` (Section 3.4): batch 256, lr 0.1 divided by 10 at fixed
  steps (the paper divides "when the error plateaus"; here every 150k steps,
  i.e. 30 epochs, as in the authors' Torch code), 60e4 iterations in all.

Boundaries are fractions of the run's length, so `--epochs`/`--steps` scale
them (64k steps -> 32k, 48k); `--lr-boundaries` sets them in steps.

The batch size is global: it is split across replicas and the learning rate
is not rescaled, so a run on 1 GPU and on 8 follows the same recipe.

Run directory (`output_dir`): `config.json`, `history.csv` (a row per epoch),
`summary.json`, `logs/` (TensorBoard), `checkpoints/`, `model.keras` (raw
pixels in, probabilities out), `saved_model/<version>/` and
`training_curves.png`. A run killed at any moment resumes from its last
finished epoch when the same command is run again.
"""

import argparse
import contextlib
import dataclasses
import gc
import glob
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_resnet import _compat, evaluation, export, models, schedules, specs
from keras_resnet import data as data_lib

RECIPES = {
    "paper-cifar": {
        "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
        "schedule": "piecewise", "steps": 64_000, "boundary_fractions": (0.5, 0.75),
        "warmup_lr": 0.01, "warmup_steps_deep": 400, "warmup_min_depth": 110,
    },
    "paper-imagenet": {
        "batch_size": 256, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
        "schedule": "piecewise", "steps": 600_000, "boundary_fractions": (0.25, 0.5, 0.75),
        "warmup_lr": 0.01, "warmup_steps_deep": 0, "warmup_min_depth": 0,
    },
}
SCHEDULES = ("piecewise", "onecycle", "cosine")
STRATEGIES = ("auto", "mirrored", "multiworker", "onedevice")
JIT_CHOICES = ("auto", "true", "false")


def _field(default, help, **kwargs):
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on; None means the recipe's value."""

    # Data
    dataset: str = _field("cifar10", "TFDS name, 'digits' (offline, bundled) or 'synthetic'")
    data_dir: str = _field(None, "local copy: class folders, CIFAR batches or IDX files")
    tfds_data_dir: str = _field(None, "TFDS data directory")
    image_size: int = _field(224, "crop size for large-image (ImageNet-style) datasets")
    validation_split: float = _field(0, "training examples held out for validation: a count (5000: the paper's 45k/5k) or a fraction; 0 validates on the test split")
    train_subset: int = _field(None, "train on the first N training examples only")
    # Model
    depth: int = _field(None, "network depth (default 20 for small images, 50 for large)")
    stem: str = _field(None, "'cifar' or 'imagenet' (default: from the image size)", choices=specs.STEMS)
    shortcut: str = _field(None, "shortcut option A, B or C (default: A for CIFAR, B for ImageNet)", choices=specs.SHORTCUTS)
    plain: bool = _field(False, "train the plain counterpart (no shortcuts)")
    bottleneck_stride: str = _field(None, "'1x1' (paper) or '3x3' (v1.5) for bottleneck nets", choices=specs.BOTTLENECK_STRIDES)
    # Recipe
    recipe: str = _field(None, "paper-cifar or paper-imagenet (default: from the image size)", choices=tuple(RECIPES))
    epochs: int = _field(None, "train this many epochs (overrides the recipe's length)")
    steps: int = _field(None, "train this many steps in all (overrides the recipe's length)")
    steps_per_epoch: int = _field(None, "steps between validations and checkpoints (default: one pass over the training data)")
    batch_size: int = _field(None, "global batch size, split across replicas")
    lr: float = _field(None, "base (peak for one-cycle) learning rate")
    momentum: float = _field(None, "SGD momentum (one-cycle: its maximum)")
    weight_decay: float = _field(None, "the paper's weight decay: gradient += weight_decay * w")
    schedule: str = _field(None, "learning-rate schedule", choices=SCHEDULES)
    lr_boundaries: list = _field(None, "steps at which piecewise divides the rate (default: the recipe's fractions of the length)", nargs="+", type=int)
    warmup: int = _field(None, "warm-up steps at --warmup-lr (default: 400 for paper-cifar depth >= 110, else 0)")
    warmup_lr: float = _field(None, "warm-up learning rate (0.01)")
    # System
    strategy: str = _field("auto", "tf.distribute strategy: auto picks multiworker with TF_CONFIG, mirrored with several devices", choices=STRATEGIES)
    cpu_devices: int = _field(0, "split the CPU into N logical devices (mirrored training without GPUs)")
    mixed_precision: bool = _field(False, "mixed precision (float16 on GPU, bfloat16 on CPU)")
    jit_compile: str = _field("false", "XLA compilation of the train step (off by default: on CPUs it replaces oneDNN's kernels and trains 1.5x slower, benchmarks/results.md)", choices=JIT_CHOICES)
    steps_per_execution: int = _field(1, "train steps run per call into the graph")
    seed: int = _field(0, "random seed (weights, shuffling, augmentation)")
    deterministic: bool = _field(False, "deterministic ops: same seed, same weights")
    output_dir: str = _field(None, "run directory (default runs/<dataset>-<model>)")
    log_every: int = _field(50, "steps between TensorBoard step summaries")


def config_from_args(argv=None):
    """Parses train.py's flags (and an optional --config JSON file) into a `TrainConfig`."""
    parser = build_parser()
    return config_from_namespace(parser, parser.parse_args(argv))


def config_from_namespace(parser, args):
    """A `TrainConfig` from parsed flags: `--config` file values, overridden by flags."""
    values = {}
    if args.config:
        try:
            with open(args.config) as f:
                values = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            parser.error(f"--config {args.config!r}: {error}")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            parser.error(f"--config {args.config!r} has unknown fields {unknown}; allowed: {sorted(known)}")
    values.update({k: v for k, v in vars(args).items() if k != "config"})
    return TrainConfig(**values)


def build_parser(description=None):
    """argparse parser with one flag per `TrainConfig` field."""
    parser = argparse.ArgumentParser(
        description=description or "Train a ResNet of He et al. (2015) with the paper's recipe.",
    )
    parser.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    add_config_flags(parser)
    return parser


def add_config_flags(parser, skip=()):
    """Adds one flag per `TrainConfig` field not in `skip`; unset flags stay absent."""
    for field in dataclasses.fields(TrainConfig):
        if field.name in skip:
            continue
        meta = dict(field.metadata)
        if field.default is not None:
            meta["help"] += f" (default: {field.default})"
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=meta["help"])
            continue
        kind = meta.pop("type", {"int": int, "float": float, "str": str, "list": int}[field.type.__name__])
        parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, **meta)


@dataclasses.dataclass
class ResolvedRun:
    """A config with every recipe value filled in, and the facts derived from it."""

    config: TrainConfig
    stem: str
    steps_per_epoch: int
    total_steps: int
    epochs: int
    lr_boundaries: list
    warmup: int


def resolve(config, data):
    """Fills the recipe's values into `config` for `data`; validates the result."""
    config = dataclasses.replace(config)
    large = data.augmentation == "scale"
    config.stem = config.stem or ("imagenet" if large else "cifar")
    config.depth = config.depth or (50 if config.stem == "imagenet" else 20)
    config.recipe = config.recipe or ("paper-imagenet" if large else "paper-cifar")
    recipe = RECIPES[config.recipe]
    for name in ("batch_size", "lr", "momentum", "weight_decay", "schedule", "warmup_lr"):
        if getattr(config, name) is None:
            setattr(config, name, recipe[name])
    _check_positive(config)

    steps_per_epoch = config.steps_per_epoch or data.train.num_examples // config.batch_size
    if data.train.num_examples < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {data.train.num_examples} "
                         "training examples.")
    if config.epochs is not None and config.steps is not None:
        raise ValueError("Give --epochs or --steps, not both.")
    if config.epochs is not None:
        total_steps = config.epochs * steps_per_epoch
    else:
        total_steps = config.steps or recipe["steps"]
    if config.lr_boundaries is None:
        boundaries = [round(f * total_steps) for f in recipe["boundary_fractions"]]
    else:
        boundaries = sorted(config.lr_boundaries)
    if config.warmup is None:
        deep = config.depth >= recipe["warmup_min_depth"] and recipe["warmup_steps_deep"]
        warmup = recipe["warmup_steps_deep"] if deep else 0
    else:
        warmup = config.warmup
    return ResolvedRun(config, config.stem, steps_per_epoch, total_steps,
                       math.ceil(total_steps / steps_per_epoch), boundaries, warmup)


def _check_positive(config):
    positive = {"batch_size": config.batch_size, "lr": config.lr, "image_size": config.image_size,
                "steps_per_execution": config.steps_per_execution, "log_every": config.log_every,
                "steps_per_epoch": config.steps_per_epoch}
    for name, value in {**positive, "epochs": config.epochs, "steps": config.steps}.items():
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive, received {value!r}.")
    for name in ("momentum", "weight_decay", "warmup_lr", "cpu_devices", "validation_split"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, received {getattr(config, name)!r}.")
    if config.warmup is not None and config.warmup < 0:
        raise ValueError(f"warmup must be >= 0 steps, received {config.warmup!r}.")


# ---------------------------------------------------------------- devices


def setup_devices(config):
    """Sets logical CPU devices, the strategy, seeds, determinism and precision.

    Must run before TensorFlow executes any op: logical devices and
    multi-worker collectives can only be configured at program start.

    Returns:
        The `tf.distribute.Strategy` of `config.strategy`.
    """
    if config.cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * config.cpu_devices)
        except RuntimeError as error:
            raise RuntimeError(f"--cpu-devices must be set before TensorFlow starts: {error}") from None
    strategy = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
    return strategy


def make_strategy(name):
    """The tf.distribute strategy for `name` (see `TrainConfig.strategy`)."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if name == "multiworker" or (name == "auto" and sum(len(v) for v in cluster.values()) > 1):
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable.")
        # Created before anything lists devices: that would start TensorFlow's context.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 or (not gpus and len(cpus) > 1) else "onedevice"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy([d.name for d in gpus] or [d.name for d in cpus])
    return tf.distribute.OneDeviceStrategy((gpus or cpus)[0].name)


def is_chief():
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    cluster = tf_config.get("cluster", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index") == 0 and "chief" not in cluster


# ------------------------------------------------------------- run state


def _write_atomic(path, text):
    """Writes a file so that a kill leaves either the old or the new content."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_writable(output_dir):
    """Fails if the run directory could not be created or written; creates nothing."""
    path = os.path.abspath(output_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir {output_dir!r} is not writable: {path!r} is "
                         f"{'not a directory' if not os.path.isdir(path) else 'read-only'}.")


class AverageMovingStatistics(keras.callbacks.Callback):
    """Gives every replica the mean of batch norm's moving statistics before each
    evaluation and checkpoint.

    Keras 3 creates the moving mean and variance with aggregation "none", so
    under a distribution strategy each replica updates its own copy from its own
    share of the batch: the copies drift apart, and the workers of a cluster
    would evaluate and save different models. A moving average is linear, so the
    mean of the copies is the moving average of all replicas' batch statistics,
    which is what tf.keras 2's on-read variables kept; averaging at these points
    needs no communication in between steps.

    Args:
        strategy: the `tf.distribute.Strategy` the model was built under.
    """

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def set_model(self, model):
        super().set_model(model)
        variables = [w.value for w in model.non_trainable_weights if "float" in w.dtype]

        def average_on_replica():
            context = tf.distribute.get_replica_context()
            for variable, mean in zip(variables, context.all_reduce("MEAN", [tf.identity(v) for v in variables])):
                variable.assign(mean)  # the replica's own copy (aggregation "none")

        self._average = tf.function(lambda: self.strategy.run(average_on_replica)) if variables else lambda: None

    def on_test_begin(self, logs=None):
        self._average()

    def on_epoch_end(self, epoch, logs=None):
        self._average()


HISTORY_FIELDS = ("epoch", "step", "learning_rate", "loss", "top1_error", "top5_error", "val_loss",
                  "val_top1_error", "val_top5_error", "seconds")


class RunState(keras.callbacks.Callback):
    """Checkpoints each epoch atomically, with the history, and stops the run.

    A checkpoint is `checkpoints/epoch-NNNN.weights.h5` (model and optimizer
    state) and `checkpoints/state.json` naming it with the history so far;
    `state.json` is replaced last, so a kill at any moment leaves a
    consistent pair. `history.csv` is rewritten from the same rows, so every
    finished epoch appears exactly once. Training stops at `total_steps`, and
    on a NaN loss without saving the bad epoch.
    """

    def __init__(self, output_dir, total_steps, steps_per_epoch, writer):
        super().__init__()
        self.directory = os.path.join(output_dir, "checkpoints")
        self.history_path = os.path.join(output_dir, "history.csv")
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.writer = writer  # False on non-chief workers
        self.state = load_state(output_dir) or {"epoch": 0, "step": 0, "history": []}
        self.diverged_at = None
        self._epoch = self._epoch_start = None

    @property
    def initial_epoch(self):
        return self.state["epoch"]

    def restore(self, model):
        """Loads the last checkpoint's model and optimizer state, if any."""
        if not self.state["epoch"]:
            return False
        model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.directory, self.state["weights"]))
        return True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_start = epoch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch * self.steps_per_epoch + batch + 1 >= self.total_steps:
            self.model.stop_training = True

    def check_loss(self, loss):
        """Stops the run when the loss is NaN or infinite."""
        if not math.isfinite(float(loss)):
            self.diverged_at = self._epoch + 1
            self.model.stop_training = True
        return self.diverged_at is None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.diverged_at is not None or not self.check_loss(logs.get("loss", 0.0)):
            return
        seconds = time.perf_counter() - self._epoch_start
        step = int(self.model.optimizer.iterations.numpy())
        row = {
            "epoch": epoch + 1,
            "step": step,
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "loss": logs.get("loss"),
            "top1_error": _error(logs.get("accuracy")),
            "top5_error": _error(logs.get("top5_accuracy")),
            "val_loss": logs.get("val_loss"),
            "val_top1_error": _error(logs.get("val_accuracy")),
            "val_top5_error": _error(logs.get("val_top5_accuracy")),
            "seconds": round(seconds, 3),  # wall time of the epoch, validation included
        }
        row = {k: (None if v is None else float(v) if k not in ("epoch", "step") else v)
               for k, v in row.items()}
        history = self.state["history"] + [row]
        weights = f"epoch-{epoch + 1:04d}.weights.h5"
        if self.writer:
            os.makedirs(self.directory, exist_ok=True)
            self.model.save_weights(os.path.join(self.directory, weights))
        self.state = {"epoch": epoch + 1, "step": step, "weights": weights, "history": history}
        if self.writer:
            _write_atomic(os.path.join(self.directory, "state.json"), json.dumps(self.state, indent=1))
            for old in glob.glob(os.path.join(self.directory, "epoch-*.weights.h5")):
                if os.path.basename(old) != weights:
                    os.remove(old)
            write_history(self.history_path, history)


def _error(accuracy):
    return None if accuracy is None else 1.0 - float(accuracy)


def load_state(output_dir):
    path = os.path.join(output_dir, "checkpoints", "state.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_history(path, rows):
    lines = [",".join(HISTORY_FIELDS)]
    for row in rows:
        lines.append(",".join("" if row.get(k) is None else str(row[k]) for k in HISTORY_FIELDS))
    _write_atomic(path, "\n".join(lines) + "\n")


class StepLogger(keras.callbacks.Callback):
    """TensorBoard step summaries and a throughput measure that skips warm-up.

    Every `log_every` steps it writes loss, top-1 error, learning rate and
    images/second to `logs/train`, and puts `images_per_second` into the
    progress bar's logs. `examples_per_second` counts only steps after the
    first `warmup_steps` of the run and never the first step of an epoch (the
    iterator restart) or validation.
    """

    def __init__(self, log_dir, log_every, global_batch, steps_per_epoch, warmup_steps, run_state,
                 writer):
        super().__init__()
        self.log_every = log_every
        self.global_batch = global_batch
        self.steps_per_epoch = steps_per_epoch
        self.run_state = run_state
        self.warmup_steps = warmup_steps
        self.summary = tf.summary.create_file_writer(os.path.join(log_dir, "train")) if writer else None
        self.validation = tf.summary.create_file_writer(os.path.join(log_dir, "validation")) if writer else None
        self.measured_steps = 0
        self.measured_seconds = 0.0
        self._last = self._epoch = None
        self._seen = 0

    @property
    def examples_per_second(self):
        if not self.measured_seconds:
            return None
        return self.measured_steps * self.global_batch / self.measured_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._last, self._epoch = None, epoch

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        step = self._epoch * self.steps_per_epoch + batch + 1  # no device sync
        if self._last is not None:
            last_time, last_step = self._last
            if last_step >= self.warmup_steps:
                self.measured_steps += step - last_step
                self.measured_seconds += now - last_time
            if logs is not None and now > last_time:
                logs["images_per_second"] = (step - last_step) * self.global_batch / (now - last_time)
        self._last = (now, step)
        if step - self._seen >= self.log_every and logs:
            self._seen = step
            if not self.run_state.check_loss(logs["loss"]) or self.summary is None:
                return
            with self.summary.as_default(step=step):
                tf.summary.scalar("loss", float(logs["loss"]))
                if "accuracy" in logs:
                    tf.summary.scalar("top1_error", 1.0 - float(logs["accuracy"]))
                tf.summary.scalar("learning_rate", float(keras.ops.convert_to_numpy(
                    self.model.optimizer.learning_rate)))
                if "images_per_second" in logs:
                    tf.summary.scalar("images_per_second", float(logs["images_per_second"]))

    def on_epoch_end(self, epoch, logs=None):
        if self.summary is None or not logs:
            return
        step = int(self.model.optimizer.iterations.numpy())
        for writer, prefix in ((self.summary, ""), (self.validation, "val_")):
            with writer.as_default(step=step):
                if f"{prefix}loss" in logs:
                    tf.summary.scalar("epoch_loss", float(logs[f"{prefix}loss"]))
                if f"{prefix}accuracy" in logs:
                    tf.summary.scalar("epoch_top1_error", 1.0 - float(logs[f"{prefix}accuracy"]))
            writer.flush()


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


# ------------------------------------------------------------------ train


def make_schedule(run):
    """The learning-rate schedule of a resolved run (a function of the step)."""
    config = run.config
    if config.schedule == "onecycle":
        return schedules.OneCycle(config.lr, run.total_steps, max_momentum=config.momentum,
                                  min_momentum=min(config.momentum, 0.85))
    if config.schedule == "cosine":
        return schedules.Cosine(config.lr, run.total_steps, warmup_steps=run.warmup)
    return schedules.PiecewiseConstant(config.lr, run.lr_boundaries, warmup_steps=run.warmup,
                                       warmup_lr=config.warmup_lr)


def build_and_compile(run, data):
    """The model for a resolved run, compiled with its optimizer and metrics."""
    config = run.config
    model = models.ResNet(
        config.depth, stem=run.stem, shortcut=config.shortcut, plain=config.plain,
        bottleneck_stride=config.bottleneck_stride, input_shape=data.image_shape,
        classes=data.num_classes, input_mean=data.mean, input_std=data_lib.PIXEL_SCALE,
        weight_decay=config.weight_decay,
    )
    schedule = make_schedule(run)
    optimizer = schedules.SGD(
        learning_rate=schedule, momentum=config.momentum,
        momentum_schedule=schedule if config.schedule == "onecycle" else None,
    )
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if data.num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=metrics, jit_compile=jit, steps_per_execution=config.steps_per_execution)
    return model


def versions():
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__}


def load_config_data(config):
    """The `Data` a `TrainConfig` names: its dataset, split, subset and image size."""
    return data_lib.load_data(config.dataset, config.data_dir, config.tfds_data_dir, config.image_size,
                              config.validation_split, config.train_subset, config.seed)


def train(config, log=print, data=None, strategy=None, finalize=True):
    """Runs (or resumes) a training run and returns its summary dict.

    Args:
        config: a `TrainConfig`.
        log: function taking one line of progress text.
        data: optional `keras_resnet.data.Data` already loaded for `config`
            (hyperparameter search reuses one across trials).
        strategy: optional strategy already set up by `setup_devices`.
        finalize: write `model.keras`, the SavedModel and the curves at the end.

    Returns:
        The summary written to `summary.json`.

    Raises:
        ValueError: for an invalid config or data (before training starts).
        TrainingDiverged: when the loss became NaN or infinite.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"Training runs on the TensorFlow backend (tf.distribute, tf.data); "
                         f"KERAS_BACKEND is {keras.backend.backend()!r}.")
    strategy = strategy or setup_devices(config)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _compat.check_keras_for_multi_worker()  # before anything is written
    if config.output_dir:
        check_writable(config.output_dir)
    data = data or load_config_data(config)
    run = resolve(config, data)
    config = run.config
    model_name = f"{'plain' if config.plain else 'resnet'}{config.depth}"
    output_dir = config.output_dir or os.path.join("runs", f"{config.dataset}-{model_name}")
    config.output_dir = output_dir
    check_writable(output_dir)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"batch_size={config.batch_size} does not split evenly over {replicas} replicas.")
    chief = is_chief()
    # Non-chief workers of a cluster write to a scratch directory they delete.
    write_dir = output_dir if chief else tempfile.mkdtemp(prefix="keras_resnet_worker_")
    resolved = {**dataclasses.asdict(config), "steps_per_epoch": run.steps_per_epoch,
                "total_steps": run.total_steps, "epochs_planned": run.epochs,
                "lr_boundaries_steps": run.lr_boundaries, "warmup_steps": run.warmup,
                "num_replicas": replicas, "per_replica_batch_size": config.batch_size // replicas,
                "data": data.describe(), "versions": versions()}
    _check_same_run(output_dir, resolved)

    with strategy.scope():
        model = build_and_compile(run, data)
    if chief:
        os.makedirs(output_dir, exist_ok=True)
    state = RunState(write_dir, run.total_steps, run.steps_per_epoch, chief)
    summary_path = os.path.join(output_dir, "summary.json")
    finished = state.initial_epoch >= run.epochs or state.state["step"] >= run.total_steps
    if finished and os.path.exists(summary_path):
        log(f"Run in {output_dir} already finished ({state.initial_epoch} epochs); nothing to do.")
        with open(summary_path) as f:
            return json.load(f)
    if chief:
        _write_atomic(os.path.join(output_dir, "config.json"), json.dumps(resolved, indent=1))
    with strategy.scope():
        restored = state.restore(model)
    if restored:
        log(f"Resuming {output_dir} from epoch {state.initial_epoch} "
            f"(step {state.state['step']}), its last checkpoint.")
    log(f"{model.name}: {model.count_params():,} parameters, {data.train.num_examples} training "
        f"examples, {run.total_steps} steps ({run.epochs} epochs of {run.steps_per_epoch}), "
        f"global batch {config.batch_size} on {replicas} replica(s).")

    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    train_ds = data_lib.train_dataset(data, config.batch_size, config.seed, multi_worker)
    validation = data.validation or data.test
    val_ds = data_lib.eval_dataset(data, validation, config.batch_size, multi_worker)
    logger = StepLogger(os.path.join(write_dir, "logs"), config.log_every, config.batch_size,
                        run.steps_per_epoch,
                        warmup_steps=state.state["step"] + min(20, run.steps_per_epoch // 2),
                        run_state=state, writer=chief)
    started = time.perf_counter()
    if not finished:
        # Replicas' batch-norm statistics are averaged before the checkpoint reads them.
        synchronise = [AverageMovingStatistics(strategy)] if replicas > 1 else []
        workaround = (_compat.multi_worker_fit(model, train_ds, strategy) if multi_worker
                      else contextlib.nullcontext())
        with workaround:
            model.fit(train_ds, validation_data=val_ds, epochs=run.epochs,
                      initial_epoch=state.initial_epoch, steps_per_epoch=run.steps_per_epoch,
                      callbacks=[*synchronise, state, logger], shuffle=False,
                      verbose=1 if sys.stdout.isatty() else 2)
        # Training is over: free its graphs (gigabytes for ResNet-1202) before the
        # evaluation and export trace theirs. Keras builds them again if needed.
        model.train_function = model.test_function = None
        gc.collect()
    if state.diverged_at is not None:
        raise TrainingDiverged(
            f"The loss became NaN or infinite in epoch {state.diverged_at}; training stopped. "
            f"The last good checkpoint (epoch {state.initial_epoch}) is kept in "
            f"{os.path.join(output_dir, 'checkpoints')}. Try a lower --lr or --warmup."
        )

    # The same numbers evaluate.py reports: cross-entropy without the decay term.
    test = evaluation.evaluate(evaluation.classifier_from_model(model, data.class_names), data,
                               config.batch_size)
    history = state.state["history"]
    summary = {
        "model": model.name,
        "dataset": config.dataset,
        "epochs": state.state["epoch"],
        "steps": state.state["step"],
        "test_loss": test["loss"],
        "test_top1_error": test["top1_error"],
        "test_top5_error": test["top5_error"],
        "num_test_examples": test["num_examples"],
        "final_train_loss": history[-1]["loss"] if history else None,
        "final_train_top1_error": history[-1]["top1_error"] if history else None,
        "final_val_top1_error": history[-1]["val_top1_error"] if history else None,
        "num_replicas": replicas,
        "global_batch_size": config.batch_size,
        "examples_per_second": logger.examples_per_second,
        "train_seconds_this_session": round(time.perf_counter() - started, 1),
        "trainable_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
    }
    if chief and finalize:
        _finish_run(model, output_dir, data, history, summary)
    elif chief:
        _write_atomic(os.path.join(output_dir, "summary.json"), json.dumps(summary, indent=1))
    else:
        shutil.rmtree(write_dir, ignore_errors=True)
    rate = summary["examples_per_second"]
    log(f"{model.name} on {config.dataset}: test top-1 error {summary['test_top1_error']:.2%} "
        f"after {summary['epochs']} epochs ({summary['steps']} steps)"
        + (f", {rate:,.0f} images/s" if rate else "") + f"; outputs in {output_dir}")
    return summary


ARCHITECTURE_FIELDS = ("dataset", "depth", "stem", "shortcut", "plain", "bottleneck_stride", "steps_per_epoch",
                       "batch_size", "schedule", "recipe")


def _check_same_run(output_dir, resolved):
    """Refuses to resume a run directory that holds a different configuration."""
    path = os.path.join(output_dir, "config.json")
    if not (os.path.exists(path) and load_state(output_dir)):
        return
    with open(path) as f:
        previous = json.load(f)
    changed = {k: (previous.get(k), resolved[k]) for k in ARCHITECTURE_FIELDS
               if previous.get(k) != resolved[k]}
    if changed:
        details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(f"{output_dir!r} holds a run with another configuration ({details}); "
                         "choose another --output-dir to keep it.")


def _finish_run(model, output_dir, data, history, summary):
    model.save(os.path.join(output_dir, "model.keras"))
    summary["saved_model"] = export.export_saved_model(
        model, os.path.join(output_dir, "saved_model"), class_names=data.class_names,
        preprocessing=export.preprocessing_for(data.augmentation))
    _write_atomic(os.path.join(output_dir, "summary.json"), json.dumps(summary, indent=1))
    if history:
        plot_history(history, os.path.join(output_dir, "training_curves.png"))


def plot_history(history, path):
    """Training curves (error and loss against steps) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in history]
    fig, (err, loss) = plt.subplots(1, 2, figsize=(10, 4))
    err.plot(steps, [100 * row["top1_error"] for row in history], "--", label="train")
    if history[0]["val_top1_error"] is not None:
        err.plot(steps, [100 * row["val_top1_error"] for row in history], "-", lw=2, label="validation")
    err.set(xlabel="iterations", ylabel="top-1 error (%)", title="error")
    loss.plot(steps, [row["loss"] for row in history], "--", label="train")
    if history[0]["val_loss"] is not None:
        loss.plot(steps, [row["val_loss"] for row in history], "-", lw=2, label="validation")
    loss.set(xlabel="iterations", ylabel="loss", title="loss")
    for axis in (err, loss):
        axis.legend()
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
