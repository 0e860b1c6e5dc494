"""Training runs: `train()` prepares, builds and fits; `finish()` saves the outputs.

    config = keras_resnet.config.TrainConfig(dataset="cifar10", data_dir=".data", depth=20)
    trained = keras_resnet.training.train(config)    # resumes the run if it was killed
    keras_resnet.training.finish(trained)            # model.keras, SavedModel, curves

A run directory (`config.output_dir`, see `keras_resnet.rundir`) killed at any
moment resumes from its last finished epoch when the same run is started again;
a finished one is reported, not retrained. The recipe's values are filled in by
`keras_resnet.config.resolve`; devices and the strategy come from
`keras_resnet.runtime`.
"""

import contextlib
import dataclasses
import gc
import os
import re
import sys
import time

import keras
import numpy as np

from keras_resnet import _compat, callbacks, evaluation, export, models, plotting, rundir
from keras_resnet import runtime, schedules, specs
from keras_resnet import weights as weights_lib
from keras_resnet import config as config_lib
from keras_resnet import data as data_lib


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class TrainedRun:
    """What `train` returns and `finish` completes.

    Attributes:
        summary: the run's results (the content of `summary.json`).
        output_dir: the run directory.
        model: the trained model; None when the run had finished before.
        data: the `keras_resnet.data.Data` trained on; None with `model`.
        chief: False on the non-chief workers of a cluster, which write nothing.
        lock: the run directory's `rundir.RunLock`, held until `finish`; None
            when the run had finished before and off the chief.
    """

    summary: dict
    output_dir: str
    model: keras.Model = None
    data: data_lib.Data = None
    chief: bool = True
    lock: rundir.RunLock = None


def load_config_data(config):
    """The `Data` a `TrainConfig` names: its dataset, split, subset and image size."""
    return data_lib.load_data(
        config.dataset,
        config.data_dir,
        config.tfds_data_dir,
        config.image_size,
        config.validation_split,
        config.train_subset,
        config.seed,
    )


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


def follow_weights(config):
    """`config` with the architecture flags left open following its weights, and the weights.

    Returns:
        `(config, weights)`: a copy of `config`, and its `weights` as
        `keras_resnet.weights.prepare` returns them (a file read once), to
        pass to `read_pretrained` after `config_lib.resolve`.
    """
    weights = weights_lib.prepare(config.weights)
    if not weights:
        return config, weights
    implied = weights_lib.implied_architecture(weights)
    if config.plain:
        implied.pop("shortcut", None)
    config = dataclasses.replace(
        config, **{k: v for k, v in implied.items() if getattr(config, k) is None}
    )
    return config, weights


def recorded_pretrained(config, data):
    """The pretrained weights' facts a resumed run recorded, or None when it is no such run.

    The checkpoint of a fine-tuning run holds every weight, so resuming it
    must not need its `--weights` file (it may be gone, or need a download):
    only the architecture and the input normalization those weights implied,
    which the run's `config.json` recorded.

    Returns:
        `(config, pretrained)`: a copy of `config` with the architecture flags
        left open set as recorded, and a `keras_resnet.weights.Pretrained`
        holding the recorded normalization and no layers. None when `config`
        has no weights, or its run directory holds no checkpoint of a run
        from the same weights.
    """
    output_dir = config.output_dir or (config.depth and default_output_dir(config))
    if not config.weights or not output_dir or not rundir.load_state(output_dir):
        return None
    previous = rundir.read_json(os.path.join(output_dir, "config.json"))
    recorded = previous.get("pretrained")
    if previous.get("weights") != config.weights or not recorded:
        return None
    config = dataclasses.replace(
        config,
        **{k: previous[k] for k in weights_lib.ARCHITECTURE_FLAGS if getattr(config, k) is None},
    )
    pretrained = weights_lib.Pretrained(
        source=recorded["source"],
        spec=network_spec(config),
        classes=data.num_classes,
        input_mean=np.asarray(recorded["input_mean"], "float32"),
        input_std=np.asarray(recorded["input_std"], "float32"),
        bn_epsilon=None,
        layers=None,
    )
    return config, pretrained


def network_spec(config):
    """The `keras_resnet.specs.Spec` of a (resolved) `TrainConfig`'s network."""
    return specs.make_spec(
        config.depth,
        config.stem,
        shortcut=config.shortcut,
        plain=config.plain,
        bottleneck_stride=config.bottleneck_stride,
    )


def default_output_dir(config):
    """`runs/<dataset>-<model>`, the run directory when `--output-dir` is not given."""
    return os.path.join("runs", f"{config.dataset}-{specs.model_name(config.depth, config.plain)}")


