"""The training configuration: `TrainConfig` and the paper's recipes.

`TrainConfig` is the one typed configuration: every field is a command-line
flag of the training command (`keras_resnet.cli.flags` makes them from the
fields' metadata), `None` means "the recipe's value", and the resolved config
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
"""

import dataclasses
import math
import os

from keras_resnet import specs

RECIPES = {
    "paper-cifar": {
        "batch_size": 128,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "piecewise",
        "steps": 64_000,
        "boundary_fractions": (0.5, 0.75),
        "warmup_lr": 0.01,
        "warmup_steps_deep": 400,
        "warmup_min_depth": 110,
    },
    "paper-imagenet": {
        "batch_size": 256,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "piecewise",
        "steps": 600_000,
        "boundary_fractions": (0.25, 0.5, 0.75),
        "warmup_lr": 0.01,
        "warmup_steps_deep": 0,
        "warmup_min_depth": 0,
    },
}
# What a dataset's preprocessing (keras_resnet.data.Preprocessing.kind) implies
# when the config leaves it open: the paper's network and recipe for such data.
PREPROCESSING_DEFAULTS = {
    "cifar": {"stem": "cifar", "recipe": "paper-cifar"},
    "imagenet": {"stem": "imagenet", "recipe": "paper-imagenet"},
}
SCHEDULES = ("piecewise", "onecycle", "cosine")
STRATEGIES = ("auto", "mirrored", "multiworker", "onedevice")
JIT_CHOICES = ("auto", "true", "false")
# The stages a network's layers are named after (conv2..conv4 for CIFAR, ..conv5 for ImageNet).
STAGES = ("conv2", "conv3", "conv4", "conv5")


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
    validation_split: float = _field(
        0,
        "training examples held out for validation: a count (5000: the paper's 45k/5k) or "
        "a fraction; 0 validates on the test split",
    )
    train_subset: int = _field(
        None, "train on N training examples of a fixed random permutation (all classes)"
    )
    # Model
    depth: int = _field(None, "network depth (default 20 for small images, 50 for large)")
    stem: str = _field(
        None, "'cifar' or 'imagenet' (default: from the image size)", choices=specs.STEMS
    )
    shortcut: str = _field(
        None,
        "shortcut option A, B or C (default: A for CIFAR, B for ImageNet)",
        choices=specs.SHORTCUTS,
    )
    plain: bool = _field(False, "train the plain counterpart (no shortcuts)")
    bottleneck_stride: str = _field(
        None, "'1x1' (paper) or '3x3' (v1.5) for bottleneck nets", choices=specs.BOTTLENECK_STRIDES
    )
    weights: str = _field(
        None,
        "start from pretrained weights: 'cifar10', 'imagenet' or a file (keras.applications "
        ".h5, PyTorch .pth/.safetensors, .npz); architecture flags left out follow them, the "
        "input normalization is theirs, and the classifier is new when the classes differ",
    )
    freeze_backbone: bool = _field(
        False, "train only the classifier (frozen batch norm runs in inference mode)"
    )
    unfreeze_from: str = _field(
        None,
        "with --freeze-backbone: also train this stage and the later ones",
        choices=STAGES,
    )
    # Recipe
    recipe: str = _field(
        None, "paper-cifar or paper-imagenet (default: from the image size)", choices=tuple(RECIPES)
    )
    epochs: int = _field(None, "train this many epochs (overrides the recipe's length)")
    steps: int = _field(None, "train this many steps in all (overrides the recipe's length)")
    steps_per_epoch: int = _field(
        None, "steps between validations and checkpoints (default: one pass over the training data)"
    )
    batch_size: int = _field(None, "global batch size, split across replicas")
    lr: float = _field(None, "base (peak for one-cycle) learning rate")
    momentum: float = _field(None, "SGD momentum (one-cycle: its maximum)")
    weight_decay: float = _field(None, "the paper's weight decay: gradient += weight_decay * w")
    schedule: str = _field(None, "learning-rate schedule", choices=SCHEDULES)
    lr_boundaries: list = _field(
        None,
        "steps at which piecewise divides the rate (default: the recipe's fractions of the length)",
        nargs="+",
        type=int,
    )
    warmup: int = _field(
        None, "warm-up steps at --warmup-lr (default: 400 for paper-cifar depth >= 110, else 0)"
    )
    warmup_lr: float = _field(None, "warm-up learning rate (0.01)")
    # System
    strategy: str = _field(
        "auto",
        "tf.distribute strategy: auto picks multiworker with "
        "TF_CONFIG, mirrored with several devices",
        choices=STRATEGIES,
    )
    cpu_devices: int = _field(
        0, "split the CPU into N logical devices (mirrored training without GPUs)"
    )
    mixed_precision: bool = _field(False, "mixed precision (float16 on GPU, bfloat16 on CPU)")
    jit_compile: str = _field(
        "false",
        "XLA compilation of the train step (off by default: on "
        "CPUs it replaces oneDNN's kernels and trains slower; "
        "benchmarks/results.md)",
        choices=JIT_CHOICES,
    )
    steps_per_execution: int = _field(
        1, "train steps run per call into the graph (a divisor of an epoch's and the run's steps)"
    )
    seed: int = _field(0, "random seed (weights, shuffling, augmentation)")
    deterministic: bool = _field(False, "deterministic ops: same seed, same weights")
    output_dir: str = _field(None, "run directory (default runs/<dataset>-<model>)")
    log_every: int = _field(50, "steps between TensorBoard step summaries")
    profile_steps: list = _field(
        None,
        "profile steps START to END of the fit for TensorBoard's Profile tab",
        nargs=2,
        type=int,
        metavar=("START", "END"),
    )


