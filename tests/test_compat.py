import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from keras_resnet import _compat

from conftest import REPO


def test_graph_operations_are_counted_without_recursion():
    model = keras_resnet.ResNet20()
    # One operation per layer, the input layer included.
    assert _compat.count_graph_operations(model.outputs) == len(model.layers)


def test_recursion_headroom_is_undone():
    limit = sys.getrecursionlimit()
    with _compat.recursion_headroom(5000):
        assert sys.getrecursionlimit() == limit + 5000
    assert sys.getrecursionlimit() == limit
    with pytest.raises(KeyError), _compat.recursion_headroom(10):
        raise KeyError("inside")
    assert sys.getrecursionlimit() == limit


def test_unknown_keras_stops_the_multi_worker_workaround_naming_the_version(monkeypatch):
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(RuntimeError, match=r"keras-team/keras#20585.*this is Keras 3\.99\.0"):
        _compat.check_keras_for_multi_worker()


def test_multi_worker_workaround_is_undone_after_fit():
    from keras.src.backend.tensorflow import trainer as keras_trainer

    keras_reduce = keras_trainer.reduce_per_replica
    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(8, 8, 3), classes=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    images = np.zeros((4, 8, 8, 3), "float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(4) % 3)).batch(2)
    with _compat.multi_worker_fit(model, next(iter(dataset)), tf.distribute.get_strategy()):
        assert keras_trainer.reduce_per_replica is not keras_reduce
        model.fit(dataset, epochs=1, verbose=0)
    assert keras_trainer.reduce_per_replica is keras_reduce
    assert "_maybe_symbolic_build" not in vars(model)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PLAIN_KERAS_MULTI_WORKER_FIT = textwrap.dedent("""
    import keras_resnet, numpy as np, tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = keras_resnet.ResNet(8, stem="cifar", input_shape=(8, 8, 3), classes=3)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images = np.zeros((16, 8, 8, 3), "float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(16) % 3)).batch(8)
    try:
        model.fit(dataset, epochs=1, verbose=0)
        print("fit ran")
    except ValueError as error:
        print("fit failed:", str(error).splitlines()[0][:200])
""")


@pytest.mark.slow
def test_keras_bug_20585_is_still_there():
    """Fails on the day Keras fixes keras-team/keras#20585: then delete
    `_compat.multi_worker_fit` and check that the two-worker training test still passes."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", PLAIN_KERAS_MULTI_WORKER_FIT],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                ),
            },
        )
        for i in (1, 0)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        last = out.strip().splitlines()[-1]
        assert last.startswith("fit failed: Attempt to convert a value (PerReplica"), (
            f"Keras {keras.__version__} printed {last!r}: keras-team/keras#20585 looks fixed, "
            "so keras_resnet._compat.multi_worker_fit can go."
        )


FAKE_NEW_KERAS_TRAIN = textwrap.dedent("""
    import sys, keras
    keras.__version__ = "3.99.0"
    from keras_resnet.cli.train import main
    sys.exit(main(sys.argv[1:]))
""")


def test_train_command_stops_on_an_untested_keras_before_writing(tmp_path):
    run_dir = tmp_path / "run"
    tf_config = {
        "cluster": {"worker": [f"127.0.0.1:{free_port()}"]},
        "task": {"type": "worker", "index": 0},
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FAKE_NEW_KERAS_TRAIN,
            "--dataset",
            "digits",
            "--depth",
            "8",
            "--strategy",
            "multiworker",
            "--epochs",
            "1",
            "--output-dir",
            str(run_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(tf_config)},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "error: Training under MultiWorkerMirroredStrategy" in result.stderr
    assert "this is Keras 3.99.0" in result.stderr
    assert not run_dir.exists()
