"""The training run's callbacks; each does one thing and none calls another.

- `Checkpointer`: after each epoch, the history row and a checkpoint of model
  and optimizer (`keras_resnet.rundir`); an epoch whose loss is not finite is
  never saved.
- `CopyCheckpoint`: keeps a copy of each checkpoint outside the run directory.
- `StopAtStep`: ends training after the run's last step, mid-epoch if need be;
  as a `ReadPosition`, it knows the batch being read when a file cannot be.
- `StopOnSignal`: on SIGTERM or SIGINT, checkpoints the step and stops the run.
- `NanGuard`: stops training when the loss becomes NaN or infinite, and says
  in which epoch.
- `StepLogger`: TensorBoard step and epoch summaries, and the throughput.
- `AverageMovingStatistics`: one set of batch-norm statistics across replicas.
"""

import contextlib
import math
import os
import signal
import threading
import time

import keras
import tensorflow as tf

from keras_resnet import runtime


def _error(accuracy):
    return None if accuracy is None else 1.0 - float(accuracy)


def _learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


# A step checkpoint's record of its unfinished epoch: the training metrics' running totals
# and the seconds it had trained, so that the resumed epoch's history row covers all of it.
PARTIAL_EPOCH = "partial_epoch"


def _partial_epoch(state, epoch):
    """What a step checkpoint `state` recorded of `epoch` (0-based), if it resumes in it."""
    partial = (state or {}).get(PARTIAL_EPOCH)
    if partial and state["epoch"] == epoch and partial.get("step") == state["step"]:
        return partial
    return None


def _train_metric_variables(model):
    """The running totals behind the training logs (the loss's and each metric's)."""
    return {v.path: v for metric in model.metrics for v in metric.variables}


class Checkpointer(keras.callbacks.Callback):
    """Writes the history row and a checkpoint after each finished epoch.

    Args:
        run_dir: the `keras_resnet.rundir.RunDir`.
        state: the state of the run so far (`RunDir.state()`), or None
            for a new run.
        write: False on the non-chief workers of a cluster: they keep the
            state without writing it.
    """

    def __init__(self, run_dir, state=None, write=True):
        super().__init__()
        self.run_dir = run_dir
        self.state = state or {"epoch": 0, "step": 0, "history": []}
        self.write = write
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._seconds_before = 0.0
        partial = _partial_epoch(self.state, epoch)
        if partial is None:
            return
        self._seconds_before = partial.get("seconds", 0.0)
        # Keras has just reset the metrics: put back the totals of the steps done before the
        # stop, when they are the same metrics (a sync-on-read variable takes the sum whole).
        variables = _train_metric_variables(self.model)
        recorded = partial.get("metrics", {})
        if set(recorded) == set(variables):
            for path, value in recorded.items():
                variables[path].assign(value)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return  # the last good checkpoint stays the one to resume from
        row = {
            "epoch": epoch + 1,
            "step": int(self.model.optimizer.iterations.numpy()),
            "learning_rate": _learning_rate(self.model),
            "loss": logs.get("loss"),
            "top1_error": _error(logs.get("accuracy")),
            "top3_error": _error(logs.get("top3_accuracy")),
            "top5_error": _error(logs.get("top5_accuracy")),
            "val_loss": logs.get("val_loss"),
            "val_top1_error": _error(logs.get("val_accuracy")),
            "val_top3_error": _error(logs.get("val_top3_accuracy")),
            "val_top5_error": _error(logs.get("val_top5_accuracy")),
            # wall time of the epoch, validation included (before a stop, too)
            "seconds": round(self._seconds_before + time.perf_counter() - self._epoch_start, 3),
        }
        row = {
            k: (None if v is None else v if k in ("epoch", "step") else float(v))
            for k, v in row.items()
        }
        self.state = {
            "epoch": row["epoch"],
            "step": row["step"],
            "weights": f"epoch-{row['epoch']:04d}.weights.h5",
            "history": self.state["history"] + [row],
        }
        if self.write:
            self.run_dir.write_checkpoint(self.model, self.state)


class CopyCheckpoint(keras.callbacks.Callback):
    """Copies the run's last checkpoint to a folder outside the run directory.

    After each epoch it reads what `Checkpointer` wrote (put it after that
    callback) and keeps a copy with `RunDir.copy_checkpoint`, so that a long
    run can go on from the copy (say a committed results folder) when its run
    directory is lost.

    Args:
        run_dir: the `keras_resnet.rundir.RunDir`.
        folder: where the copy goes (`folder/checkpoint/`, `folder/history.csv`).
    """

    def __init__(self, run_dir, folder):
        super().__init__()
        self.run_dir = run_dir
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        self.run_dir.copy_checkpoint(self.folder)


