"""Training runs: `train` carries out a `RunPlan`, `finish` saves what it trained.

    trained = keras_resnet.training.run(config)  # devices, data, plan, then train
    keras_resnet.training.finish(trained)       # model.keras, SavedModel, curves, summary.json

`train(plan, strategy)` is build -> restore -> fit -> summarize, each a named
step; the plan (`keras_resnet.planning.prepare`) has decided everything
before. A run directory (`keras_resnet.rundir.RunDir`) killed at any moment
resumes from its last checkpoint when the same run is started again; a
finished one is reported, not retrained.
"""

import contextlib
import dataclasses
import gc
import sys
import time

import keras
import tensorflow as tf

from keras_resnet import _compat, callbacks, evaluation, export, files, models, planning
from keras_resnet import plotting, runtime, schedules
from keras_resnet import data as data_lib
from keras_resnet import weights as weights_lib
from keras_resnet.rundir import RECIPE_FIELDS, RunDir, RunDirError, RunDirTaken, config_changes


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class TrainedRun:
    """What `train` returns and `finish` completes.

    Attributes:
        summary: the run's results (the content of `summary.json`).
        run_dir: the run directory (`keras_resnet.rundir.RunDir`).
        model: the trained model; None when the run had finished before.
        data: the `keras_resnet.data.Data` trained on; None with `model`.
        chief: False on the non-chief workers of a cluster, which write nothing.
        lock: the run directory's `keras_resnet.runlock.RunLock`, held until `finish`; None
            when the run had finished before and off the chief.
    """

    summary: dict
    run_dir: RunDir
    model: keras.Model = None
    data: data_lib.Data = None
    chief: bool = True
    lock: object = None


def run(config, log=print, extra_callbacks=()):
    """Sets up the devices, loads the data, plans and trains a run; see `train`.

    Returns:
        A `TrainedRun`, for `finish`.
    """
    strategy = runtime.setup_devices(config)
    plan = planning.prepare(config, planning.load_config_data(config), strategy)
    return train(plan, strategy, log, extra_callbacks)


# ------------------------------------------------------------------------ train


def train(plan, strategy, log=print, extra_callbacks=()):
    """Carries out a `RunPlan`: build -> restore -> fit -> summarize.

    Takes the run directory's lock, writes `config.json`, checkpoints,
    `history.csv` and TensorBoard logs; `finish` writes the rest.

    Args:
        plan: the `RunPlan` from `prepare`.
        strategy: the strategy it was planned for.
        log: function taking one line of progress text.
        extra_callbacks: callbacks the chief runs after the checkpoint is
            written (a sweep's `callbacks.CopyCheckpoint`).

    Returns:
        A `TrainedRun`.

    Raises:
        TrainingDiverged: when the loss became NaN or infinite.
        keras_resnet.rundir.RunDirError: when another process writes the run
            directory, or a checkpoint cannot be written or read.
        keras_resnet.callbacks.Preempted: on SIGTERM or SIGINT, once the
            step under way is checkpointed.
    """
    run_dir = plan.run_dir
    lock = run_dir.lock() if plan.chief else None  # only the chief of a cluster writes
    try:
        state = _agreed_state(plan, strategy)
        if finished_before(plan, state):
            summary = run_dir.summary()
            epochs = summary["epochs"]
            log(f"Run in {run_dir.path} already finished ({epochs} epochs); nothing to do.")
            if lock:
                lock.release()
            return TrainedRun(summary, run_dir, chief=plan.chief)
        with strategy.scope():
            model = build_model(plan)
        if plan.chief:
            run_dir.write_record(plan.record)
        state = _restore(plan, model, state, strategy, log)
        started = time.perf_counter()
        state, rate = _fit(plan, model, state, strategy, extra_callbacks)
        summary = _summarize(plan, model, state)
        summary["examples_per_second"] = rate
        summary["train_seconds_this_session"] = round(time.perf_counter() - started, 1)
        log(
            f"{model.name} on {plan.config.dataset}: test top-1 error "
            f"{summary['test_top1_error']:.2%} after {summary['epochs']} epochs "
            f"({summary['steps']} steps)"
            + (f", {rate:,.0f} images/s" if rate else "")
            + f"; outputs in {run_dir.path}"
        )
        return TrainedRun(summary, run_dir, model, plan.data, plan.chief, lock)
    except BaseException:
        if lock:
            lock.release_and_tidy()
        raise


