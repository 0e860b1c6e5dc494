"""Learning-rate (and momentum) schedules as functions of the global step.

Every schedule is a serializable `keras.optimizers.schedules.LearningRateSchedule`
whose boundaries are in optimizer steps, so a resumed run continues on the
same curve: nothing edits the optimizer's rate by hand.

- `PiecewiseConstant`: the paper's recipe: `base_lr`, divided by 10 at each
  boundary (32k and 48k iterations for CIFAR), with an optional constant
  warm-up (0.01 for the first 400 iterations of ResNet-110, Section 4.2).
- `OneCycle`: Smith (2018), "A disciplined approach to neural network
  hyper-parameters": the rate rises linearly from `max_lr / div_factor` to
  `max_lr`, falls back over the same number of steps, then anneals to
  `max_lr / final_div_factor`; momentum moves the opposite way
  (`max_momentum` -> `min_momentum` -> `max_momentum`).
- `Cosine`: cosine decay to zero after an optional linear warm-up.
- `Exponential`: the learning-rate range test's rise from `min_lr` to `max_lr`.
"""

import math

import keras
from keras import ops

from keras_resnet import _compat


def _as_float(step):
    return ops.cast(step, "float32")


@keras.saving.register_keras_serializable(package="keras_resnet")
class PiecewiseConstant(keras.optimizers.schedules.LearningRateSchedule):
    """`base_lr * factor**k` after the k-th boundary, after a constant warm-up.

    Args:
        base_lr: float, rate after warm-up (0.1 in the paper).
        boundaries: list of ints, steps at which the rate is multiplied by `factor`.
        factor: float, multiplier at each boundary (0.1 in the paper).
        warmup_steps: int, steps at `warmup_lr` first (0: no warm-up).
        warmup_lr: float, rate during warm-up (0.01 in the paper).

    Example:

    >>> schedule = PiecewiseConstant(0.1, [32000, 48000], warmup_steps=400)
    >>> [round(float(schedule(s)), 5) for s in (0, 400, 32000, 48000)]
    [0.01, 0.1, 0.01, 0.001]
    """

    def __init__(self, base_lr, boundaries, factor=0.1, warmup_steps=0, warmup_lr=0.01):
        boundaries = [int(b) for b in boundaries]
        if boundaries != sorted(boundaries) or any(b < 0 for b in boundaries):
            raise ValueError(f"boundaries must be increasing steps >= 0, received {boundaries}.")
        self.base_lr = float(base_lr)
        self.boundaries = boundaries
        self.factor = float(factor)
        self.warmup_steps = int(warmup_steps)
        self.warmup_lr = float(warmup_lr)

    def __call__(self, step):
        step = _as_float(step)
        decays = (
            sum(ops.cast(step >= b, "float32") for b in self.boundaries) if self.boundaries else 0.0
        )
        rate = self.base_lr * ops.power(self.factor, decays)
        if self.warmup_steps:
            rate = ops.where(step < self.warmup_steps, self.warmup_lr, rate)
        return rate

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "boundaries": self.boundaries,
            "factor": self.factor,
            "warmup_steps": self.warmup_steps,
            "warmup_lr": self.warmup_lr,
        }


