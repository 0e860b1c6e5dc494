"""Each callback of a training run alone: none needs another to do its job."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet import callbacks, rundir
from keras_resnet.rundir import RunDir


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
    stop = callbacks.StopAtStep(total_steps=7)
    model.fit(batches().repeat(), epochs=3, steps_per_epoch=5, callbacks=[stop], verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 7


def test_stop_at_step_counts_steps_not_calls_with_several_steps_an_execution():
    model = tiny_model()
    model.compile(model.optimizer, model.loss, steps_per_execution=2)
    stop = callbacks.StopAtStep(total_steps=6, start_step=0)
    model.fit(batches().repeat(), epochs=3, steps_per_epoch=4, callbacks=[stop], verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 6 and stop.step == 6


def run_directory(tmp_path):
    """An empty run directory: its config.json, as train() writes before the first epoch."""
    (tmp_path / "config.json").write_text("{}")
    return RunDir(tmp_path)


def test_checkpointer_alone_saves_each_epoch_and_resumes(tmp_path):
    model = tiny_model()
    checkpointer = callbacks.Checkpointer(run_directory(tmp_path))
    model.fit(batches().repeat(), epochs=2, steps_per_epoch=5, callbacks=[checkpointer], verbose=0)
    state = RunDir(tmp_path).state()
    assert (state["epoch"], state["step"], state["weights"]) == (2, 10, "epoch-0002.weights.h5")
    assert [row["epoch"] for row in state["history"]] == [1, 2]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == [
        "epoch-0001.weights.h5",
        "epoch-0001.weights.h5.state.json",
        "epoch-0002.weights.h5",
        "epoch-0002.weights.h5.state.json",
        "state.json",
    ]
    assert (tmp_path / "history.csv").read_text().count("\n") == 3  # header and two epochs
    # A fresh model restored from the checkpoint has the same weights and optimizer step.
    restored = tiny_model()
    assert RunDir(tmp_path).restore_checkpoint(restored) == state
    assert int(restored.optimizer.iterations.numpy()) == 10
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    # It continues the history where the state left it.
    resumed = callbacks.Checkpointer(RunDir(tmp_path), state)
    restored.fit(
        batches().repeat(),
        epochs=3,
        initial_epoch=2,
        steps_per_epoch=5,
        callbacks=[resumed],
        verbose=0,
    )
    assert [row["epoch"] for row in RunDir(tmp_path).state()["history"]] == [1, 2, 3]


def test_checkpointer_never_saves_a_diverged_epoch(tmp_path):
    model = tiny_model()
    checkpointer = callbacks.Checkpointer(run_directory(tmp_path))
    model.fit(
        batches(nan_at=7).repeat(),
        epochs=2,
        steps_per_epoch=5,
        callbacks=[checkpointer],
        verbose=0,
    )
    state = RunDir(tmp_path).state()
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert glob.glob(str(tmp_path / "checkpoints" / "*.h5"))[0].endswith("epoch-0001.weights.h5")


def test_checkpointer_of_a_non_chief_worker_writes_nothing(tmp_path):
    model = tiny_model()
    checkpointer = callbacks.Checkpointer(RunDir(tmp_path), write=False)
    model.fit(batches().repeat(), epochs=2, steps_per_epoch=5, callbacks=[checkpointer], verbose=0)
    assert checkpointer.state["epoch"] == 2 and not os.listdir(tmp_path)


@pytest.mark.parametrize("log", [True, False])
def test_step_logger_alone_measures_throughput_and_writes_summaries(tmp_path, log):
    model = tiny_model()
    logger = callbacks.StepLogger(
        str(tmp_path / "logs") if log else None,
        log_every=2,
        global_batch=8,
        start_step=0,
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
        callbacks=[callbacks.Checkpointer(run_directory(tmp_path))],
        verbose=0,
    )
    with open(tmp_path / "checkpoints" / "state.json") as f:
        row = json.load(f)["history"][0]
    assert set(row) == set(rundir.HISTORY_FIELDS) and row["val_loss"] is None


def test_checkpointer_keeps_the_last_three_and_a_damaged_one_falls_back(tmp_path):
    model = tiny_model()
    run_dir = run_directory(tmp_path)
    checkpointer = callbacks.Checkpointer(run_dir)
    model.fit(batches().repeat(), epochs=5, steps_per_epoch=2, callbacks=[checkpointer], verbose=0)
    kept = sorted(glob.glob(str(tmp_path / "checkpoints" / "*.weights.h5")))
    assert [os.path.basename(p) for p in kept] == [f"epoch-000{e}.weights.h5" for e in (3, 4, 5)]
    epoch4 = run_dir.checkpoint_states()[1]
    restored = tiny_model()
    run_dir.restore_checkpoint(restored)
    expected = restored.get_weights()
    # A truncated newest checkpoint (a disk error, a cut copy): named, and the one before is used.
    newest = tmp_path / "checkpoints" / "epoch-0005.weights.h5"
    newest.write_bytes(newest.read_bytes()[:1000])
    lines, restored = [], tiny_model()
    assert run_dir.restore_checkpoint(restored, lines.append) == epoch4
    assert len(lines) == 1 and "epoch-0005.weights.h5' cannot be read (" in lines[0]
    assert "truncated file" in lines[0]
    # The damaged one is set aside, kept, and never tried again; state.json names epoch 4.
    assert (tmp_path / "checkpoints" / "epoch-0005.weights.h5.damaged").exists()
    assert run_dir.state() == epoch4
    assert run_dir.restore_checkpoint(tiny_model(), lines.append) == epoch4
    assert len(lines) == 1
    kept = kept[:2]
    assert int(restored.optimizer.iterations.numpy()) == 8
    assert not all(np.array_equal(a, b) for a, b in zip(expected, restored.get_weights()))
    # A damaged state.json is passed over as well: each checkpoint has its own state.
    (tmp_path / "checkpoints" / "state.json").write_text('{"epo')
    assert run_dir.state() == run_dir.checkpoint_states()[0]
    for path in kept:
        with open(path, "r+b") as f:
            f.truncate(100)
    with pytest.raises(rundir.RunDirError, match="No checkpoint in .* can be read"):
        run_dir.restore_checkpoint(tiny_model(), lambda line: None)


def _small_tmpfs(path, size):
    """Mounts a tmpfs of `size` at `path`; False where this machine allows no mount."""
    import subprocess

    os.makedirs(path, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return mounted.returncode == 0


def test_a_full_disk_during_a_checkpoint_leaves_the_last_one_intact(tmp_path, monkeypatch):
    disk = tmp_path / "disk"
    mounted = _small_tmpfs(disk, "96k")
    try:
        if not mounted:  # no mount here: the same failure, simulated where the bytes are written
            import builtins

            real_open = builtins.open

            def open_on_a_full_disk(file, mode="r", *args, **kwargs):
                if "w" in mode and ".tmp-" in str(file) and str(file).endswith(".weights.h5"):
                    if "epoch-0002" in str(file):
                        raise OSError(28, "No space left on device", str(file))
                return real_open(file, mode, *args, **kwargs)

            monkeypatch.setattr(builtins, "open", open_on_a_full_disk)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2500)])  # ~40 KB a file
        model.compile(keras.optimizers.SGD(0.1), "mse")
        run_dir = run_directory(disk)
        data = tf.data.Dataset.from_tensor_slices((np.ones((8, 4)), np.ones((8, 2500)))).batch(4)
        with pytest.raises(rundir.RunDirError) as failure:
            model.fit(
                data.repeat(),
                epochs=3,
                steps_per_epoch=2,
                callbacks=[callbacks.Checkpointer(run_dir)],
                verbose=0,
            )
        message = str(failure.value)
        assert "Could not write the checkpoint of epoch 2 (step 4)" in message
        assert "No space left on device" in message
        assert "The checkpoint of epoch 1 (step 2) is kept and intact" in message
        assert "run the same command to resume" in message
        # Nothing half-written under any name; the kept checkpoint still loads.
        assert sorted(os.listdir(disk / "checkpoints")) == [
            "epoch-0001.weights.h5",
            "epoch-0001.weights.h5.state.json",
            "state.json",
        ]
        assert run_dir.restore_checkpoint(model)["epoch"] == 1
    finally:
        if mounted:
            import subprocess

            subprocess.run(["umount", str(disk)], check=True)


def test_a_run_directory_that_vanishes_mid_run_is_said_plainly(tmp_path):
    model = tiny_model()
    os.makedirs(tmp_path / "run")
    run_dir = run_directory(tmp_path / "run")

    class Vanish(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            import shutil

            shutil.rmtree(run_dir.path)

    with pytest.raises(rundir.RunDirError, match="'.*run' vanished during training"):
        model.fit(
            batches().repeat(),
            epochs=2,
            steps_per_epoch=2,
            callbacks=[Vanish(), callbacks.Checkpointer(run_dir)],
            verbose=0,
        )
    assert not os.path.exists(run_dir.path)


def test_a_run_directory_of_the_one_checkpoint_layout_resumes_and_keeps_it(tmp_path):
    """Run directories written before checkpoints were kept: one weights file, state.json."""
    model = tiny_model()
    run_dir = run_directory(tmp_path)
    model.fit(
        batches().repeat(),
        epochs=1,
        steps_per_epoch=2,
        callbacks=[callbacks.Checkpointer(run_dir)],
        verbose=0,
    )
    os.remove(tmp_path / "checkpoints" / "epoch-0001.weights.h5.state.json")  # the old layout
    restored = tiny_model()
    state = run_dir.restore_checkpoint(restored)
    assert (state["epoch"], state["step"]) == (1, 2)
    restored.fit(
        batches().repeat(),
        epochs=2,
        initial_epoch=1,
        steps_per_epoch=2,
        callbacks=[callbacks.Checkpointer(run_dir, state)],
        verbose=0,
    )
    # The old checkpoint got its own state and is kept beside the new one.
    assert [s["epoch"] for s in run_dir.checkpoint_states()] == [2, 1]