def _agreed_state(plan, strategy):
    """The newest checkpoint's state, read under the lock, and the same on every worker
    (whether the run has finished, too)."""
    state = plan.run_dir.state()
    step = state["step"] if state else 0
    finished = plan.run_dir.finished
    if not (
        runtime.workers_agree(strategy, step) and runtime.workers_agree(strategy, int(finished))
    ):
        raise ValueError(
            f"The workers of this cluster see different checkpoints in {plan.run_dir.path!r} "
            f"(this one: {'step ' + str(step) if state else 'none'}"
            f"{', finished' if finished else ''}). Resuming a multi-worker run needs its run "
            "directory on a filesystem every worker reads."
        )
    return state


def finished_before(plan, state):
    """Whether the plan's run has finished in its run directory, where it is kept as it is
    (also where its checkpoints were deleted).

    Args:
        plan: the `RunPlan`.
        state: the run directory's newest checkpoint state, or None.

    Raises:
        keras_resnet.rundir.RunDirTaken: when the run directory holds a finished
            run of another recipe (`RECIPE_FIELDS`), which this run would be reported as.
    """
    run_dir = plan.run_dir
    if not (run_dir.finished and (state is None or plan.run.is_done(state))):
        return False
    changed = config_changes(run_dir.record(), plan.record, RECIPE_FIELDS)
    if changed:
        raise RunDirTaken(
            f"{run_dir.path!r} holds a finished run of another recipe ({changed}); "
            "choose another --output-dir to keep it."
        )
    return True


def build_model(plan, schedule=None):
    """The planned model, compiled with its optimizer and metrics (call in the strategy's scope).

    With pretrained weights the model starts from them, keeps their input
    normalization, gets a new classifier when the classes differ, and is
    frozen as `--freeze-backbone` / `--unfreeze-from` say. `schedule`
    replaces the run's learning-rate schedule (the range test's rising rate).
    """
    config, data, start = plan.config, plan.data, plan.start
    model = planning.network(
        config,
        data.image_shape,
        data.num_classes,
        class_names=data.class_names,
        input_mean=data.mean if start is None else start.input_mean,
        input_std=data_lib.PIXEL_SCALE if start is None else start.input_std,
        weight_decay=config.weight_decay,
    )
    if isinstance(start, weights_lib.Pretrained):  # values only: what is frozen stays frozen
        weights_lib.assign(model, start, new_classifier=start.classes != data.num_classes)
    schedule = schedule or make_schedule(plan.run)
    optimizer = schedules.SGD(
        learning_rate=schedule,
        momentum=config.momentum,
        momentum_schedule=schedule if isinstance(schedule, schedules.OneCycle) else None,
    )
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    for k in (3, 5):  # top-k accuracy where it says something
        if data.num_classes > k:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k, name=f"top{k}_accuracy"))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=metrics,
        jit_compile={"auto": "auto", "true": True, "false": False}[config.jit_compile],
        steps_per_execution=config.steps_per_execution,
    )
    return model


def make_schedule(run):
    """The learning-rate schedule of a resolved run (a function of the step)."""
    config = run.config
    if config.schedule == "onecycle":
        return schedules.OneCycle(
            config.lr,
            run.total_steps,
            max_momentum=config.momentum,
            min_momentum=min(config.momentum, 0.85),
        )
    if config.schedule == "cosine":
        return schedules.Cosine(config.lr, run.total_steps, warmup_steps=run.warmup)
    return schedules.PiecewiseConstant(
        config.lr, run.lr_boundaries, warmup_steps=run.warmup, warmup_lr=config.warmup_lr
    )


def _restore(plan, model, state, strategy, log):
    """Loads the last checkpoint that can be read, if any; returns its state and says so."""
    if state:
        with strategy.scope():
            state = plan.run_dir.restore_checkpoint(model, log, set_aside=plan.chief)
        log(
            f"Resuming {plan.run_dir.path} from epoch {state['epoch']} (step {state['step']}), "
            "its last checkpoint."
        )
    elif plan.start is not None:
        trainable = models.trainable_parameters(model)
        log(f"Starting from {plan.start.source}; {trainable:,} trainable parameters.")
    run = plan.run
    log(
        f"{model.name}: {model.count_params():,} parameters, {plan.data.train.num_examples} "
        f"training examples, {run.total_steps} steps ({run.epochs} epochs of "
        f"{run.steps_per_epoch}), global batch {run.config.batch_size} on {plan.replicas} "
        "replica(s)."
    )
    return state


