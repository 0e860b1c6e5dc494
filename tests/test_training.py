import csv
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resnet import data

from conftest import REPO, gray_copy, run_train, write_class_folders

# Digits: 1,442 real training images of 8x8 pixels; ResNet-8 at batch 64 is 22 steps an epoch.
TINY = ["--dataset", "digits", "--depth", "8", "--batch-size", "64"]


def read_history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def assert_same_rows(history, expected, rtol=1e-5):
    """The training and test columns of two runs' history rows agree (a resumed run's and one
    never stopped)."""
    for column in ("loss", "top1_error", "top3_error", "top5_error", "val_loss", "val_top1_error"):
        np.testing.assert_allclose(
            [float(row[column]) for row in history],
            [float(row[column]) for row in expected],
            rtol=rtol,
            err_msg=column,
        )


@pytest.fixture(scope="module")
def cifar(cifar_dir):
    return data.load_data("cifar10", data_dir=str(cifar_dir))


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train([*TINY, "--epochs", "2", "--output-dir", str(run_dir), "--log-every", "5"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resnet8 on digits: test top-1 error" in result.stdout

    history = read_history(run_dir)
    assert [int(r["epoch"]) for r in history] == [1, 2] and [int(r["step"]) for r in history] == [
        22,
        44,
    ]
    summary = read_json(run_dir / "summary.json")
    assert summary["num_replicas"] == 1 and summary["examples_per_second"] > 0
    assert summary["test_top1_error"] < 0.5  # digits: well below chance (90%) after 44 steps
    config = read_json(run_dir / "config.json")
    assert config["data"]["class_names"] == [str(d) for d in range(10)]
    assert config["batch_size"] == 64 and config["lr_boundaries_steps"] == [22, 33]
    assert os.path.getsize(run_dir / "training_curves.png") > 10_000

    # model.keras takes raw pixels and reproduces the summary's test error.
    digits = data.load_data("digits")
    model = keras.saving.load_model(run_dir / "model.keras")
    probabilities = model.predict(digits.test.images, verbose=0)
    error = np.mean(probabilities.argmax(axis=1) != digits.test.labels)
    assert error == pytest.approx(summary["test_top1_error"], abs=1e-6)
    # The SavedModel answers the same.
    serving = tf.saved_model.load(str(run_dir / "saved_model" / "1"))
    served = serving.signatures["serving_default"](
        images=tf.constant(digits.test.images[:16], tf.float32)
    )
    np.testing.assert_allclose(
        served["probabilities"].numpy(), probabilities[:16], rtol=1e-4, atol=1e-5
    )

    # TensorBoard has per-step loss, error, learning rate and images/second.
    tags = set()
    for name in os.listdir(run_dir / "logs" / "train"):
        for event in tf.compat.v1.train.summary_iterator(str(run_dir / "logs" / "train" / name)):
            tags |= {value.tag for value in event.summary.value}
    assert {"loss", "top1_error", "learning_rate", "images_per_second", "epoch_top1_error"} <= tags

    again = run_train([*TINY, "--epochs", "2", "--output-dir", str(run_dir)])
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert os.listdir(run_dir / "saved_model") == ["1"]
    # Its checkpoints deleted to save disk, the finished run is still never trained over.
    shutil.rmtree(run_dir / "checkpoints")
    model_bytes = (run_dir / "model.keras").read_bytes()
    again = run_train([*TINY, "--epochs", "2", "--output-dir", str(run_dir)])
    assert again.returncode == 0 and "already finished (2 epochs)" in again.stdout
    other_lr = run_train([*TINY, "--epochs", "2", "--lr", "0.05", "--output-dir", str(run_dir)])
    assert other_lr.returncode == 1 and "finished run of another recipe (lr: " in other_lr.stderr
    deeper = run_train([*TINY, "--depth", "14", "--epochs", "2", "--output-dir", str(run_dir)])
    assert deeper.returncode == 1 and "another configuration (depth: 8 -> 14)" in deeper.stderr
    assert (run_dir / "model.keras").read_bytes() == model_bytes
    assert read_json(run_dir / "summary.json") == summary


@pytest.mark.slow
def test_killed_run_resumes_with_every_epoch_once(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "--depth", "14", "--epochs", "12", "--output-dir", str(run_dir)]
    process = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = run_dir / "checkpoints" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if state.exists() and read_json(state)["epoch"] >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = read_json(state)["epoch"]
    assert 2 <= killed_at < 12

    result = run_train(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming {run_dir} from epoch {killed_at}" in result.stdout
    history = read_history(run_dir)
    assert [int(r["epoch"]) for r in history] == list(range(1, 13))
    # The optimizer's step (and so the schedule) continued where it stopped.
    assert [int(r["step"]) for r in history] == [22 * e for e in range(1, 13)]
    # state.json, and the last three checkpoints' weights and states
    assert len(os.listdir(run_dir / "checkpoints")) == 1 + 2 * 3


class Preempt(keras.callbacks.Callback):
    """The machine's notice of preemption (SIGTERM) after batch `batch` of epoch `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_in_an_epochs_last_step_lets_it_end_then_stops(tmp_path):
    from keras_resnet import callbacks, training
    from keras_resnet.rundir import RunDir
    from keras_resnet.config import TrainConfig

    run_dir = tmp_path / "run"
    config = TrainConfig(
        dataset="digits",
        depth=8,
        batch_size=64,
        steps=30,
        steps_per_epoch=10,
        output_dir=str(run_dir),
    )
    with pytest.raises(callbacks.Preempted, match=r"after step 20 \(epoch 2\).*epoch-0002"):
        training.run(config, log=lambda line: None, extra_callbacks=[Preempt(1, 9)])
    state = RunDir(run_dir).state()
    assert (state["epoch"], state["step"]) == (2, 20) and len(state["history"]) == 2
    training.finish(training.run(config, log=lambda line: None))
    history = read_history(run_dir)
    assert [(int(r["epoch"]), int(r["step"])) for r in history] == [(1, 10), (2, 20), (3, 30)]


def test_sigterm_mid_epoch_checkpoints_that_step_and_the_run_resumes_from_it(tmp_path):
    from keras_resnet import callbacks, training
    from keras_resnet.rundir import RunDir
    from keras_resnet.config import TrainConfig

    run_dir = tmp_path / "run"
    config = TrainConfig(
        dataset="digits",
        depth=8,
        batch_size=64,
        steps=30,
        steps_per_epoch=10,
        output_dir=str(run_dir),
    )

    with pytest.raises(callbacks.Preempted) as stopped:
        training.run(config, log=lambda line: None, extra_callbacks=[Preempt(1, 3)])
    message = str(stopped.value)
    assert "Stopped by SIGTERM after step 14 (epoch 2)" in message
    assert "step-0000014.weights.h5" in message and "resume from step 14" in message
    state = RunDir(run_dir).state()
    assert (state["epoch"], state["step"], state["weights"]) == (1, 14, "step-0000014.weights.h5")
    assert [row["epoch"] for row in state["history"]] == [1]
    partial = state[callbacks.PARTIAL_EPOCH]  # the 4 steps of epoch 2 it trained
    assert partial["step"] == 14 and partial["seconds"] > 0
    assert partial["metrics"]["loss/count"] == 4 * 64  # the loss's weight: examples
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers are put back
    assert not (run_dir / "summary.json").exists()

    lines = []
    trained = training.run(config, log=lines.append)
    assert "Resuming " + str(run_dir) + " from epoch 1 (step 14)" in "\n".join(lines)
    training.finish(trained)
    history = read_history(run_dir)
    assert [int(r["epoch"]) for r in history] == [1, 2, 3]
    assert [int(r["step"]) for r in history] == [10, 20, 30]  # the rest of epoch 2, not all of it
    assert read_json(run_dir / "summary.json")["steps"] == 30

    # It trained on the batches the run would have had without the stop, each once: the
    # same weights as a run never stopped.
    whole = training.run(
        dataclasses.replace(config, output_dir=str(tmp_path / "whole")), log=lambda line: None
    )
    for resumed, expected in zip(trained.model.weights, whole.model.weights, strict=True):
        np.testing.assert_allclose(resumed.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    # ... and epoch 2's row covers all its steps, the 4 before the stop too.
    whole_history = read_history(tmp_path / "whole")
    assert_same_rows(history, whole_history)
    assert float(history[1]["seconds"]) > partial["seconds"]


@pytest.mark.slow
def test_sigterm_from_outside_stops_cleanly_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "--depth", "14", "--steps", "120", "--steps-per-epoch", "60"]
    args += ["--output-dir", str(run_dir)]
    process = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = run_dir / "checkpoints" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not state.exists():
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be signalled"
    # At once: epoch 1's checkpoint is written, so the signal lands in epoch 2, whose step
    # under way finishes and stops the run. (A pause here let a fast machine finish all 60
    # steps of epoch 2 before the signal came.)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err[-3000:]
    stopped = read_json(state)
    assert stopped["epoch"] == 1 and 60 < stopped["step"] < 120, stopped["step"]
    assert f"Stopped by SIGTERM after step {stopped['step']} (epoch 2)" in err
    assert "Traceback" not in err

    result = run_train(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"from epoch 1 (step {stopped['step']})" in result.stdout
    history = read_history(run_dir)
    assert [(int(r["epoch"]), int(r["step"])) for r in history] == [(1, 60), (2, 120)]


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train([*TINY, "--epochs", "1", "--cpu-devices", "2", "--output-dir", str(run_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_json(run_dir / "summary.json")["num_replicas"] == 2
    assert read_json(run_dir / "config.json")["per_replica_batch_size"] == 32


# One run of ResNet-8 on digits over 2 logical CPUs, in its own process (logical devices are
# set once, at TensorFlow's start): "stop" stops it by SIGTERM after batch 3 of epoch 2.
MIRRORED_RUN = """
import os, signal, sys
import keras
from keras_resnet import callbacks, training
from keras_resnet.config import TrainConfig
class Preempt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (1, 3):
            os.kill(os.getpid(), signal.SIGTERM)
config = TrainConfig(dataset="digits", depth=8, batch_size=64, steps=30, steps_per_epoch=10,
                     cpu_devices=2, output_dir=sys.argv[1])
if sys.argv[2] == "stop":
    try:
        training.run(config, log=print, extra_callbacks=[Preempt()])
    except callbacks.Preempted as stopped:
        print(stopped)
else:
    training.finish(training.run(config, log=print))
"""


@pytest.mark.slow
def test_a_sigterm_resumed_epochs_row_under_mirrored_strategy_is_a_run_never_stopped(tmp_path):
    # The training metrics are sync-on-read sums over the 2 replicas: what the step checkpoint
    # read of them must come back whole, neither doubled nor halved.
    def run(run_dir, mode):
        result = subprocess.run(
            [sys.executable, "-c", MIRRORED_RUN, str(run_dir), mode],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    run_dir, whole_dir = tmp_path / "run", tmp_path / "whole"
    assert "Stopped by SIGTERM after step 14 (epoch 2)" in run(run_dir, "stop")
    partial = read_json(run_dir / "checkpoints" / "state.json")["partial_epoch"]
    assert partial["metrics"]["loss/count"] == 4 * 64  # both replicas' examples, once
    assert "from epoch 1 (step 14)" in run(run_dir, "resume")
    run(whole_dir, "whole")
    history, whole = read_history(run_dir), read_history(whole_dir)
    assert read_json(run_dir / "summary.json")["num_replicas"] == 2
    assert [int(r["step"]) for r in history] == [int(r["step"]) for r in whole] == [10, 20, 30]
    assert_same_rows(history, whole)


REPLICA_STATISTICS = """
import json, sys
import keras_resnet
import numpy as np
import tensorflow as tf
from keras_resnet import callbacks
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(8, 8, 3), classes=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
images = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
images[32:] += 3.0  # each replica gets one half: different batch statistics
labels = np.arange(64) % 3
callbacks = [callbacks.AverageMovingStatistics(strategy)] if sys.argv[1] == "average" else []
model.fit(images, labels, batch_size=64, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
gaps = [float(np.max(np.abs(a.numpy() - b.numpy())))
        for w in model.non_trainable_weights if "moving" in w.path
        for a, b in [strategy.experimental_local_results(w.value)]]
print(json.dumps(gaps))
"""


@pytest.mark.slow
@pytest.mark.parametrize("average", [True, False])
def test_replicas_hold_the_same_batch_norm_statistics_only_when_averaged(average):
    result = subprocess.run(
        [sys.executable, "-c", REPLICA_STATISTICS, "average" if average else "local"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    gaps = json.loads(result.stdout.splitlines()[-1])
    assert len(gaps) == 2 * 7  # ResNet-8: 7 batch norms, moving mean and variance
    if average:
        assert max(gaps) == 0.0
    else:  # Keras 3 alone: each replica keeps the statistics of its own half of the batch
        assert min(gaps) > 1e-3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(run_dirs, args, program=("train.py",)):
    """Starts a two-worker cluster of train.py processes, worker `i` writing to `run_dirs[i]`."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    processes = []
    for index in (1, 0):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(
            subprocess.Popen(
                [sys.executable, *program, *args, "--output-dir", str(run_dirs[index])],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "TF_CONFIG": tf_config, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )
        )
    return processes


@pytest.mark.slow
def test_multi_worker_on_two_local_processes(tmp_path):
    run_dir = tmp_path / "run"
    processes = start_workers([run_dir, run_dir], [*TINY, "--epochs", "2"])
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    summary = read_json(run_dir / "summary.json")
    assert summary["num_replicas"] == 2 and summary["steps"] == 44
    assert [int(r["epoch"]) for r in read_history(run_dir)] == [1, 2]
    # Both workers report the same synchronised model.
    assert (
        outputs[0][0].splitlines()[-1].split("after")[0]
        == outputs[1][0].splitlines()[-1].split("after")[0]
    )
    # Each worker trained on its own half of every batch: the same training as one process
    # whose two replicas take those halves.
    one = tmp_path / "one"
    result = run_train([*TINY, "--epochs", "2", "--cpu-devices", "2", "--output-dir", str(one)])
    assert result.returncode == 0, result.stderr[-3000:]
    for cluster, alone in zip(read_history(run_dir), read_history(one), strict=True):
        for key in ("loss", "top1_error", "val_loss", "val_top1_error"):
            assert float(cluster[key]) == pytest.approx(float(alone[key]), rel=1e-4), key


@pytest.mark.slow
def test_killed_multi_worker_run_resumes_on_every_worker(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "--depth", "14", "--epochs", "8"]
    processes = start_workers([run_dir, run_dir], args)
    state = run_dir / "checkpoints" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and all(p.poll() is None for p in processes):
        if state.exists() and read_json(state)["epoch"] >= 2:
            break
        time.sleep(0.02)
    assert all(p.poll() is None for p in processes), "the run ended before it could be killed"
    for process in processes:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    killed_at = read_json(state)["epoch"]
    assert 2 <= killed_at < 8

    processes = start_workers([run_dir, run_dir], args)
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        # Both workers, not only the chief, start from the checkpoint.
        assert f"Resuming {run_dir} from epoch {killed_at}" in out
    history = read_history(run_dir)
    assert [int(r["epoch"]) for r in history] == list(range(1, 9))
    assert [int(r["step"]) for r in history] == [22 * e for e in range(1, 9)]
    finals = [out.splitlines()[-1].split("after")[0] for out, _ in outputs]
    assert finals[0] == finals[1]

    # A worker that cannot see the checkpoints (another disk) stops the cluster, clearly.
    longer = [*TINY, "--depth", "14", "--epochs", "9"]
    processes = start_workers([tmp_path / "elsewhere", run_dir], longer)
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 1
        assert "The workers of this cluster see different checkpoints" in err
        assert "a filesystem every worker reads" in err
    assert not (tmp_path / "elsewhere" / "checkpoints").exists()

    # A finished run whose checkpoints were deleted: every worker finds it finished, and
    # a chief that finds it so where a worker finds nothing stops both (none waits in fit).
    shutil.rmtree(run_dir / "checkpoints")
    processes = start_workers([run_dir, run_dir], args)
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        assert f"Run in {run_dir} already finished (8 epochs)" in out
    processes = start_workers([run_dir, tmp_path / "empty"], args)  # the chief at run_dir
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 1, err[-3000:]
        assert "The workers of this cluster see different checkpoints" in err
    assert not (tmp_path / "empty" / "checkpoints").exists()


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_the_cluster_at_one_step_and_it_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "--depth", "14", "--steps", "120", "--steps-per-epoch", "60"]
    processes = start_workers([run_dir, run_dir], args)  # [worker 1, worker 0 (the chief)]
    state = run_dir / "checkpoints" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and all(p.poll() is None for p in processes):
        if state.exists():
            break
        time.sleep(0.02)
    assert all(p.poll() is None for p in processes), "the run ended before it could be signalled"
    # At once, as in the one-worker test: a pause let a fast machine finish epoch 2 first.
    processes[0].send_signal(signal.SIGTERM)  # the machine of the non-chief worker goes
    outputs = [p.communicate(timeout=120) for p in processes]
    stopped = read_json(state)
    assert stopped["epoch"] == 1 and 60 < stopped["step"] < 120, stopped["step"]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 1, err[-3000:]
        assert f"after step {stopped['step']} (epoch 2)" in err and "Traceback" not in err
    assert "Stopped by SIGTERM" in outputs[0][1]
    assert "Stopped by a signal to another worker" in outputs[1][1]

    processes = start_workers([run_dir, run_dir], args)
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        assert f"from epoch 1 (step {stopped['step']})" in out
    history = read_history(run_dir)
    assert [(int(r["epoch"]), int(r["step"])) for r in history] == [(1, 60), (2, 120)]
    # Epoch 2's row covers its steps before the stop too, summed over both workers' replicas:
    # the rows of a cluster never stopped.
    whole_dir = tmp_path / "whole"
    for process in start_workers([whole_dir, whole_dir], args):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    assert_same_rows(history, read_history(whole_dir), rtol=1e-4)  # as the cluster's check


@pytest.mark.slow
def test_the_same_command_twice_at_once_the_second_stops_naming_the_first(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "--depth", "14", "--epochs", "12", "--output-dir", str(run_dir)]
    first = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = run_dir / "lock"
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if lock.exists() and lock.read_text():
            break
        time.sleep(0.02)
    second = run_train(args)
    assert second.returncode == 1
    assert f"is in use: process {first.pid} on host {socket.gethostname()}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    assert [int(r["epoch"]) for r in read_history(run_dir)] == list(range(1, 13))
    assert (run_dir / "saved_model" / "1" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_same_seed_deterministic_runs_give_identical_weights(tmp_path):
    def weights(name, seed):
        run_dir = tmp_path / name
        result = run_train(
            [
                *TINY,
                "--epochs",
                "1",
                "--seed",
                str(seed),
                "--deterministic",
                "--output-dir",
                str(run_dir),
            ]
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return keras.saving.load_model(run_dir / "model.keras").get_weights()

    first, second, other = weights("a", 7), weights("b", 7), weights("c", 8)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other))


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train([*TINY, "--epochs", "3", "--lr", "1e30", "--output-dir", str(run_dir)])
    assert result.returncode == 1
    assert "loss became NaN or infinite in epoch 1" in result.stderr
    assert not (run_dir / "summary.json").exists() and not (run_dir / "history.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--output-dir", "{tmp}/file/run"], "is not writable: .*file' is not a directory"),
        (["--depth", "21", "--output-dir", "{tmp}/run"], "Invalid depth 21 for the CIFAR stem"),
        (["--data-dir", "{tmp}/nowhere", "--output-dir", "{tmp}/run"], "is not a directory"),
        (["--batch-size", "0", "--output-dir", "{tmp}/run"], "batch_size must be positive"),
        (
            ["--steps-per-execution", "4", "--output-dir", "{tmp}/run"],
            "--steps-per-execution 4 must divide the 11 steps of an epoch and the run's 11 steps",
        ),
        (["--freeze-backbone", "--output-dir", "{tmp}/run"], "needs pretrained --weights"),
        (
            ["--weights", "cifar10", "--depth", "1202", "--output-dir", "{tmp}/run"],
            "exist for ResNet-20, 32, 44, 56 and 110 with the CIFAR stem",
        ),
        (
            ["--weights", "cifar10", "--freeze-backbone", "--unfreeze-from", "conv5"]
            + ["--depth", "20", "--output-dir", "{tmp}/run"],
            "stages are conv2, conv3, conv4",
        ),
        (["--weights", "{tmp}/none.pth", "--output-dir", "{tmp}/run"], "none.pth' does not exist"),
    ],
)
def test_bad_arguments_fail_before_writing_anything(tmp_path, args, message, run_main):
    (tmp_path / "file").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    depth = [] if "--depth" in args else ["--depth", "8"]
    result = run_main("train", "--dataset", "digits", "--epochs", "1", *depth, *args)
    assert result.returncode == 1
    assert re.search(message, result.stderr), result.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_argparse_rejects_unknown_choices(run_main):
    result = run_main("train", "--strategy", "bogus")
    assert result.returncode == 2 and "invalid choice: 'bogus'" in result.stderr


