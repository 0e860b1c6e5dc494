"""Each callback of a training run alone: none needs another to do its job."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet import callbacks, rundir


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="softmax")])
    model.compile(
        keras.optimizers.SGD(0.1),
        "sparse_categorical_crossentropy",
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"),
        ],
    )
    return model


def batches(nan_at=None, count=10):
    """`count` batches of 8 examples; the inputs of batch `nan_at` are NaN."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=(count * 8, 4)).astype("float32")
    y = rng.randint(0, 3, count * 8)
    if nan_at is not None:
        x[nan_at * 8 : (nan_at + 1) * 8] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def test_nan_guard_alone_stops_at_the_first_non_finite_batch():
    model, guard = tiny_model(), callbacks.NanGuard()
    model.fit(batches(nan_at=6).repeat(), epochs=3, steps_per_epoch=5, callbacks=[guard], verbose=0)
    # Batch 6 is the second batch of the second epoch: training stopped right after it.
    assert guard.diverged_epoch == 2
    assert int(model.optimizer.iterations.numpy()) == 7


def test_nan_guard_does_nothing_on_a_finite_loss():
    model, guard = tiny_model(), callbacks.NanGuard()
    model.fit(batches().repeat(), epochs=2, steps_per_epoch=5, callbacks=[guard], verbose=0)
    assert guard.diverged_epoch is None and int(model.optimizer.iterations.numpy()) == 10


def test_stop_at_step_alone_ends_mid_epoch():
    model = tiny_model()
    stop = callbacks.StopAtStep(total_steps=7, steps_per_epoch=5)
    model.fit(batches().repeat(), epochs=3, steps_per_epoch=5, callbacks=[stop], verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 7


def test_checkpointer_alone_saves_each_epoch_and_resumes(tmp_path):
    model = tiny_model()
    checkpointer = callbacks.Checkpointer(str(tmp_path))
    model.fit(batches().repeat(), epochs=2, steps_per_epoch=5, callbacks=[checkpointer], verbose=0)
    state = rundir.load_state(str(tmp_path))
    assert (state["epoch"], state["step"], state["weights"]) == (2, 10, "epoch-0002.weights.h5")
    assert [row["epoch"] for row in state["history"]] == [1, 2]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch-0002.weights.h5", "state.json"]
    assert (tmp_path / "history.csv").read_text().count("\n") == 3  # header and two epochs
    # A fresh model restored from the checkpoint has the same weights and optimizer step.
    restored = tiny_model()
    rundir.restore_checkpoint(restored, str(tmp_path), state)
    assert int(restored.optimizer.iterations.numpy()) == 10
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    # It continues the history where the state left it.
    resumed = callbacks.Checkpointer(str(tmp_path), state)
    restored.fit(
        batches().repeat(),
        epochs=3,
        initial_epoch=2,
        steps_per_epoch=5,
        callbacks=[resumed],
        verbose=0,
    )
    assert [row["epoch"] for row in rundir.load_state(str(tmp_path))["history"]] == [1, 2, 3]


def test_checkpointer_never_saves_a_diverged_epoch(tmp_path):
    model = tiny_model()
    checkpointer = callbacks.Checkpointer(str(tmp_path))
    model.fit(
        batches(nan_at=7).repeat(),
        epochs=2,
        steps_per_epoch=5,
        callbacks=[checkpointer],
        verbose=0,
    )
    state = rundir.load_state(str(tmp_path))
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert glob.glob(str(tmp_path / "checkpoints" / "*.h5"))[0].endswith("epoch-0001.weights.h5")


def test_checkpointer_of_a_non_chief_worker_writes_nothing(tmp_path):
    model = tiny_model()
    checkpointer = callbacks.Checkpointer(str(tmp_path), write=False)
    model.fit(batches().repeat(), epochs=2, steps_per_epoch=5, callbacks=[checkpointer], verbose=0)
    assert checkpointer.state["epoch"] == 2 and not os.listdir(tmp_path)


@pytest.mark.parametrize("log", [True, False])
def test_step_logger_alone_measures_throughput_and_writes_summaries(tmp_path, log):
    model = tiny_model()
    logger = callbacks.StepLogger(
        str(tmp_path / "logs") if log else None,
        log_every=2,
        global_batch=8,
        steps_per_epoch=5,
        warmup_steps=2,
    )
    model.fit(batches().repeat(), epochs=2, steps_per_epoch=5, callbacks=[logger], verbose=0)
    # Steps after the warm-up, less each epoch's first step: 3 + 4.
    assert logger.measured_steps == 7 and logger.examples_per_second > 0
    if not log:
        assert not os.listdir(tmp_path)
        return
    tags = set()
    for path in glob.glob(str(tmp_path / "logs" / "train" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags |= {value.tag for value in event.summary.value}
    assert {"loss", "top1_error", "top5_error", "learning_rate", "epoch_top1_error"} <= tags


def test_run_directory_state_is_plain_json(tmp_path):
    model = tiny_model()
    model.fit(
        batches().repeat(),
        epochs=1,
        steps_per_epoch=5,
        callbacks=[callbacks.Checkpointer(str(tmp_path))],
        verbose=0,
    )
    with open(tmp_path / "checkpoints" / "state.json") as f:
        row = json.load(f)["history"][0]
    assert set(row) == set(rundir.HISTORY_FIELDS) and row["val_loss"] is None
