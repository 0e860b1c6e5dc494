"""Where and how a run executes: devices, tf.distribute strategy, seeds, precision."""

import json
import os
import platform

import keras
import numpy as np
import tensorflow as tf

from keras_resnet import _compat


def setup_devices(config):
    """Sets logical CPU devices, the strategy, seeds, determinism and precision.

    Must run before TensorFlow executes any op: logical devices and
    multi-worker collectives can only be configured at program start.

    Args:
        config: a `keras_resnet.config.TrainConfig` (its `cpu_devices`,
            `strategy`, `seed`, `deterministic` and `mixed_precision`).

    Returns:
        The `tf.distribute.Strategy` of `config.strategy`.
    """
    if config.cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * config.cpu_devices
            )
        except RuntimeError as error:
            raise RuntimeError(
                f"--cpu-devices must be set before TensorFlow starts: {error}"
            ) from None
    strategy = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
    return strategy


def make_strategy(name):
    """The tf.distribute strategy for `name` (see `TrainConfig.strategy`)."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if name == "multiworker" or (name == "auto" and sum(len(v) for v in cluster.values()) > 1):
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable.")
        # Created before anything lists devices: that would start TensorFlow's context.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 or (not gpus and len(cpus) > 1) else "onedevice"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy([d.name for d in gpus] or [d.name for d in cpus])
    return tf.distribute.OneDeviceStrategy((gpus or cpus)[0].name)


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief():
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    cluster = tf_config.get("cluster", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index") == 0 and "chief" not in cluster


def versions():
    """The software a run used, for its `config.json`."""
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "onednn": _compat.onednn_enabled(),
    }


def workers_agree(strategy, value):
    """Whether every worker of a cluster holds the same int `value` (True off a cluster).

    A collective: every worker must call it, at the same point.
    """
    if not is_multi_worker(strategy):
        return True
    values = strategy.run(lambda: tf.constant(value, tf.int64))
    total = int(strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None))
    return total == value * strategy.num_replicas_in_sync


def any_worker(strategy, flag):
    """Whether `flag` is true on any worker of a cluster (`flag` itself off a cluster).

    A collective: every worker must call it, at the same point.
    """
    if not is_multi_worker(strategy):
        return bool(flag)
    values = strategy.run(lambda: tf.constant(int(bool(flag)), tf.int64))
    return int(strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)) > 0