def test_short_training_on_real_cifar10_images(cifar_run):
    summary = read_json(cifar_run / "summary.json")
    # 60 steps on 500 real images: clearly better than chance (90% error) on 250 test images.
    assert summary["num_test_examples"] == 250 and summary["test_top1_error"] < 0.8
    config = read_json(cifar_run / "config.json")
    assert config["data"]["class_names"][:3] == ["airplane", "automobile", "bird"]


@pytest.mark.slow
@pytest.mark.real_data
def test_one_epoch_of_resnet20_on_real_cifar10(full_cifar_dir, tmp_path):
    run_dir = tmp_path / "resnet20"
    result = run_train(
        [
            "--dataset",
            "cifar10",
            "--data-dir",
            str(full_cifar_dir),
            "--depth",
            "20",
            "--epochs",
            "1",
            "--output-dir",
            str(run_dir),
        ],
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_json(run_dir / "summary.json")
    assert summary["num_test_examples"] == 10_000 and summary["test_top1_error"] < 0.65


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, last_lr, policy",
    [
        (
            ["--mixed-precision", "--schedule", "onecycle", "--steps-per-execution", "2"],
            0.1 / 1e4,
            "mixed_bfloat16",
        ),
        (["--jit-compile", "true", "--schedule", "cosine", "--warmup", "5"], 0.0, "float32"),
    ],
)
def test_precision_schedule_and_compilation_flags(tmp_path, extra, last_lr, policy):
    run_dir = tmp_path / "run"
    result = run_train([*TINY, "--epochs", "2", "--output-dir", str(run_dir), *extra])
    assert result.returncode == 0, result.stderr[-3000:]
    # The schedule drove the optimizer: its rate at the last step is the schedule's end value.
    assert float(read_history(run_dir)[-1]["learning_rate"]) == pytest.approx(last_lr, abs=1e-7)
    assert read_json(run_dir / "summary.json")["test_top1_error"] < 0.5
    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.get_layer("conv1_conv").dtype_policy.name == policy