class ReadPosition(keras.callbacks.Callback):
    """Which batch `fit` reads: where to look when a file it reads cannot be.

    Attributes:
        step: training steps done, counted from `start_step` (where a resumed
            run begins) and the batch index Keras passes (the last step of an
            execution when `steps_per_execution` > 1), not read from the
            optimizer, so that no step waits for the device.
        validation_batch: validation batches done while validating, else None
            (also while Keras reads the first validation batch to build its
            test function, before `on_test_begin`).
    """

    def __init__(self, start_step=0):
        super().__init__()
        self.step = self._epoch_start = start_step
        self.validation_batch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch_start + batch + 1

    def on_test_begin(self, logs=None):
        self.validation_batch = 0

    def on_test_batch_end(self, batch, logs=None):
        self.validation_batch = batch + 1

    def on_test_end(self, logs=None):
        self.validation_batch = None


class StopAtStep(ReadPosition):
    """Stops training once `total_steps` steps are done, mid-epoch if need be."""

    def __init__(self, total_steps, start_step=0):
        super().__init__(start_step)
        self.total_steps = total_steps

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.step >= self.total_steps:
            self.model.stop_training = True


class Preempted(RuntimeError):
    """Training stopped on SIGTERM or SIGINT, after writing a checkpoint of its last step."""


