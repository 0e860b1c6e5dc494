"""Named stage outputs (`feature_extractor`, `feature_info`): keys, shapes and strides,
values equal to the network's own layers, frozen backbones, errors."""

import re

import keras
import numpy as np
import pytest

import keras_resnet

# Tiny networks of every stem and block kind, at small inputs for speed:
# (builder arguments, input size, {stage: (layer, channels, stride)}).
TINY = {
    "cifar-basic-A": (
        dict(depth=8, stem="cifar"),
        32,
        {"conv2": ("conv2_block1_out", 16, 1), "conv3": ("conv3_block1_out", 32, 2),
         "conv4": ("conv4_block1_out", 64, 4)},
    ),
    "cifar-bottleneck-B": (
        dict(depth=11, stem="cifar", block="bottleneck", shortcut="B"),
        16,
        {"conv2": ("conv2_block1_out", 64, 1), "conv3": ("conv3_block1_out", 128, 2),
         "conv4": ("conv4_block1_out", 256, 4)},
    ),
    "cifar-plain": (
        dict(depth=14, stem="cifar", plain=True),
        16,
        {"conv2": ("conv2_block2_out", 16, 1), "conv3": ("conv3_block2_out", 32, 2),
         "conv4": ("conv4_block2_out", 64, 4)},
    ),
    "imagenet-basic-B": (
        dict(depth=18),
        64,
        {"conv2": ("conv2_block2_out", 64, 4), "conv3": ("conv3_block2_out", 128, 8),
         "conv4": ("conv4_block2_out", 256, 16), "conv5": ("conv5_block2_out", 512, 32)},
    ),
    "imagenet-bottleneck-C-v1.5": (
        dict(depth=50, shortcut="C", bottleneck_stride="3x3"),
        64,
        {"conv2": ("conv2_block3_out", 256, 4), "conv3": ("conv3_block4_out", 512, 8),
         "conv4": ("conv4_block6_out", 1024, 16), "conv5": ("conv5_block3_out", 2048, 32)},
    ),
}  # fmt: skip


def pixels(size, batch=2, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def layer_outputs(model, names, x):
    """The outputs of `model`'s own layers `names` on `x`, in inference mode."""
    reference = keras.Model(model.input, [model.get_layer(name).output for name in names])
    return [keras.ops.convert_to_numpy(y) for y in reference(x, training=False)]


def assert_features_equal_layers(model, extractor, x):
    info = keras_resnet.feature_info(model)
    features = extractor(x, training=False)
    assert list(features) == list(info)
    expected = layer_outputs(model, [info[stage].layer for stage in info], x)
    for stage, value in zip(info, expected):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(features[stage]), value)