def read_pretrained(config, weights):
    """The resolved config's pretrained weights (a `keras_resnet.weights.Pretrained`), or None.

    Args:
        config: the resolved `TrainConfig`.
        weights: its weights as `follow_weights` returned them.

    Raises:
        ValueError: when they do not fit the config's network (the message names both).
    """
    if not weights:
        return None
    return weights_lib.read(weights, network_spec(config))


def build_and_compile(run, data, pretrained=None, schedule=None):
    """The model for a resolved run, compiled with its optimizer and metrics.

    With `pretrained` weights the model starts from them, keeps their input
    normalization, gets a new classifier when the classes differ, and is
    frozen as `--freeze-backbone` / `--unfreeze-from` say. `schedule`
    replaces the run's learning-rate schedule (the range test's rising rate).
    """
    config = run.config
    model = models.ResNet(
        config.depth,
        stem=config.stem,
        shortcut=config.shortcut,
        plain=config.plain,
        bottleneck_stride=config.bottleneck_stride,
        input_shape=data.image_shape,
        classes=data.num_classes,
        input_mean=data.mean if pretrained is None else pretrained.input_mean,
        input_std=data_lib.PIXEL_SCALE if pretrained is None else pretrained.input_std,
        weight_decay=config.weight_decay,
    )
    if pretrained is not None and pretrained.layers is not None:
        new_classifier = pretrained.classes != data.num_classes
        weights_lib.assign(model, pretrained, new_classifier=new_classifier)
    if config.freeze_backbone:
        first = int(config.unfreeze_from[len("conv") :]) if config.unfreeze_from else None
        for layer in model.layers:
            stage = re.match(r"conv(\d+)_", layer.name)
            layer.trainable = layer.name == "predictions" or bool(
                first and stage and int(stage.group(1)) >= first
            )
    if schedule is None:
        schedule = make_schedule(run)
    optimizer = schedules.SGD(
        learning_rate=schedule,
        momentum=config.momentum,
        momentum_schedule=schedule if isinstance(schedule, schedules.OneCycle) else None,
    )
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    for k in (3, 5):  # top-k accuracy where it says something
        if data.num_classes > k:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k, name=f"top{k}_accuracy"))
    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=metrics,
        jit_compile=jit,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def train(config, log=print, data=None, strategy=None, extra_callbacks=()):
    """Runs (or resumes) a training run to its last step and evaluates it.

    Writes the run directory's `config.json`, checkpoints, `history.csv` and
    TensorBoard logs; `finish` writes the rest.

    Args:
        config: a `keras_resnet.config.TrainConfig`.
        log: function taking one line of progress text.
        data: optional `keras_resnet.data.Data` already loaded for `config`
            (a hyperparameter search reuses one across trials).
        strategy: optional strategy already set up by `runtime.setup_devices`.
        extra_callbacks: callbacks the chief runs after the checkpoint is
            written (a sweep's `callbacks.CopyCheckpoint`).

    Returns:
        A `TrainedRun`.

    Raises:
        ValueError: for an invalid config or data (before anything is written).
        TrainingDiverged: when the loss became NaN or infinite.
        keras_resnet.rundir.RunDirError: when another process writes the run
            directory, or a checkpoint cannot be written or read.
        keras_resnet.callbacks.Preempted: on SIGTERM or SIGINT, once the
            step under way is checkpointed.
    """
    # Prepare: every check of the inputs, before anything is written.
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Training runs on the TensorFlow backend (tf.distribute, tf.data); "
            f"KERAS_BACKEND is {keras.backend.backend()!r}."
        )
    strategy = strategy or runtime.setup_devices(config)
    multi_worker = runtime.is_multi_worker(strategy)
    if multi_worker:
        _compat.check_keras_for_multi_worker()
    if config.output_dir:
        rundir.check_writable(config.output_dir)
    data = data or load_config_data(config)
    resumed = recorded_pretrained(config, data)
    config, weights = resumed or follow_weights(config)  # resumed: the recorded Pretrained
    run = config_lib.resolve(config, data)
    config = run.config
    pretrained = weights if resumed else read_pretrained(config, weights)
    output_dir = config.output_dir = config.output_dir or default_output_dir(config)
    rundir.check_writable(output_dir)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"batch_size={config.batch_size} does not split evenly over {replicas} replicas."
        )
    record = _run_record(run, data, replicas, pretrained)
    rundir.check_same_run(output_dir, record)
    network_spec(config)  # a bad architecture is refused before the run directory is made
    chief = runtime.is_chief()  # only the chief of a cluster writes the run directory
    lock = rundir.RunLock(output_dir).acquire() if chief else None
    try:
        return _train_locked(
            config, log, data, strategy, extra_callbacks, run, pretrained, record, chief, lock
        )
    except BaseException:
        if lock:
            lock.release_and_tidy()
        raise