class StopOnSignal(keras.callbacks.Callback):
    """On SIGTERM or SIGINT, finishes the step, checkpoints it and stops the run.

    Cloud machines send SIGTERM shortly before they take a machine away, and a
    job scheduler before it stops a job; an epoch can be hours. So the step
    under way finishes, the model and optimizer at that step are written as a
    checkpoint (`step-NNNNNNN.weights.h5`, with the history of the finished
    epochs), and `Preempted` is raised: no validation, no epoch end. A signal
    in an epoch's last step (or the run's) lets the epoch end as usual, its
    checkpoint written by `Checkpointer`, and stops after it. The same
    command resumes from that step (`training` runs the rest of the epoch
    first). A second signal stops at once. Under MultiWorkerMirroredStrategy
    the workers agree after every step on whether any of them was signalled
    (one collective), so all stop at the same step and the chief writes.

    Install the handlers around `fit` with `with callback.handling_signals():`;
    put the callback after `Checkpointer`.

    Args:
        run_dir: the `keras_resnet.rundir.RunDir`.
        state: the state of the run's last checkpoint (None for a new run):
            the finished epochs whose history a step checkpoint carries.
        steps_per_epoch: steps of an epoch.
        total_steps: the run's last step.
        strategy: the distribution strategy (the workers' agreement, and the
            replicas' batch-norm statistics averaged before the checkpoint).
        write: False on the non-chief workers of a cluster.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, run_dir, state, steps_per_epoch, total_steps, strategy=None, write=True):
        super().__init__()
        self.run_dir = run_dir
        self.finished = state or {"epoch": 0, "history": []}
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.strategy = strategy
        self.write = write
        self.received = None
        self._stop_at_epoch_end = False
        self._previous = {}
        self._epoch_start = self._seconds_before = None

    @contextlib.contextmanager
    def handling_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # Python delivers signals to the main thread only
            return
        self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        try:
            yield
        finally:
            for number, handler in self._previous.items():
                # None: a handler installed from C, which Python cannot put back
                signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def _handle(self, number, frame):
        if self.received:  # asked twice: stop now, as without this callback
            previous = self._previous.get(number)
            signal.signal(number, signal.SIG_DFL if previous is None else previous)
            raise KeyboardInterrupt
        self.received = signal.Signals(number).name

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        partial = _partial_epoch(self.finished, epoch)
        self._seconds_before = partial.get("seconds", 0.0) if partial else 0.0

    def on_train_batch_end(self, batch, logs=None):
        signalled = self.received is not None
        if self.strategy is not None:
            signalled = runtime.any_worker(self.strategy, signalled)
        if not signalled or self._stop_at_epoch_end:
            return
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.steps_per_epoch == 0 or step >= self.total_steps:
            self._stop_at_epoch_end = True  # the epoch is done: let it end, then stop
            self.model.stop_training = True
            return
        if self.strategy is not None and self.strategy.num_replicas_in_sync > 1:
            moving_statistics_averager(self.model, self.strategy)()  # as at an epoch's end
        # Every worker reads the totals: reading a sync-on-read variable is a collective.
        metrics = {p: float(v.numpy()) for p, v in _train_metric_variables(self.model).items()}
        state = {
            "epoch": self.finished["epoch"],
            "step": step,
            "weights": f"step-{step:07d}.weights.h5",
            "history": self.finished["history"],
            PARTIAL_EPOCH: {
                "step": step,
                "seconds": round(self._seconds_before + time.perf_counter() - self._epoch_start, 3),
                "metrics": metrics,
            },
        }
        if self.write:
            self.run_dir.write_checkpoint(self.model, state)
        raise Preempted(self._message(step, state["epoch"] + 1, state["weights"]))

    def on_epoch_end(self, epoch, logs=None):
        if self._stop_at_epoch_end:
            weights = f"epoch-{epoch + 1:04d}.weights.h5"
            step = int(self.model.optimizer.iterations.numpy())
            raise Preempted(self._message(step, epoch + 1, weights))
        # What Checkpointer has just written (the chief's; the others write nothing).
        written = self.run_dir.state() if self.write else None
        self.finished = written or {"epoch": epoch + 1, "history": []}

    def _message(self, step, epoch, weights):
        return (
            f"Stopped by {self.received or 'a signal to another worker'} after step {step} "
            f"(epoch {epoch}); its checkpoint is "
            f"{os.path.join(self.run_dir.checkpoints, weights)!r}. Run the same command to "
            f"resume from step {step}."
        )


class NanGuard(keras.callbacks.Callback):
    """Stops training when the loss is NaN or infinite, after any batch or epoch.

    Keras hands batch callbacks their logs as Python numbers, so the check
    costs no device synchronisation of its own.

    Attributes:
        diverged_epoch: the 1-based epoch in which the loss diverged, or None.
    """

    def __init__(self):
        super().__init__()
        self.diverged_epoch = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, logs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.diverged_epoch is None:
            self.diverged_epoch = self._epoch + 1
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs)


class StepLogger(keras.callbacks.Callback):
    """TensorBoard step summaries and a throughput measure that skips warm-up.

    Every `log_every` steps it writes loss, top-1 and top-5 error, learning
    rate and images/second to `logs/train`, and puts `images_per_second` into
    the progress bar's logs; each epoch's top-1 and top-5 error go to
    `logs/train` and `logs/validation` (Keras's TensorBoard callback writes the
    epoch's loss and accuracies there, and the profile; `write_graph` the graph).
    `examples_per_second` counts only steps after the first `warmup_steps` of
    the run and never the first step of an epoch (the iterator restart) or
    validation.

    Args:
        log_dir: the TensorBoard folder, or None to measure without writing.
        log_every: steps between step summaries.
        global_batch: images per step, all replicas together.
        start_step: the step the run starts from (a resumed run's).
        warmup_steps: the step from which throughput is measured.
    """

    def __init__(self, log_dir, log_every, global_batch, start_step, warmup_steps):
        super().__init__()
        self.log_every = log_every
        self.global_batch = global_batch
        self.step = self._epoch_start = start_step
        self.warmup_steps = warmup_steps
        self.summary = self.validation = None
        if log_dir is not None:
            self.summary = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
            self.validation = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
        self.measured_steps = 0
        self.measured_seconds = 0.0
        self._last = None
        self._seen = start_step

    @property
    def examples_per_second(self):
        if not self.measured_seconds:
            return None
        return self.measured_steps * self.global_batch / self.measured_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._last, self._epoch_start = None, self.step

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        # Counted from the batch index, not read from the optimizer: no device sync.
        step = self.step = self._epoch_start + batch + 1
        if self._last is not None:
            last_time, last_step = self._last
            if last_step >= self.warmup_steps:
                self.measured_steps += step - last_step
                self.measured_seconds += now - last_time
            if logs is not None and now > last_time:
                logs["images_per_second"] = (
                    (step - last_step) * self.global_batch / (now - last_time)
                )
        self._last = (now, step)
        if step - self._seen < self.log_every or not logs:
            return
        self._seen = step
        if self.summary is None or not math.isfinite(float(logs["loss"])):
            return
        with self.summary.as_default(step=step):
            tf.summary.scalar("loss", float(logs["loss"]))
            for metric, tag in (("accuracy", "top1_error"), ("top5_accuracy", "top5_error")):
                if metric in logs:
                    tf.summary.scalar(tag, 1.0 - float(logs[metric]))
            tf.summary.scalar("learning_rate", _learning_rate(self.model))
            if "images_per_second" in logs:
                tf.summary.scalar("images_per_second", float(logs["images_per_second"]))

    def on_epoch_end(self, epoch, logs=None):
        if self.summary is None or not logs:
            return
        step = int(self.model.optimizer.iterations.numpy())
        for writer, prefix in ((self.summary, ""), (self.validation, "val_")):
            with writer.as_default(step=step):
                for metric, tag in (("accuracy", "top1_error"), ("top5_accuracy", "top5_error")):
                    if f"{prefix}{metric}" in logs:
                        value = 1.0 - float(logs[f"{prefix}{metric}"])
                        tf.summary.scalar(f"epoch_{tag}", value)
            writer.flush()


class AverageMovingStatistics(keras.callbacks.Callback):
    """Gives every replica the mean of batch norm's moving statistics before each
    evaluation and checkpoint.

    Keras 3 creates the moving mean and variance with aggregation "none", so
    under a distribution strategy each replica updates its own copy from its own
    share of the batch: the copies drift apart, and the workers of a cluster
    would evaluate and save different models. A moving average is linear, so the
    mean of the copies is the moving average of all replicas' batch statistics,
    which is what tf.keras 2's on-read variables kept; averaging at these points
    needs no communication in between steps. Put it before `Checkpointer`.

    Args:
        strategy: the `tf.distribute.Strategy` the model was built under.
    """

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def set_model(self, model):
        super().set_model(model)
        self._average = moving_statistics_averager(model, self.strategy)

    def on_test_begin(self, logs=None):
        self._average()

    def on_epoch_end(self, epoch, logs=None):
        self._average()


def moving_statistics_averager(model, strategy):
    """A function that gives every replica the mean of the replicas' batch-norm statistics.

    A collective under MultiWorkerMirroredStrategy: every worker must call it
    at the same point. See `AverageMovingStatistics`.
    """
    variables = [w.value for w in model.non_trainable_weights if "float" in w.dtype]
    if not variables:
        return lambda: None

    def average_on_replica():
        context = tf.distribute.get_replica_context()
        means = context.all_reduce("MEAN", [tf.identity(v) for v in variables])
        for variable, mean in zip(variables, means):
            variable.assign(mean)  # the replica's own copy (aggregation "none")

    return tf.function(lambda: strategy.run(average_on_replica))


def write_hparams(log_dir, record):
    """Writes a run's resolved configuration for TensorBoard's HParams tab.

    `record` is the run's `config.json` content; its scalar fields become
    hyperparameters (None as "none", lists as text). The metrics the tab
    shows are the scalars the run writes: `write_test_metrics`, and the
    epoch metrics under `train` and `validation`.
    """
    from tensorboard.plugins.hparams import api as hparams_api

    hparams = {}
    for key, value in record.items():
        if isinstance(value, dict):
            continue
        if value is None or isinstance(value, (list, tuple)):
            value = "none" if value is None else " ".join(map(str, value))
        hparams[key] = value
    with tf.summary.create_file_writer(log_dir).as_default():
        hparams_api.hparams(hparams, trial_id=record.get("output_dir"))


def write_test_metrics(log_dir, summary):
    """Writes a finished run's test loss and errors as scalars at its last step."""
    with tf.summary.create_file_writer(log_dir).as_default(step=summary["steps"]):
        for key in ("test_loss", "test_top1_error", "test_top5_error"):
            if summary.get(key) is not None:
                tf.summary.scalar(key, summary[key])


def write_graph(log_dir, model):
    """Writes the model's forward graph to `log_dir/train` for TensorBoard's Graphs tab.

    Keras's TensorBoard callback writes no graph for Keras 3 train functions
    (nor its conceptual graph for a `keras.Model` subclass such as `ResNetModel`).
    """
    forward = tf.function(lambda images: model(images, training=False), autograph=False)
    graph = forward.get_concrete_function(
        tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    ).graph
    with tf.summary.create_file_writer(os.path.join(log_dir, "train")).as_default():
        tf.summary.graph(graph)