@keras.saving.register_keras_serializable(package="keras_resnet")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Smith's one-cycle policy for the learning rate, and its momentum.

    The rate rises linearly for `pct_rise * total_steps` steps, falls back to
    its start over as many steps, and anneals linearly to
    `max_lr / final_div_factor` over the rest. `momentum(step)` mirrors it.

    Args:
        max_lr: float, peak rate.
        total_steps: int, length of training.
        pct_rise: float, fraction of `total_steps` spent rising (0.45).
        div_factor: float, start rate is `max_lr / div_factor` (25).
        final_div_factor: float, last rate is `max_lr / final_div_factor` (1e4).
        min_momentum, max_momentum: floats, momentum range (0.85, 0.95).
    """

    def __init__(
        self,
        max_lr,
        total_steps,
        pct_rise=0.45,
        div_factor=25.0,
        final_div_factor=1e4,
        min_momentum=0.85,
        max_momentum=0.95,
    ):
        if total_steps < 3:
            raise ValueError(f"total_steps must be at least 3, received {total_steps}.")
        if not 0 < pct_rise <= 0.5:
            raise ValueError(f"pct_rise must be in (0, 0.5], received {pct_rise}.")
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_rise = float(pct_rise)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.min_momentum = float(min_momentum)
        self.max_momentum = float(max_momentum)

    def _phase(self, step, start, peak, end):
        """Piecewise-linear start -> peak -> start -> end over the cycle."""
        step = _as_float(step)
        rise = max(1.0, self.pct_rise * self.total_steps)
        fall_end = 2 * rise
        anneal = max(1.0, self.total_steps - fall_end)
        up = start + (peak - start) * step / rise
        down = peak + (start - peak) * (step - rise) / rise
        tail = start + (end - start) * ops.minimum((step - fall_end) / anneal, 1.0)
        return ops.where(step < rise, up, ops.where(step < fall_end, down, tail))

    def __call__(self, step):
        start = self.max_lr / self.div_factor
        return self._phase(step, start, self.max_lr, self.max_lr / self.final_div_factor)

    def momentum(self, step):
        return self._phase(step, self.max_momentum, self.min_momentum, self.max_momentum)

    def get_config(self):
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_rise": self.pct_rise,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "min_momentum": self.min_momentum,
            "max_momentum": self.max_momentum,
        }


@keras.saving.register_keras_serializable(package="keras_resnet")
class Cosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `base_lr`, then cosine decay to 0 at `total_steps`."""

    def __init__(self, base_lr, total_steps, warmup_steps=0):
        if total_steps <= warmup_steps:
            raise ValueError(
                f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})."
            )
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = _as_float(step)
        progress = ops.clip(
            (step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 0.0, 1.0
        )
        rate = 0.5 * self.base_lr * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps:
            rate = ops.where(
                step < self.warmup_steps, self.base_lr * (step + 1) / self.warmup_steps, rate
            )
        return rate

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


@keras.saving.register_keras_serializable(package="keras_resnet")
class Exponential(keras.optimizers.schedules.LearningRateSchedule):
    """`min_lr * (max_lr / min_lr) ** (step / (steps - 1))`: the range test's rate.

    Example:

    >>> schedule = Exponential(1e-4, 1.0, 5)
    >>> [round(float(schedule(s)), 4) for s in range(5)]
    [0.0001, 0.001, 0.01, 0.1, 1.0]
    """

    def __init__(self, min_lr, max_lr, steps):
        if not 0 < min_lr < max_lr or steps < 2:
            raise ValueError(
                f"Exponential needs 0 < min_lr < max_lr and steps >= 2; received {min_lr}, "
                f"{max_lr}, {steps}."
            )
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.steps = int(steps)

    def __call__(self, step):
        progress = _as_float(step) / (self.steps - 1)
        return self.min_lr * ops.power(self.max_lr / self.min_lr, progress)

    def get_config(self):
        return {"min_lr": self.min_lr, "max_lr": self.max_lr, "steps": self.steps}


@keras.saving.register_keras_serializable(package="keras_resnet")
class SGD(keras.optimizers.SGD):
    """Keras SGD whose momentum may follow a schedule's `momentum(step)`.

    Keras keeps SGD's momentum a constant; one-cycle moves it every step.
    With `momentum_schedule=None` this is exactly `keras.optimizers.SGD`.

    Args:
        momentum_schedule: optional schedule with a `momentum(step)` method
            (a `OneCycle`), evaluated at the optimizer's step.
        **kwargs: arguments of `keras.optimizers.SGD`.
    """

    def __init__(self, momentum_schedule=None, **kwargs):
        if isinstance(momentum_schedule, dict):
            momentum_schedule = keras.saving.deserialize_keras_object(momentum_schedule)
        if momentum_schedule is not None:
            kwargs["momentum"] = momentum_schedule.max_momentum  # non-zero: keeps velocity slots
        super().__init__(**kwargs)
        self.momentum_schedule = momentum_schedule

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum_schedule is None:
            return super().update_step(gradient, variable, learning_rate)
        momentum = ops.cast(self.momentum_schedule.momentum(self.iterations), variable.dtype)
        velocity = self.momentums[_compat.optimizer_variable_index(self, variable)]
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        self.assign(velocity, velocity * momentum - gradient * learning_rate)
        self.assign_add(variable, velocity)

    def get_config(self):
        config = super().get_config()
        if self.momentum_schedule is not None:
            config["momentum_schedule"] = keras.saving.serialize_keras_object(
                self.momentum_schedule
            )
        return config
