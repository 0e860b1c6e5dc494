"""Workarounds for Keras behaviour that keras_resnet cannot change; the one
module that reaches into private Keras and TensorFlow code.

Each workaround is applied only around the call that needs it and undone
afterwards, and each names the Keras version range it was written against.
tests/test_compat.py holds a test per workaround that fails on the day it is
no longer needed or no longer works.
"""

import contextlib
import io
import sys

import keras


def count_graph_operations(outputs):
    """Operations (layer calls) a functional graph has behind `outputs`,
    counted without recursion."""
    seen, pending = set(), list(keras.tree.flatten(outputs))
    while pending:
        history = getattr(pending.pop(), "_keras_history", None)
        if history is None or history.operation is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        if id(node) not in seen:
            seen.add(id(node))
            pending.extend(node.input_tensors)
    return len(seen)


@contextlib.contextmanager
def recursion_headroom(frames):
    """Lets the code inside recurse `frames` levels deeper than the caller could.

    Keras walks a functional graph recursively, one Python frame per layer on
    the path it follows (`keras.src.ops.function._build_map_helper`), when a
    model is built, loaded or cloned. Every path of a residual network passes
    through each block's addition and output, so ResNet-1202's walk is over
    1,200 frames deep, past Python's default limit of 1,000. The limit is
    raised for the walk only and restored after it.
    """
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(previous + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def weights_file_bytes(model):
    """The content of the `.weights.h5` file `model.save_weights` would write, made in memory.

    Keras writes weights only to a path, through HDF5. When the disk fills
    while it writes, HDF5 keeps the broken file open and the process crashes
    at exit (a segmentation fault, after h5py's ENOSPC errors). Made in memory,
    a checkpoint reaches the disk through plain Python writes, whose failures
    are ordinary `OSError`s that leave nothing behind. Keras's own
    `H5IOStore` (which takes an `io.BytesIO`) and `_save_state` (what
    `save_weights` runs) make the same file; `keras.src.saving.saving_lib`,
    Keras 3.15.
    """
    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    saving_lib._save_state(
        model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set()
    )
    store.close()
    return buffer.getvalue()


# Keras minor versions the multi-worker workaround was written for and tested with.
MULTI_WORKER_TESTED_KERAS = ("3.15",)


def check_keras_for_multi_worker():
    """Stops with a clear message on a Keras the multi-worker workaround was not tested with."""
    minor = ".".join(keras.__version__.split(".")[:2])
    if minor not in MULTI_WORKER_TESTED_KERAS:
        raise RuntimeError(
            f"Training under MultiWorkerMirroredStrategy needs keras_resnet's workaround for "
            f"keras-team/keras#20585, which reaches private Keras code and was tested with Keras "
            f"{', '.join(MULTI_WORKER_TESTED_KERAS)}; this is Keras {keras.__version__}. Install "
            f"a tested Keras (pip install 'keras>={MULTI_WORKER_TESTED_KERAS[-1]},<3.16') or "
            "train with another --strategy."
        )


@contextlib.contextmanager
def multi_worker_fit(model, batch, strategy):
    """Lets `model.fit` run under MultiWorkerMirroredStrategy; undone on exit.

    keras-team/keras#20585 (open): Keras 3's `fit` fails under this strategy.
    1. Before training, Keras builds metrics and optimizer from one batch that
       it all-reduces to learn shapes; this strategy cannot reduce the nested
       (images, labels) batch. Building from a local batch first, and skipping
       that step for this model, does the same work without the reduction.
    2. Each step's logs (scalar metrics) are averaged across workers with
       `strategy.reduce("MEAN", value, axis=0)`, which TensorFlow rejects for
       0-d values; the cross-replica mean of a scalar is `axis=None`.
    Inside the block, other strategies still get Keras's own reduction.

    Args:
        model: the compiled model, built under `strategy`.
        batch: one local (images, labels) training batch, for its shapes.
        strategy: the `tf.distribute.MultiWorkerMirroredStrategy`.

    Raises:
        RuntimeError: on a Keras version the workaround was not tested with.
    """
    check_keras_for_multi_worker()
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as keras_trainer

    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    keras_reduce = keras_trainer.reduce_per_replica

    def reduce_scalars_without_axis(values, strategy, reduction):
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or reduction not in (
            "auto",
            "mean",
        ):
            return keras_reduce(values, strategy, reduction)

        def mean(value):
            if isinstance(value, tf.distribute.DistributedValues):
                local = strategy.experimental_local_results(value)[0]
                return strategy.reduce("MEAN", value, axis=0 if local.shape.rank else None)
            return value

        return tf.nest.map_structure(mean, values)

    model._maybe_symbolic_build = lambda *args, **kwargs: None
    keras_trainer.reduce_per_replica = reduce_scalars_without_axis
    try:
        yield
    finally:
        keras_trainer.reduce_per_replica = keras_reduce
        del model._maybe_symbolic_build


def optimizer_variable_index(optimizer, variable):
    """Index of `variable`'s slots (e.g. `optimizer.momentums`) in a Keras optimizer.

    Keras's optimizers find them with the private `_get_variable_index`; the
    public API has no way to read another optimizer variable's slot. Present
    in Keras 3.0 to 3.15.
    """
    return optimizer._get_variable_index(variable)


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on in this process (None: unknown).

    TensorFlow decides once, when it loads, from TF_ENABLE_ONEDNN_OPTS and the
    CPU; it has no public query.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    try:
        return bool(_pywrap_util_port.IsMklEnabled())
    except AttributeError:
        return None