@pytest.mark.parametrize("kind", list(TINY))
def test_stage_names_shapes_strides_and_values_equal_the_networks_layers(kind):
    keras.utils.set_random_seed(0)
    kwargs, size, expected = TINY[kind]
    model = keras_resnet.ResNet(**kwargs, input_shape=(size, size, 3), input_mean=127.5)
    info = keras_resnet.feature_info(model)
    assert {stage: (i.layer, i.channels, i.stride) for stage, i in info.items()} == expected
    extractor = keras_resnet.feature_extractor(model)
    assert extractor.name == f"{model.name}_features"
    x = pixels(size)
    features = extractor.predict(x, verbose=0)
    assert list(features) == list(expected)
    for stage, (_, channels, stride) in expected.items():
        assert features[stage].shape == (2, size // stride, size // stride, channels)
    assert_features_equal_layers(model, extractor, x)


# The README's and the docstring's table: full-size networks (shapes only, nothing runs).
@pytest.mark.parametrize(
    "builder, size, shapes",
    [
        (keras_resnet.ResNet20, 32, [(32, 32, 16), (16, 16, 32), (8, 8, 64)]),
        (keras_resnet.ResNet110, 32, [(32, 32, 16), (16, 16, 32), (8, 8, 64)]),
        (keras_resnet.ResNet18, 224, [(56, 56, 64), (28, 28, 128), (14, 14, 256), (7, 7, 512)]),
        (keras_resnet.ResNet34, 224, [(56, 56, 64), (28, 28, 128), (14, 14, 256), (7, 7, 512)]),
        (keras_resnet.ResNet50, 224, [(56, 56, 256), (28, 28, 512), (14, 14, 1024), (7, 7, 2048)]),
        (
            keras_resnet.ResNet101,
            224,
            [(56, 56, 256), (28, 28, 512), (14, 14, 1024), (7, 7, 2048)],
        ),
    ],
)
def test_documented_shapes_and_strides_of_the_papers_networks(builder, size, shapes):
    model = builder(include_top=False, input_shape=(size, size, 3))
    info = keras_resnet.feature_info(model)
    assert [(size // i.stride, size // i.stride, i.channels) for i in info.values()] == shapes
    extractor = keras_resnet.feature_extractor(model)
    assert [tuple(shape[1:]) for shape in extractor.output_shape] == shapes


@pytest.mark.parametrize("kwargs, size", [(dict(depth=18), 70), (dict(depth=8, stem="cifar"), 30)])
def test_sizes_that_are_not_a_multiple_of_the_stride_round_up(kwargs, size):
    model = keras_resnet.ResNet(**kwargs, input_shape=(size, size, 3))
    extractor = keras_resnet.feature_extractor(model)
    info = keras_resnet.feature_info(model).values()
    expected = [-(-size // i.stride) for i in info]
    assert [shape[1] for shape in extractor.output_shape] == expected


def test_pretrained_features_equal_the_layers_and_feed_the_classifier():
    model = keras_resnet.ResNet20(weights="cifar10")
    extractor = keras_resnet.feature_extractor(model, trainable=False)
    x = pixels(32, batch=4)
    assert_features_equal_layers(model, extractor, x)
    # The classifier of the trained network reads the pooled conv4 features.
    conv4 = keras.ops.convert_to_numpy(extractor(x)["conv4"])
    logits = conv4.mean(axis=(1, 2)) @ model.get_layer("predictions").kernel.numpy()
    logits = logits + model.get_layer("predictions").bias.numpy()
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    np.testing.assert_allclose(probabilities, model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_a_model_loaded_from_a_keras_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_resnet.ResNet(8, stem="cifar", include_top=False, pooling="avg")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = pixels(32)
    extractor = keras_resnet.feature_extractor(loaded, ["conv3", "conv4"])
    original = keras_resnet.feature_extractor(model)(x)
    for stage, value in extractor(x).items():
        np.testing.assert_allclose(value, original[stage], rtol=1e-6, atol=1e-6)
    # The extractor itself saves and loads, dict outputs and all.
    extractor.save(str(tmp_path / "features.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "features.keras"))
    again = reloaded.predict(x, verbose=0)
    assert list(again) == ["conv3", "conv4"]
    np.testing.assert_allclose(again["conv4"], original["conv4"], rtol=1e-5, atol=1e-5)


def test_keras_applications_resnet_has_the_same_stages():
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    ours = keras_resnet.ResNet50(include_top=False, input_shape=(64, 64, 3))
    assert keras_resnet.feature_info(model) == keras_resnet.feature_info(ours)
    # ResNet V2 halves the resolution at the end of a stage: its strides are its own.
    v2 = keras.applications.ResNet50V2(weights=None, include_top=False, input_shape=(64, 64, 3))
    info = keras_resnet.feature_info(v2)
    assert [i.stride for i in info.values()] == [8, 16, 32, 32]
    extractor = keras_resnet.feature_extractor(v2)
    assert [shape[1] for shape in extractor.output_shape] == [64 // i.stride for i in info.values()]
    assert keras_resnet.feature_info(extractor) == info  # the extractor has no post_bn
    unknown = keras.applications.ResNet50V2(weights=None, include_top=False)  # (None, None, 3)
    assert keras_resnet.feature_info(unknown) == info


def test_stages_selects_outputs_in_stage_order():
    model = keras_resnet.ResNet(8, stem="cifar")
    x = pixels(32)
    extractor = keras_resnet.feature_extractor(model, ["conv4", "conv2"])
    assert list(extractor.predict(x, verbose=0)) == ["conv2", "conv4"]
    assert list(keras_resnet.feature_extractor(model, "conv3").predict(x, verbose=0)) == ["conv3"]


def frozen_setup(trainable):
    keras.utils.set_random_seed(0)
    model = keras_resnet.ResNet(8, stem="cifar", input_mean=127.5, input_std=127.5)
    backbone = keras_resnet.feature_extractor(model, trainable=trainable)
    pooled = keras.layers.GlobalAveragePooling2D()(backbone.output["conv4"])
    head = keras.Model(backbone.input, keras.layers.Dense(3, name="probe")(pooled))
    head.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model, backbone, head


def batch_norm_statistics(model):
    return [
        w.numpy().copy()
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in (layer.moving_mean, layer.moving_variance)
    ]


def test_frozen_backbone_runs_batch_norm_in_inference_mode():
    model, backbone, head = frozen_setup(trainable=False)
    assert not backbone.trainable and backbone.trainable_weights == []
    # The frozen layers are the model's own; its classifier is left trainable.
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]
    x = pixels(32, batch=8)
    y = np.arange(8) % 3
    training = backbone(x, training=True)
    inference = backbone(x, training=False)
    for stage in training:
        np.testing.assert_array_equal(training[stage], inference[stage])
    statistics, kernels = batch_norm_statistics(model), [w.numpy() for w in backbone.weights]
    probe = head.get_layer("probe").kernel.numpy().copy()
    head.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for before, after in zip(statistics + kernels, batch_norm_statistics(model) + backbone.weights):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))
    assert not np.array_equal(probe, head.get_layer("probe").kernel.numpy())


def test_trainable_backbone_trains_and_updates_its_statistics():
    model, backbone, head = frozen_setup(trainable=None)
    assert len(backbone.trainable_weights) == len(
        [w for w in model.trainable_weights if not w.path.startswith("predictions")]
    )
    statistics = batch_norm_statistics(model)
    head.fit(pixels(32, batch=8), np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(statistics, batch_norm_statistics(model)))
    keras_resnet.feature_extractor(model, trainable=False)
    keras_resnet.feature_extractor(model, trainable=True)
    assert all(layer.trainable for layer in model.layers)


@pytest.mark.parametrize(
    "stages, message",
    [
        ("conv5", "Unknown stage 'conv5' for 'resnet8': its stages are conv2, conv3, conv4."),
        (["conv1", "conv4", "p5"], "Unknown stages 'conv1', 'p5' for 'resnet8'"),
        ([], "stages is empty: give None for all or some of conv2, conv3, conv4."),
        (4, "stages must be None, a stage name or a list of them (conv2, conv3, conv4), rec"),
    ],
)
def test_a_bad_stage_names_it_and_the_stages_allowed(stages, message):
    model = keras_resnet.ResNet(8, stem="cifar")
    with pytest.raises(ValueError, match=re.escape(message)):
        keras_resnet.feature_extractor(model, stages)


def test_other_bad_arguments():
    model = keras_resnet.ResNet(8, stem="cifar")
    with pytest.raises(ValueError, match="trainable must be None, True or False, received 0"):
        keras_resnet.feature_extractor(model, trainable=0)
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)], name="mlp")
    with pytest.raises(ValueError, match="Model 'mlp' has no layer named convS_blockB_out"):
        keras_resnet.feature_extractor(other)