@pytest.mark.slow
def test_imagenet_style_training_streams_large_images(cifar, tmp_path):
    # Real CIFAR images upscaled to 120x100 PNGs stand in for an ImageNet-style folder.
    names = cifar.class_names[:4]
    for split, split_data, count in (("train", cifar.train, 16), ("test", cifar.test, 8)):
        for label, name in enumerate(names):
            os.makedirs(tmp_path / "images" / split / name)
            for i, image in enumerate(split_data.images[split_data.labels == label][:count]):
                big = tf.image.resize(image, (120, 100)).numpy().astype(np.uint8)
                tf.io.write_file(
                    str(tmp_path / "images" / split / name / f"{i}.png"), tf.io.encode_png(big)
                )
    run_dir = tmp_path / "run"
    result = run_train(
        [
            "--dataset",
            "folder",
            "--data-dir",
            str(tmp_path / "images"),
            "--depth",
            "18",
            "--image-size",
            "64",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--output-dir",
            str(run_dir),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config = read_json(run_dir / "config.json")
    assert (config["stem"], config["recipe"], config["data"]["preprocessing"]) == (
        "imagenet",
        "paper-imagenet",
        {"kind": "imagenet", "flip": True, "image_size": 64},
    )
    assert read_json(run_dir / "summary.json")["num_test_examples"] == 32
    # JPEG/PNG bytes of any size are centre-cropped inside the SavedModel.
    signature = tf.saved_model.load(str(run_dir / "saved_model" / "1")).signatures["serving_bytes"]
    encoded = tf.io.read_file(str(tmp_path / "images" / "test" / names[0] / "0.png"))
    assert signature(image_bytes=tf.stack([encoded]))["probabilities"].shape == (1, 4)


def large_image_folders(cifar, images):
    """Real CIFAR images of 2 classes upscaled to 72x72 PNGs: too large to hold, read from
    their files; 16 training and 8 test images a class."""
    for split, split_data, count in (("train", cifar.train, 16), ("test", cifar.test, 8)):
        for label, name in enumerate(cifar.class_names[:2]):
            os.makedirs(images / split / name)
            for i, image in enumerate(split_data.images[split_data.labels == label][:count]):
                big = tf.image.resize(image, (72, 72)).numpy().astype(np.uint8)
                tf.io.write_file(str(images / split / name / f"{i}.png"), tf.io.encode_png(big))
    return images


@pytest.mark.slow
def test_an_unreadable_image_file_stops_training_naming_it_and_the_run_resumes(
    cifar, tmp_path, run_main, monkeypatch
):
    images = large_image_folders(cifar, tmp_path / "images")
    run_dir = tmp_path / "run"
    args = ["--dataset", "folder", "--data-dir", images, "--stem", "cifar", "--depth", "8"]
    args += ["--image-size", "32", "--batch-size", "8", "--output-dir", run_dir]
    assert run_main("train", *args, "--epochs", "1").returncode == 0

    assert [(r["epoch"], r["step"]) for r in read_history(run_dir)] == [("1", "4")]

    # A file read by epoch 2's third step that nothing reads before training (most of
    # ImageNet's): neither the first file nor one of the channel mean's sample.
    monkeypatch.setattr(data.preprocessing, "MEAN_SAMPLE", 8)
    d = data.load_data("folder", data_dir=str(images), image_size=32)
    read_before = {d.train.paths[0], *d.train.sample(8).paths}
    broken = next(p for p in data.training_files(d, 8, seed=0, step=4 + 2) if p not in read_before)
    good = open(broken, "rb").read()
    open(broken, "wb").write(good[: len(good) // 3])  # a truncated copy
    result = run_main("train", *args, "--epochs", "2")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert f"error: {broken!r} is not an image that can be decoded (JPEG" in error
    assert "Training stopped after step 6. Replace the file" in error
    assert "goes on from its last checkpoint (epoch 1, step 4)" in error
    assert len(read_history(run_dir)) == 1

    open(broken, "wb").write(good)
    result = run_main("train", *args, "--epochs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["epoch"] for row in read_history(run_dir)] == ["1", "2"]

    # Test images, named by the test after an epoch (in its first batch, which Keras reads
    # before its callbacks hear of the test, and in a later one) and by the evaluate command.
    for name in cifar.class_names[:2]:  # test batch 0 holds class 0's 8 files, batch 1 class 1's
        broken = sorted((images / "test" / name).iterdir())[3]
        good_test_image = broken.read_bytes()
        broken.write_bytes(b"GIF89a, no more")
        result = run_main("train", *args, "--epochs", "3")
        assert result.returncode == 1
        assert f"{str(broken)!r} is not an image that can be decoded" in result.stderr
        assert "Training stopped while testing after step 12. Replace the file" in result.stderr
        assert "goes on from its last checkpoint (epoch 2, step 8)" in result.stderr
        if name == cifar.class_names[0]:
            broken.write_bytes(good_test_image)
    result = run_main(
        "evaluate", "--model", run_dir / "model.keras", "--data-dir", images, "--image-size", 32
    )
    assert result.returncode == 1
    assert f"error: {str(broken)!r} is not an image that can be decoded" in result.stderr


def two_class_folders(source, destination, classes=("cat", "dog")):
    """Class folders of `classes` only, linked from a CIFAR-10 folder tree."""
    for split in ("train", "test"):
        for name in classes:
            (destination / split).mkdir(parents=True, exist_ok=True)
            (destination / split / name).symlink_to(source / split / name)
    return destination


def test_fine_tuning_keeps_frozen_stages_and_the_pretrained_normalization(cifar_dir, tmp_path):
    from keras_resnet import config as config_lib
    from keras_resnet import specs, training
    from keras_resnet import weights as weights_lib

    pretrained = weights_lib.resolve("cifar10").load(specs.make_spec(20, "cifar"))
    folders = two_class_folders(cifar_dir, tmp_path / "catdog")
    config = config_lib.TrainConfig(
        dataset="catdog",
        data_dir=str(folders),
        weights="cifar10",
        freeze_backbone=True,
        unfreeze_from="conv4",
        epochs=2,
        batch_size=25,
        lr=0.01,
        output_dir=str(tmp_path / "run"),
    )
    trained = training.run(config, log=lambda line: None)
    model = trained.model
    # 8 steps on 100 training images: better than chance on 50 test images of 2 classes.
    assert trained.summary["test_top1_error"] < 0.5
    normalization = model.get_layer("input_normalization").get_weights()
    np.testing.assert_array_equal(normalization[0], pretrained.input_mean)
    np.testing.assert_array_equal(normalization[1], pretrained.input_std)
    assert model.get_layer("predictions").kernel.shape == (64, 2)
    for name in ("conv1_conv", "conv1_bn", "conv3_block3_2_conv", "conv3_block3_2_bn"):
        # Frozen: kernels, scales and (inference-mode batch norm) moving statistics unchanged.
        for ours, theirs in zip(model.get_layer(name).get_weights(), pretrained.layers[name]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    for name in ("conv4_block1_1_conv", "conv4_block3_2_bn"):
        changed = [
            not np.allclose(ours, theirs)
            for ours, theirs in zip(model.get_layer(name).get_weights(), pretrained.layers[name])
        ]
        assert all(changed), name
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable and all(n.startswith(("conv4", "predictions")) for n in trainable)
    assert read_json(tmp_path / "run" / "config.json")["weights"] == "cifar10"


@pytest.mark.slow
def test_a_fine_tuning_run_resumes_without_its_weights_file(cifar_dir, tmp_path):
    """Its checkpoint holds every weight; config.json, the architecture and normalization."""
    from keras_resnet import config as config_lib
    from keras_resnet import specs, training
    from keras_resnet import weights as weights_lib

    pretrained = weights_lib.resolve("cifar10").load(specs.make_spec(20, "cifar"))
    path = tmp_path / "resnet20.npz"
    weights_lib.npz.save(pretrained, path)
    config = config_lib.TrainConfig(
        dataset="catdog",
        data_dir=str(two_class_folders(cifar_dir, tmp_path / "catdog")),
        weights=str(path),  # fixes depth 20, which the config leaves open
        epochs=1,
        batch_size=50,
        lr=0.01,
        output_dir=str(tmp_path / "run"),
    )
    training.run(config, log=lambda line: None)
    recorded = read_json(tmp_path / "run" / "config.json")
    assert recorded["depth"] == 20
    assert recorded["pretrained"]["input_mean"] == pretrained.input_mean.tolist()
    path.unlink()

    lines = []
    # The same file named another way (here relative to the working directory) is the same run.
    spelled = dataclasses.replace(config, epochs=2, weights=os.path.relpath(path))
    trained = training.run(spelled, log=lines.append)
    assert any(line.startswith("Resuming") and "epoch 1" in line for line in lines), lines
    assert trained.summary["epochs"] == 2 and len(read_history(tmp_path / "run")) == 2
    normalization = trained.model.get_layer("input_normalization").get_weights()
    np.testing.assert_array_equal(normalization[0], pretrained.input_mean)
    np.testing.assert_array_equal(normalization[1], pretrained.input_std)
    assert read_json(tmp_path / "run" / "config.json")["pretrained"] == recorded["pretrained"]
    # Finished, and its checkpoints deleted: the same command is done, still without the file.
    training.finish(trained)
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    lines.clear()
    training.run(dataclasses.replace(config, epochs=2), log=lines.append)
    assert any("already finished (2 epochs)" in line for line in lines), lines
    # A new run still needs the file, and says so.
    with pytest.raises(ValueError, match="resnet20.npz"):
        training.run(dataclasses.replace(config, output_dir=str(tmp_path / "new")))
    assert not (tmp_path / "new").exists()


def test_same_classes_keep_the_pretrained_classifier(cifar):
    from keras_resnet import config as config_lib
    from keras_resnet import planning, specs, training
    from keras_resnet import weights as weights_lib

    config = config_lib.TrainConfig(dataset="cifar10", weights="cifar10", depth=32, epochs=1)
    plan = planning.prepare(config, cifar, tf.distribute.get_strategy())
    model = training.build_model(plan)
    expected = weights_lib.resolve("cifar10").load(specs.make_spec(32, "cifar"))
    expected = expected.layers["predictions"]
    for ours, theirs in zip(model.get_layer("predictions").get_weights(), expected):
        np.testing.assert_array_equal(ours, theirs)
    assert all(layer.trainable for layer in model.layers)


def test_rgb_weights_fine_tune_a_gray_dataset_repeated_into_rgb(cifar_dir, tmp_path):
    from keras_resnet import config as config_lib
    from keras_resnet import planning, training

    gray_dir = gray_copy(cifar_dir, tmp_path / "gray", classes=("cat", "dog"))
    config = config_lib.TrainConfig(
        dataset="catdog",
        data_dir=str(gray_dir),
        weights="cifar10",
        depth=20,
        batch_size=50,
        output_dir=str(tmp_path / "run"),
    )
    gray = planning.load_config_data(config)
    assert gray.image_shape == (32, 32, 1)
    plan = planning.prepare(config, gray, tf.distribute.get_strategy())
    assert plan.data.image_shape == (32, 32, 3)
    assert plan.record["data"]["image_shape"] == [32, 32, 3]
    np.testing.assert_array_equal(plan.data.train.images, np.repeat(gray.train.images, 3, -1))
    assert training.build_model(plan).input_shape == (None, 32, 32, 3)
    # A resume takes the weights' channels from its record, without reading them again.
    plan.run_dir.write_record(plan.record)
    plan.run_dir.write_summary({})
    resumed = planning.prepare(config, gray, tf.distribute.get_strategy())
    assert isinstance(resumed.start, planning.RecordedWeights)
    assert resumed.data.image_shape == (32, 32, 3) and resumed.record == plan.record


def test_a_weights_file_sets_the_architecture_and_is_read_once(cifar, tmp_path, monkeypatch):
    from keras_resnet import config as config_lib
    from keras_resnet import planning, specs, training
    from keras_resnet import weights as weights_lib

    path = tmp_path / "resnet32.npz"
    weights_lib.npz.save(weights_lib.resolve("cifar10").load(specs.make_spec(32, "cifar")), path)
    reads = []
    read_file = weights_lib.sources.read_file
    monkeypatch.setattr(weights_lib.sources, "read_file", lambda p: reads.append(p) or read_file(p))
    config = config_lib.TrainConfig(weights=str(path), output_dir=str(tmp_path / "run"))
    plan = planning.prepare(config, cifar, tf.distribute.get_strategy())
    assert (plan.config.depth, plan.config.stem, plan.config.shortcut) == (32, "cifar", "A")
    model = training.build_model(plan)
    assert reads == [str(path)]
    expected = read_file(path).layers["conv4_block5_2_conv"]
    np.testing.assert_array_equal(
        model.get_layer("conv4_block5_2_conv").get_weights()[0], expected[0]
    )


@pytest.mark.slow
@pytest.mark.real_data
def test_fine_tuning_from_cifar10_beats_training_from_scratch(full_cifar_dir, tmp_path):
    """The README's recipe on cat against dog of the original CIFAR-10 (lossless PNG folders):
    2 epochs from weights=cifar10 and from scratch."""
    folders = write_class_folders(full_cifar_dir, tmp_path / "catdog", classes=("cat", "dog"))
    errors = {}
    for start in ("cifar10", None):
        run_dir = tmp_path / f"run-{start}"
        weights = ["--weights", start] if start else []
        result = run_train(
            ["--data-dir", str(folders), "--epochs", "2", "--output-dir", str(run_dir), *weights],
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        errors[start] = read_json(run_dir / "summary.json")["test_top1_error"]
    assert errors["cifar10"] < errors[None], errors


def event_contents(folder):
    """Scalar tags, plugin names and whether a graph is in a TensorBoard run folder."""
    tags, plugins, graph = set(), set(), False
    for path in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            graph = graph or bool(event.graph_def)
            for value in event.summary.value:
                tags.add(value.tag)
                plugins.add(value.metadata.plugin_data.plugin_name)
    return tags, plugins, graph


def test_tensorboard_logs_hparams_top5_graph_and_profile(tmp_path, run_main):
    run_dir = tmp_path / "run"
    result = run_main(
        "train",
        *TINY,
        "--epochs",
        "1",
        "--log-every",
        "5",
        "--profile-steps",
        "3",
        "5",
        "--output-dir",
        run_dir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    logs = run_dir / "logs"
    tags, plugins, _ = event_contents(logs)
    assert "hparams" in plugins  # the HParams tab: the resolved config
    assert {"test_loss", "test_top1_error", "test_top5_error"} <= tags
    train_tags, _, graph = event_contents(logs / "train")
    assert graph  # the Graphs tab
    assert {"top1_error", "top5_error", "epoch_top1_error", "epoch_top5_error"} <= train_tags
    assert {"epoch_loss", "epoch_top5_accuracy"} <= train_tags  # Keras's own callback
    validation_tags, _, _ = event_contents(logs / "validation")
    assert {"epoch_top1_error", "epoch_top5_error", "epoch_loss"} <= validation_tags
    assert list((logs / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))  # Profile tab

    result = run_main("train", *TINY, "--profile-steps", "5", "3", "--output-dir", tmp_path / "x")
    assert result.returncode == 1 and "--profile-steps needs 1 <= START <= END" in result.stderr


# train.py whose channel mean reads 8 files: the others are first read by training.
TRAIN_WITH_A_SMALL_MEAN_SAMPLE = [
    "-c",
    "import sys, keras_resnet_cli; from keras_resnet.data import preprocessing; "
    "preprocessing.MEAN_SAMPLE = 8; sys.exit(keras_resnet_cli.run('train'))",
]


@pytest.mark.slow
def test_an_unreadable_file_in_one_workers_share_stops_every_worker_naming_it(
    cifar, tmp_path, monkeypatch
):
    """Only the worker whose share holds the file reads it; the others learn of it when the
    cluster's next all-reduce fails, and name it too."""
    images = large_image_folders(cifar, tmp_path / "images")
    args = ["--dataset", "folder", "--data-dir", str(images), "--stem", "cifar", "--depth", "8"]
    args += ["--image-size", "32", "--batch-size", "8", "--epochs", "2"]
    monkeypatch.setattr(data.preprocessing, "MEAN_SAMPLE", 8)
    d = data.load_data("folder", data_dir=str(images), image_size=32)
    read_before = {d.train.paths[0], *d.train.sample(8).paths}
    files = data.training_files(d, 8, seed=0, step=2)  # worker i reads files[4 * i : 4 * i + 4]
    for index in (1, 0):  # in the share of the worker that is not the chief, then the chief's
        broken = next(p for p in files[4 * index : 4 * index + 4] if p not in read_before)
        good = open(broken, "rb").read()
        open(broken, "wb").write(good[: len(good) // 3])
        run_dir = tmp_path / f"run{index}"
        processes = start_workers([run_dir, run_dir], args, TRAIN_WITH_A_SMALL_MEAN_SAMPLE)
        for process in processes:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 1
            error = err.strip().splitlines()[-1]
            assert f"{broken!r} is not an image that can be decoded (JPEG" in error
            assert "Training stopped after step 2. Replace the file" in error
            assert error.endswith("the run goes on from its start.") and "Traceback" not in err
        open(broken, "wb").write(good)