def _train_locked(
    config, log, data, strategy, extra_callbacks, run, pretrained, record, chief, lock
):
    """`train` from the moment its process holds the run directory's lock."""
    output_dir = config.output_dir
    replicas = strategy.num_replicas_in_sync
    multi_worker = runtime.is_multi_worker(strategy)
    # Every worker resumes from it, or they would run different epochs and weights.
    state = rundir.load_state(output_dir)
    if not runtime.workers_agree(strategy, state["step"] if state else 0):
        raise ValueError(
            f"The workers of this cluster see different checkpoints in {output_dir!r} (this "
            f"one: {'step ' + str(state['step']) if state else 'none'}). Resuming a "
            "multi-worker run needs its run directory on a filesystem every worker reads."
        )
    finished = bool(state) and (state["epoch"] >= run.epochs or state["step"] >= run.total_steps)
    summary_path = os.path.join(output_dir, "summary.json")
    if finished and os.path.exists(summary_path):
        log(f"Run in {output_dir} already finished ({state['epoch']} epochs); nothing to do.")
        if lock:
            lock.release()
        return TrainedRun(rundir.read_json(summary_path), output_dir, chief=chief)

    # Build the model, or restore it from the last checkpoint.
    with strategy.scope():
        model = build_and_compile(run, data, pretrained)
    if chief:
        rundir.write_json(os.path.join(output_dir, "config.json"), record)
    if state:
        with strategy.scope():
            state = rundir.restore_checkpoint(model, output_dir, log, set_aside=chief)
        finished = state["epoch"] >= run.epochs or state["step"] >= run.total_steps
        log(
            f"Resuming {output_dir} from epoch {state['epoch']} (step {state['step']}), its "
            "last checkpoint."
        )
    if pretrained is not None and not state:
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        log(f"Starting from {pretrained.source}; {trainable:,} trainable parameters.")
    log(
        f"{model.name}: {model.count_params():,} parameters, {data.train.num_examples} "
        f"training examples, {run.total_steps} steps ({run.epochs} epochs of "
        f"{run.steps_per_epoch}), global batch {config.batch_size} on {replicas} replica(s)."
    )

    # Fit, then evaluate on the test split.
    checkpointer = callbacks.Checkpointer(output_dir, state, write=chief)
    guard = callbacks.NanGuard()
    start_step = state["step"] if state else 0
    logger = callbacks.StepLogger(
        os.path.join(output_dir, "logs") if chief else None,
        config.log_every,
        config.batch_size,
        start_step,
        warmup_steps=start_step + min(20, run.steps_per_epoch // 2),
    )
    stop_on_signal = callbacks.StopOnSignal(
        output_dir, state, run.steps_per_epoch, run.total_steps, strategy, write=chief
    )
    started = time.perf_counter()
    log_dir = os.path.join(output_dir, "logs")
    if not finished:
        fit_callbacks = [
            guard,
            checkpointer,
            callbacks.StopAtStep(run.total_steps, start_step),
            logger,
            stop_on_signal,
        ]
        if chief:
            fit_callbacks[2:2] = extra_callbacks
            callbacks.write_hparams(log_dir, record)
            callbacks.write_graph(log_dir, model)
            # Keras's own callback: the epoch's loss and accuracies, and the profile.
            fit_callbacks.append(
                keras.callbacks.TensorBoard(
                    log_dir, write_graph=False, profile_batch=config.profile_steps or 0
                )
            )
        if replicas > 1:  # the replicas' batch-norm statistics, averaged before a checkpoint
            fit_callbacks.insert(0, callbacks.AverageMovingStatistics(strategy))
        with stop_on_signal.handling_signals():
            _fit(model, run, data, strategy, multi_worker, fit_callbacks, state)
    if guard.diverged_epoch is not None:
        raise TrainingDiverged(
            f"The loss became NaN or infinite in epoch {guard.diverged_epoch}; training "
            f"stopped. The last good checkpoint (epoch {checkpointer.state['epoch']}) is kept "
            f"in {os.path.join(output_dir, 'checkpoints')}. Try a lower --lr or --warmup."
        )

    summary = _summarize(model, run, data, checkpointer.state, replicas)
    if chief:
        callbacks.write_test_metrics(log_dir, summary)
    summary["examples_per_second"] = logger.examples_per_second
    summary["train_seconds_this_session"] = round(time.perf_counter() - started, 1)
    rate = summary["examples_per_second"]
    log(
        f"{model.name} on {config.dataset}: test top-1 error {summary['test_top1_error']:.2%} "
        f"after {summary['epochs']} epochs ({summary['steps']} steps)"
        + (f", {rate:,.0f} images/s" if rate else "")
        + f"; outputs in {output_dir}"
    )
    return TrainedRun(summary, output_dir, model, data, chief, lock)


def _run_record(run, data, replicas, pretrained):
    """The run's `config.json`: the resolved config and the facts derived from it.

    A run from pretrained weights also records what a resume needs of them
    (see `recorded_pretrained`).
    """
    record = {
        **run.record(),
        "num_replicas": replicas,
        "per_replica_batch_size": run.config.batch_size // replicas,
        "data": data.describe(),
        "versions": runtime.versions(),
    }
    if pretrained:
        record["pretrained"] = {
            "source": pretrained.source,
            "input_mean": np.asarray(pretrained.input_mean).tolist(),
            "input_std": np.asarray(pretrained.input_std).tolist(),
        }
    return record


def _fit(model, run, data, strategy, multi_worker, fit_callbacks, state):
    """`model.fit` from the checkpoint `state` (None: the start) to the run's end.

    A run stopped part way through an epoch (`callbacks.StopOnSignal`) first
    trains the rest of that epoch, then the epochs after it. Frees the
    training graphs after.
    """
    config = run.config
    train_ds = data_lib.train_dataset(data, config.batch_size, config.seed, multi_worker)
    val_ds = data_lib.eval_dataset(
        data, data.validation or data.test, config.batch_size, multi_worker
    )
    workaround = (
        _compat.multi_worker_fit(model, train_ds, strategy)
        if multi_worker
        else contextlib.nullcontext()
    )
    epoch, step = (state["epoch"], state["step"]) if state else (0, 0)
    done_in_epoch = step - epoch * run.steps_per_epoch
    # (first epoch, last epoch, steps of each): the rest of a part-done epoch, then the others
    spans = [(epoch, run.epochs, run.steps_per_epoch)]
    if 0 < done_in_epoch < run.steps_per_epoch:
        spans = [(epoch, epoch + 1, run.steps_per_epoch - done_in_epoch)]
        spans += [(epoch + 1, run.epochs, run.steps_per_epoch)] if epoch + 1 < run.epochs else []
    with workaround:
        for first, last, steps in spans:
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


def _summarize(model, run, data, state, replicas):
    """The run's results: the test metrics and the last epoch's history row."""
    # The numbers the evaluation command reports (cross-entropy without the decay term).
    test = evaluation.evaluate(
        evaluation.classifier_from_model(model, data.class_names), data, run.config.batch_size
    )
    last = state["history"][-1] if state["history"] else {}
    return {
        "model": model.name,
        "dataset": run.config.dataset,
        "epochs": state["epoch"],
        "steps": state["step"],
        "test_loss": test["loss"],
        "test_top1_error": test["top1_error"],
        "test_top5_error": test["top5_error"],
        "num_test_examples": test["num_examples"],
        "final_train_loss": last.get("loss"),
        "final_train_top1_error": last.get("top1_error"),
        "final_val_top1_error": last.get("val_top1_error"),
        "num_replicas": replicas,
        "global_batch_size": run.config.batch_size,
        "trainable_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
    }


def finish(trained):
    """Writes a trained run's `model.keras`, SavedModel, `summary.json` and curves.

    `summary.json` is written last: a run killed before it is finished again
    when restarted. Does nothing for a run that had finished before, and on
    the non-chief workers of a cluster.

    Args:
        trained: the `TrainedRun` that `train` returned.

    Returns:
        The summary, with the SavedModel's path under `saved_model`.
    """
    if trained.model is None or not trained.chief:
        return trained.summary
    output_dir = trained.output_dir
    try:
        with rundir.atomic_path(os.path.join(output_dir, "model.keras")) as path:
            trained.model.save(path)
        summary = {
            **trained.summary,
            "saved_model": export.export_saved_model(
                trained.model,
                os.path.join(output_dir, "saved_model"),
                class_names=trained.data.class_names,
                preprocessing=trained.data.preprocessing,
            ),
        }
        state = rundir.load_state(output_dir)
        if state and state["history"]:
            plotting.plot_history(state["history"], os.path.join(output_dir, "training_curves.png"))
        rundir.write_json(os.path.join(output_dir, "summary.json"), summary)
    except OSError as error:
        raise rundir.RunDirError(
            f"Could not write the finished run's outputs in {output_dir!r}: "
            f"{error.strerror or error} ({error.filename or output_dir}). Its last checkpoint "
            "is kept: make room and run the same command to write them."
        ) from None
    finally:
        if trained.lock:
            trained.lock.release()
    return summary