def config_of_record(record):
    """The `TrainConfig` a run's `config.json` (`ResolvedRun.record`) was written from.

    A field the record lacks (written before the field existed) takes its default.
    """
    names = [field.name for field in dataclasses.fields(TrainConfig)]
    return TrainConfig(**{name: record[name] for name in names if name in record})


@dataclasses.dataclass
class ResolvedRun:
    """A config with every recipe value filled in, and the facts derived from it."""

    config: TrainConfig
    steps_per_epoch: int
    total_steps: int
    epochs: int
    lr_boundaries: list
    warmup: int

    def record(self):
        """The resolved config and its derived facts, as a run's `config.json` holds them."""
        return {
            **dataclasses.asdict(self.config),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "epochs_planned": self.epochs,
            "lr_boundaries_steps": self.lr_boundaries,
            "warmup_steps": self.warmup,
        }

    def is_done(self, state):
        """Whether a checkpoint `state` (or None: no checkpoint) is at the run's end."""
        return bool(state) and (state["epoch"] >= self.epochs or state["step"] >= self.total_steps)


def default_output_dir(config, prefix=""):
    """`runs/<prefix><dataset>-<model>`, the run directory when `--output-dir` is not given."""
    model = specs.model_name(config.depth, config.plain)
    return os.path.join("runs", f"{prefix}{config.dataset}-{model}")


def resolve(config, data, output_prefix=""):
    """Fills the recipe's values into a copy of `config` for `data`; validates the result.

    Args:
        config: a `TrainConfig`.
        data: the `keras_resnet.data.Data` to train on; its preprocessing
            picks the network and recipe the config leaves open.
        output_prefix: what the default run directory's name starts with
            (`default_output_dir`): "" for a training run.

    Returns:
        A `ResolvedRun`.
    """
    config = dataclasses.replace(config)
    implied = PREPROCESSING_DEFAULTS[data.preprocessing.kind]
    config.stem = config.stem or implied["stem"]
    if config.depth is None:  # not `or`: --depth 0 is refused, not taken for the default
        config.depth = specs.STEM_DEFAULTS[config.stem]["depth"]
    config.recipe = config.recipe or implied["recipe"]
    config.output_dir = config.output_dir or default_output_dir(config, output_prefix)
    recipe = RECIPES[config.recipe]
    for name in ("batch_size", "lr", "momentum", "weight_decay", "schedule", "warmup_lr"):
        if getattr(config, name) is None:
            setattr(config, name, recipe[name])
    _check_values(config)

    steps_per_epoch = config.steps_per_epoch or data.train.num_examples // config.batch_size
    if data.train.num_examples < config.batch_size:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the "
            f"{data.train.num_examples} training examples."
        )
    if config.epochs is not None and config.steps is not None:
        raise ValueError("Give --epochs or --steps, not both.")
    if config.epochs is not None:
        total_steps = config.epochs * steps_per_epoch
    else:
        total_steps = config.steps or recipe["steps"]
    execution = config.steps_per_execution
    if steps_per_epoch % execution or total_steps % execution:
        # Keras runs whole executions: an epoch would run past its last step.
        raise ValueError(
            f"--steps-per-execution {execution} must divide the {steps_per_epoch} steps of an "
            f"epoch and the run's {total_steps} steps."
        )
    if config.lr_boundaries is None:
        boundaries = [round(f * total_steps) for f in recipe["boundary_fractions"]]
    else:
        boundaries = sorted(config.lr_boundaries)
    if config.warmup is None:
        deep = config.depth >= recipe["warmup_min_depth"] and recipe["warmup_steps_deep"]
        warmup = recipe["warmup_steps_deep"] if deep else 0
    else:
        warmup = config.warmup
    return ResolvedRun(
        config,
        steps_per_epoch,
        total_steps,
        math.ceil(total_steps / steps_per_epoch),
        boundaries,
        warmup,
    )


