import keras
import numpy as np
import pytest

from keras_resnet import InputNormalization, WeightDecay, ZeroPadShortcut


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels():
    x = np.random.RandomState(0).normal(size=(2, 7, 6, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(ZeroPadShortcut(filters=8, strides=2)(x))
    assert y.shape == (2, 4, 3, 8)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 3:], 0.0)
    # Same spatial size as a symmetrically padded stride-2 3x3 conv, odd sizes too.
    conv = keras.Sequential([keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(8, 3, strides=2)])
    assert conv(x).shape == y.shape


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