def _fit(plan, model, state, strategy, extra_callbacks):
    """Trains from checkpoint `state` (None: the start) to the run's last step.

    Returns:
        (the last checkpoint's state, training images per second or None).
    """
    run, run_dir, write = plan.run, plan.run_dir, plan.chief
    start_step = state["step"] if state else 0
    checkpointer = callbacks.Checkpointer(run_dir, state, write=write)
    guard = callbacks.NanGuard()
    logger = callbacks.StepLogger(
        run_dir.log_dir if write else None,
        run.config.log_every,
        run.config.batch_size,
        start_step,
        warmup_steps=start_step + min(20, run.steps_per_epoch // 2),
    )
    stop_on_signal = callbacks.StopOnSignal(
        run_dir, state, run.steps_per_epoch, run.total_steps, strategy, write=write
    )
    if not run.is_done(state):
        position = callbacks.StopAtStep(run.total_steps, start_step)
        fit_callbacks = [guard, checkpointer, position, logger, stop_on_signal]
        if write:
            fit_callbacks[2:2] = extra_callbacks
            callbacks.write_hparams(run_dir.log_dir, plan.record)
            callbacks.write_graph(run_dir.log_dir, model)
            # Keras's own callback: the epoch's loss and accuracies, and the profile.
            fit_callbacks.append(
                keras.callbacks.TensorBoard(
                    run_dir.log_dir, write_graph=False, profile_batch=run.config.profile_steps or 0
                )
            )
        if plan.replicas > 1:  # the replicas' batch-norm statistics, averaged before a checkpoint
            fit_callbacks.insert(0, callbacks.AverageMovingStatistics(strategy))
        try:
            with stop_on_signal.handling_signals():
                _fit_epochs(plan, model, strategy, fit_callbacks, state)
        except tf.errors.OpError as error:
            _name_unreadable_image(plan, position, checkpointer.state, error)
            raise
    if guard.diverged_epoch is not None:
        raise TrainingDiverged(
            f"The loss became NaN or infinite in epoch {guard.diverged_epoch}; training "
            f"stopped. The last good checkpoint (epoch {checkpointer.state['epoch']}) is kept "
            f"in {run_dir.checkpoints}. Try a lower --lr or --warmup."
        )
    return checkpointer.state, logger.examples_per_second


def _name_unreadable_image(plan, position, state, error):
    """Raises a DataError naming the image file behind `error`, a read error in `fit`.

    The file is in the batches being read when it came (`position`, a
    `callbacks.ReadPosition`): the next training execution's, else the
    test's (Keras reads the test's first batch before its callbacks hear of
    it). Returns when there is none: the caller raises `error`.
    """
    config, data = plan.run.config, plan.data
    batch, batches = config.batch_size, config.steps_per_execution
    where = []  # (the files, when they are read)
    if position.validation_batch is None and data.train.paths is not None:
        files = data_lib.training_files(data, batch, config.seed, position.step, batches)
        where.append((files, f"after step {position.step}"))
    if data.validation_or_test.paths is not None:
        first = (position.validation_batch or 0) * batch
        files = data.validation_or_test.paths[first : first + batches * batch]
        where.append((files, f"while testing after step {position.step}"))
    kept = "its start"
    if state["step"]:  # the checkpointer's state, step 0 before its first checkpoint
        kept = f"its last checkpoint (epoch {state['epoch']}, step {state['step']})"
    for files, when in where:
        data_lib.name_unreadable_image(
            error,
            files,
            f"Training stopped {when}. Replace the file with a readable image and run the same "
            f"command again: the run goes on from {kept}.",
        )


def _fit_epochs(plan, model, strategy, fit_callbacks, state):
    """`model.fit` from the checkpoint `state` (None: the start) to the run's end.

    A run stopped part way through an epoch (`callbacks.StopOnSignal`) first
    trains the rest of that epoch, then the epochs after it. Frees the
    training graphs after.
    """
    run, data = plan.run, plan.data
    multi_worker = runtime.is_multi_worker(strategy)
    epoch, step = (state["epoch"], state["step"]) if state else (0, 0)
    done_in_epoch = step - epoch * run.steps_per_epoch
    # (first epoch, last epoch, steps of each): the rest of a part-done epoch, then the others
    spans = [(epoch, run.epochs, run.steps_per_epoch)]
    if 0 < done_in_epoch < run.steps_per_epoch:
        spans = [(epoch, epoch + 1, run.steps_per_epoch - done_in_epoch)]
        spans += [(epoch + 1, run.epochs, run.steps_per_epoch)] if epoch + 1 < run.epochs else []

    def span_dataset(first):  # each `fit` reads its dataset from the start: the span's first step
        def pipeline(input_context=None):
            return data_lib.train_dataset(
                data,
                run.config.batch_size,
                run.config.seed,
                start_step=max(step, first * run.steps_per_epoch),
                input_context=input_context,
            )

        # A cluster's workers each read only their share of every batch.
        return strategy.distribute_datasets_from_function(pipeline) if multi_worker else pipeline()

    workaround = contextlib.nullcontext()
    if multi_worker:  # the workaround needs a batch's shapes only: zeros, not images read
        spec = data_lib.train_dataset(data, run.config.batch_size, run.config.seed).element_spec
        batch = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec)
        workaround = _compat.multi_worker_fit(model, batch, strategy)
    train_ds = span_dataset(epoch)
    val_ds = data_lib.eval_dataset(
        data, data.validation_or_test, run.config.batch_size, multi_worker
    )
    with workaround:
        for first, last, steps in spans:
            if first > epoch:  # one dataset at a time: in-memory images are a constant each
                train_ds = span_dataset(first)
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=last,
                initial_epoch=first,
                steps_per_epoch=steps,
                callbacks=fit_callbacks,
                shuffle=False,
                verbose=1 if sys.stdout.isatty() else 2,
            )
            if model.stop_training:  # the last step, or a NaN loss
                break
    # Training is over: free its graphs (gigabytes for ResNet-1202) before the
    # evaluation and export trace theirs. Keras builds them again if needed.
    model.train_function = model.test_function = None
    gc.collect()


