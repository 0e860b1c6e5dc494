import keras
import numpy as np
import pytest

import tensorflow as tf

from keras_resnet import FusedBatchNormalization, InputNormalization, WeightDecay, ZeroPadShortcut


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels():
    x = np.random.RandomState(0).normal(size=(2, 7, 6, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(ZeroPadShortcut(filters=8, strides=2)(x))
    assert y.shape == (2, 4, 3, 8)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 3:], 0.0)
    # Same spatial size as a symmetrically padded stride-2 3x3 conv, odd sizes too.
    conv = keras.Sequential([keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(8, 3, strides=2)])
    assert conv(x).shape == y.shape
    # The gradient flows back to the kept positions only, unchanged.
    upstream = np.random.RandomState(1).normal(size=y.shape).astype("float32")
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(ZeroPadShortcut(filters=8, strides=2)(x) * upstream)
    expected = np.zeros(x.shape, "float32")
    expected[:, ::2, ::2, :] = upstream[..., :3]
    np.testing.assert_array_equal(tape.gradient(loss, x), expected)


def test_zero_pad_shortcut_identity_at_stride_one_and_config():
    layer = ZeroPadShortcut(filters=4, strides=1, name="s")
    x = np.ones((1, 5, 5, 4), "float32")
    np.testing.assert_array_equal(layer(x), x)
    clone = ZeroPadShortcut.from_config(layer.get_config())
    assert (clone.filters, clone.strides, clone.name) == (4, 1, "s")


def test_zero_pad_shortcut_rejects_bad_arguments():
    with pytest.raises(ValueError, match="filters must be a positive int, received 0"):
        ZeroPadShortcut(filters=0)
    with pytest.raises(ValueError, match="strides must be a positive int"):
        ZeroPadShortcut(filters=4, strides=0)
    with pytest.raises(ValueError, match="cannot reduce channels: input has 8, filters=4"):
        ZeroPadShortcut(filters=4)(np.ones((1, 2, 2, 8), "float32"))


def test_input_normalization_per_channel_and_serialization():
    layer = InputNormalization((3,), (), mean=[10.0, 20.0, 30.0], std=2.0)
    x = np.tile(np.array([12.0, 24.0, 36.0], "float32"), (1, 2, 2, 1))
    np.testing.assert_allclose(layer(x)[0, 0, 0], [1.0, 2.0, 3.0])
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 2
    config = layer.get_config()
    assert config["mean_shape"] == (3,) and "mean" not in config  # values travel as weights
    # uint8 pixels are accepted and cast.
    np.testing.assert_allclose(layer(x.astype("uint8"))[0, 0, 0], [1.0, 2.0, 3.0])


def test_weight_decay_value_and_config():
    reg = WeightDecay(1e-4)
    assert float(reg(np.array([3.0, 4.0]))) == pytest.approx(0.5 * 1e-4 * 25.0)
    assert WeightDecay.from_config(reg.get_config()).rate == 1e-4


def _bn_pair():
    """Keras's batch norm and the fused one with the same (non-trivial) weights."""
    layers = [
        keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
        FusedBatchNormalization(momentum=0.9, epsilon=1e-5),
    ]
    rng = np.random.default_rng(1)
    gamma, beta = rng.normal(size=6).astype("float32"), rng.normal(size=6).astype("float32")
    for layer in layers:
        layer.build((None, 5, 5, 6))
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return layers


def test_fused_batch_norm_equals_keras_batch_norm_in_training():
    x = tf.constant(np.random.default_rng(0).normal(2, 3, (8, 5, 5, 6)).astype("float32"))
    results = []
    for layer in _bn_pair():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y**3)  # a non-linear loss: gradients are not trivially zero
        gradients = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *gradients, layer.moving_mean, layer.moving_variance])
    fused = _bn_pair()[1]
    graph = tf.function(lambda v: fused(v, training=True)).get_concrete_function(x).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    for keras_value, fused_value in zip(*results):
        keras_value, fused_value = np.asarray(keras_value), np.asarray(fused_value)
        np.testing.assert_allclose(
            fused_value, keras_value, rtol=1e-5, atol=1e-5 * np.abs(keras_value).max()
        )


def test_fused_batch_norm_inference_config_and_fallbacks():
    x = np.random.default_rng(0).normal(2, 3, (4, 5, 5, 6)).astype("float32")
    keras_bn, fused = _bn_pair()
    for layer in (keras_bn, fused):
        layer.moving_mean.assign(np.linspace(-1, 1, 6).astype("float32"))
        layer.moving_variance.assign(np.linspace(0.5, 2, 6).astype("float32"))
    np.testing.assert_allclose(
        fused(x, training=False), keras_bn(x, training=False), rtol=1e-5, atol=1e-5
    )
    # Inference runs Keras's ops: the fused inference kernel is slow at batch 1 under oneDNN.
    graph = (
        tf.function(lambda v: fused(v, training=False)).get_concrete_function(tf.constant(x)).graph
    )
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
    clone = FusedBatchNormalization.from_config(fused.get_config())
    assert (clone.momentum, clone.epsilon) == (0.9, 1e-5)
    # A frozen layer normalizes with its moving statistics, as Keras's does.
    fused.trainable = keras_bn.trainable = False
    np.testing.assert_allclose(
        fused(x, training=True), keras_bn(x, training=True), rtol=1e-5, atol=1e-5
    )
    # Inputs the fused kernel does not take use the Keras implementation.
    flat = FusedBatchNormalization()
    assert flat(np.ones((3, 4), "float32"), training=True).shape == (3, 4)


def test_fused_batch_norm_under_bfloat16_policy():
    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    y = layer(np.random.default_rng(0).normal(size=(4, 3, 3, 2)).astype("float32"), training=True)
    assert y.dtype == "bfloat16" and layer.moving_mean.dtype == "float32"