def check(config):
    """Checks what `config` says on its own, before the data it names loads.

    Loading may mean a download of minutes, so a mistyped flag should not wait
    for it. Checks its values and its architecture: for the stem it gives, or
    else for either stem its data may imply. `resolve` checks all again with
    the data.

    Raises:
        ValueError: naming the first flag that no data could make valid.
    """
    _check_values(config)
    if config.depth is None:
        return
    stems = [config.stem] if config.stem else [d["stem"] for d in PREPROCESSING_DEFAULTS.values()]
    errors = []
    for stem in stems:
        try:
            specs.make_spec(
                config.depth,
                stem,
                shortcut=config.shortcut,
                plain=config.plain,
                bottleneck_stride=config.bottleneck_stride,
            )
            return
        except ValueError as error:
            errors.append(str(error))
    raise ValueError(" ".join(dict.fromkeys(errors)))  # each stem's reason, once


def _check_values(config):
    """Checks the values `config` gives; None (the recipe's value) passes."""
    positive = {
        "batch_size": config.batch_size,
        "lr": config.lr,
        "image_size": config.image_size,
        "steps_per_execution": config.steps_per_execution,
        "log_every": config.log_every,
        "steps_per_epoch": config.steps_per_epoch,
        "epochs": config.epochs,
        "steps": config.steps,
    }
    for name in ("lr", "momentum", "weight_decay", "warmup_lr", "validation_split"):
        value = getattr(config, name)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, received {value!r}.")
    for name, value in positive.items():
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive, received {value!r}.")
    for name in ("momentum", "weight_decay", "warmup_lr", "cpu_devices", "validation_split"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, received {value!r}.")
    if config.momentum is not None and config.momentum >= 1:
        raise ValueError(f"momentum must be below 1, received {config.momentum!r}.")
    split = config.validation_split
    if split is not None and split >= 1 and split != int(split):
        raise ValueError(
            "validation_split must be a fraction below 1 or a whole count of examples, "
            f"received {split!r}."
        )
    if not 0 <= config.seed < 2**32:
        raise ValueError(f"seed must be from 0 to 2**32 - 1, received {config.seed!r}.")
    if config.warmup is not None and config.warmup < 0:
        raise ValueError(f"warmup must be >= 0 steps, received {config.warmup!r}.")
    if config.profile_steps is not None:
        start, end = config.profile_steps
        if not 1 <= start <= end:
            raise ValueError(f"--profile-steps needs 1 <= START <= END, received {start} {end}.")
    if config.freeze_backbone and not config.weights:
        raise ValueError("--freeze-backbone needs pretrained --weights to freeze.")
    if config.unfreeze_from and not config.freeze_backbone:
        raise ValueError("--unfreeze-from applies with --freeze-backbone only.")
    stages = STAGES[: 3 if config.stem == "cifar" else 4]
    if config.unfreeze_from and config.unfreeze_from not in stages:
        raise ValueError(
            f"--unfreeze-from {config.unfreeze_from!r}: a {config.stem} network's stages are "
            f"{', '.join(stages)}."
        )