def _summarize(plan, model, state):
    """The run's results: the test metrics and the last epoch's history row."""
    data, config = plan.data, plan.config
    # The numbers the evaluation command reports (cross-entropy without the decay term).
    test = evaluation.evaluate(
        evaluation.classifier_from_model(model, data.class_names), data, config.batch_size
    )
    last = state["history"][-1] if state["history"] else {}
    summary = {
        "model": model.name,
        "dataset": config.dataset,
        "epochs": state["epoch"],
        "steps": state["step"],
        "test_loss": test["loss"],
        "test_top1_error": test["top1_error"],
        "test_top5_error": test["top5_error"],
        "num_test_examples": test["num_examples"],
        "final_train_loss": last.get("loss"),
        "final_train_top1_error": last.get("top1_error"),
        "final_val_top1_error": last.get("val_top1_error"),
        "num_replicas": plan.replicas,
        "global_batch_size": config.batch_size,
        "trainable_parameters": models.trainable_parameters(model),
    }
    if plan.chief:
        callbacks.write_test_metrics(plan.run_dir.log_dir, summary)
    return summary


# ----------------------------------------------------------------------- finish


def finish(trained):
    """Writes a trained run's `model.keras`, SavedModel, curves and, last, `summary.json`.

    `summary.json` marks the run finished: a run killed before it is
    finished again when restarted. Does nothing for a run that had finished
    before, and on the non-chief workers of a cluster.

    Args:
        trained: the `TrainedRun` that `train` returned.

    Returns:
        The summary, with the SavedModel's path under `saved_model`.
    """
    if trained.model is None or not trained.chief:
        return trained.summary
    run_dir = trained.run_dir
    try:
        with files.atomic_path(run_dir.model_path) as path:
            trained.model.save(path)
        summary = {
            **trained.summary,
            "saved_model": export.export_saved_model(
                trained.model,
                run_dir.file("saved_model"),
                class_names=trained.data.class_names,
                preprocessing=trained.data.preprocessing,
            ),
        }
        state = run_dir.state()
        if state and state["history"]:
            plotting.plot_history(state["history"], run_dir.file("training_curves.png"))
        run_dir.write_summary(summary)
    except OSError as error:
        raise RunDirError(
            f"Could not write the finished run's outputs in {run_dir.path!r}: "
            f"{error.strerror or error} ({error.filename or run_dir.path}). Its last checkpoint "
            "is kept: make room and run the same command to write them."
        ) from None
    finally:
        if trained.lock:
            trained.lock.release()
    return summary
