import functools
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from keras_resnet import specs


# Trainable parameters. CIFAR: the paper's Table 6 (0.27M .. 19.4M), exact
# figures from akamaster/pytorch_resnet_cifar10 (option A). ImageNet option B:
# torchvision's resnet18..152 (no conv biases; v1 and v1.5 count the same).
PAPER_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
# Table 1's multiply-adds (x 10^9) for the ImageNet nets; ~41M for CIFAR ResNet-20.
PAPER_MACS = {
    "resnet18": 1.8,
    "resnet34": 3.6,
    "resnet50": 3.8,
    "resnet101": 7.6,
    "resnet152": 11.3,
}


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def projection_params(depth, stem, option):
    """Parameters option B or C adds to option A, computed from the paper's tables."""
    spec = specs.make_spec(depth, stem)
    expansion = 4 if spec.block == "bottleneck" else 1
    channels, extra = spec.base_width, 0
    for stage, (blocks, width) in enumerate(zip(spec.stage_blocks, spec.stage_widths)):
        for index in range(blocks):
            out = width * expansion
            changes = (stage > 0 and index == 0) or channels != out
            if option == "C" or changes:
                extra += channels * out + 2 * out  # 1x1 conv + BN scale and offset
            channels = out
    return extra


class Zoo(dict):
    """`{name: FlopsReport}` that builds each registered network once, when first asked for,
    so the default suite builds only what its tests read (ResNet-1202 alone takes 20 s)."""

    def __missing__(self, name):
        limit = sys.getrecursionlimit()
        self[name] = keras_resnet.flops.zoo_reports([name])[name]
        assert sys.getrecursionlimit() == limit  # the builders leave the caller's limit as it was
        return self[name]


@pytest.fixture(scope="module")
def zoo():
    return Zoo()


def test_registry_lists_every_paper_network():
    expected = {f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202, 18, 34, 50, 101, 152)}
    expected |= {f"plain{d}" for d in (20, 32, 44, 56, 110, 18, 34, 50, 101, 152)}
    assert set(keras_resnet.list_models()) == expected
    for name in expected:
        display = name.replace("resnet", "ResNet").replace("plain", "Plain")
        assert getattr(keras_resnet, display).__name__ == display
        spec = keras_resnet.models.SPECS[name]
        assert spec.name == name and spec.plain == name.startswith("plain")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name == "resnet1202" else name
        for name in sorted(PAPER_PARAMS)
    ],
)
def test_trainable_parameters_are_exact(zoo, name):
    assert zoo[name].trainable_params == PAPER_PARAMS[name]


@functools.lru_cache(maxsize=None)
def option_a_params(depth):
    """Trainable parameters of ResNet-`depth` with option A shortcuts (built once)."""
    count = trainable(keras_resnet.ResNet(depth, shortcut="A"))
    keras.backend.clear_session()
    return count


@pytest.mark.parametrize(
    "depth",
    # The others repeat these blocks at other depths: slow, to keep the default suite short.
    [20, 18, 50]
    + [pytest.param(d, marks=pytest.mark.slow) for d in (32, 44, 56, 110, 34, 101, 152)],
)
def test_plain_net_has_option_a_parameters(zoo, depth):
    assert zoo[f"plain{depth}"].trainable_params == option_a_params(depth)


@pytest.mark.parametrize(
    "depth",
    # The others repeat the blocks of these at other depths (a minute of builds).
    [20, 18, 50]
    + [pytest.param(d, marks=pytest.mark.slow) for d in (32, 44, 56, 110, 34, 101, 152, 1202)],
)
def test_options_b_and_c_add_exactly_their_projections(depth):
    stem = specs.resolve_stem(depth, None)
    for option in "BC":
        extra = trainable(keras_resnet.ResNet(depth, shortcut=option)) - option_a_params(depth)
        keras.backend.clear_session()
        assert extra == projection_params(depth, stem, option) > 0


@pytest.mark.parametrize("name", sorted(PAPER_MACS))
def test_imagenet_flops_match_table_1(zoo, name):
    assert zoo[name].macs / 1e9 == pytest.approx(PAPER_MACS[name], rel=0.03)


def test_cifar_resnet20_flops_about_41_million(zoo):
    assert zoo["resnet20"].macs == pytest.approx(41e6, rel=0.02)


def test_bottleneck_stride_3x3_is_v1_5():
    v1 = keras_resnet.count_flops(keras_resnet.ResNet50())
    v15_model = keras_resnet.ResNet50(bottleneck_stride="3x3")
    v15 = keras_resnet.count_flops(v15_model)
    assert v15.trainable_params == v1.trainable_params
    assert v15.macs / 1e9 == pytest.approx(4.1, rel=0.02)  # torchvision's 4.09 GMACs
    assert v15_model.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert v15_model.get_layer("conv3_block1_2_conv").strides == (2, 2)
    v1_model = keras_resnet.ResNet50()
    assert v1_model.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert v1_model.get_layer("conv3_block1_2_conv").strides == (1, 1)


@pytest.mark.slow  # builds all 21 networks (a minute)
def test_readme_table_is_generated_from_the_code(zoo):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    table = keras_resnet.flops.model_table({name: zoo[name] for name in keras_resnet.list_models()})
    assert table in readme


def layer_names(model):
    """Names of a model's layers, less its input layer (named per session)."""
    return {l.name for l in model.layers if not isinstance(l, keras.layers.InputLayer)}


def test_resnet50_layer_names_match_keras_applications():
    ours = layer_names(keras_resnet.ResNet50())
    assert ours == layer_names(keras.applications.ResNet50(weights=None))
    assert len(ours) == 176


def test_stage_output_shapes():
    model = keras_resnet.ResNet50()
    shapes = {
        "conv1_relu": (112, 112, 64),
        "pool1_pool": (56, 56, 64),
        "conv2_block3_out": (56, 56, 256),
        "conv3_block4_out": (28, 28, 512),
        "conv4_block6_out": (14, 14, 1024),
        "conv5_block3_out": (7, 7, 2048),
    }
    for name, shape in shapes.items():
        assert model.get_layer(name).output.shape[1:] == shape
    model = keras_resnet.ResNet20()
    shapes = {
        "conv1_relu": (32, 32, 16),
        "conv2_block3_out": (32, 32, 16),
        "conv3_block3_out": (16, 16, 32),
        "conv4_block3_out": (8, 8, 64),
    }
    for name, shape in shapes.items():
        assert model.get_layer(name).output.shape[1:] == shape
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("depth", [20, 18, 50])
def test_graph_is_conv_bn_relu_with_add_before_last_relu(depth):
    model = keras_resnet.ResNet(depth)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs and all(not conv.use_bias for conv in convs)
    for conv in convs:
        prefix = conv.name[: -len("_conv")]
        bn = model.get_layer(f"{prefix}_bn")
        assert isinstance(bn, keras.layers.BatchNormalization)
        assert bn.input is conv.output
    adds = [l for l in model.layers if isinstance(l, keras.layers.Add)]
    assert len(adds) == sum(specs.make_spec(depth).stage_blocks)
    for add in adds:
        out = model.get_layer(add.name.replace("_add", "_out"))
        assert isinstance(out, keras.layers.ReLU) and out.input is add.output
    assert not any(isinstance(l, keras.layers.Lambda) for l in model.layers)
    assert isinstance(model.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)


def test_plain_net_has_no_addition_and_same_layer_names():
    plain = keras_resnet.Plain20()
    assert not any(isinstance(l, keras.layers.Add) for l in plain.layers)
    residual = layer_names(keras_resnet.ResNet20())
    plain_names = layer_names(plain)
    assert plain_names <= residual
    assert residual - plain_names == {n for n in residual if n.endswith(("_add", "_zeropad"))}


def test_option_a_uses_zero_pad_layer_only_where_shape_changes():
    model = keras_resnet.ResNet20()
    zeropads = [l.name for l in model.layers if isinstance(l, keras_resnet.ZeroPadShortcut)]
    assert zeropads == ["conv3_block1_0_zeropad", "conv4_block1_0_zeropad"]
    # Option C projects in every block of a CIFAR net.
    model = keras_resnet.ResNet20(shortcut="C")
    assert len([l for l in model.layers if l.name.endswith("_0_conv")]) == 9


def test_he_initialisation_fan_out():
    keras.utils.set_random_seed(0)
    kernel = keras_resnet.ResNet20().get_layer("conv4_block3_2_conv").kernel.numpy()
    expected_std = np.sqrt(2.0 / (3 * 3 * 64))  # fan-out: k * k * filters
    assert kernel.std() == pytest.approx(expected_std, rel=0.05)
    assert kernel.mean() == pytest.approx(0.0, abs=expected_std / 20)


def test_named_constructor_keyword_arguments_win():
    model = keras_resnet.ResNet20(classes=100, input_shape=(40, 40, 3), name="mine")
    assert model.output_shape == (None, 100) and model.input_shape == (None, 40, 40, 3)
    assert model.name == "mine"
    model = keras_resnet.ResNet18(shortcut="A", classes=10, input_shape=(64, 64, 3))
    assert not any(l.name.endswith("_0_conv") for l in model.layers)
    assert keras_resnet.build_model("ResNet56").name == "resnet56"
    assert keras_resnet.Plain56().name == "plain56"


def test_cifar_bottleneck_depth_9n_plus_2():
    model = keras_resnet.ResNet(29, stem="cifar", block="bottleneck")
    assert model.get_layer("conv4_block3_out").output.shape[1:] == (8, 8, 256)
    assert model.get_layer("conv2_block1_1_conv").strides == (1, 1)


def test_keras_applications_head_semantics():
    tiny = dict(depth=8, stem="cifar")
    # Without the classifier any size, as keras.applications; with it the paper's.
    features = keras_resnet.ResNet(**tiny, include_top=False)
    assert features.input_shape == (None, None, None, 3)
    assert features.output_shape == (None, None, None, 64)
    assert features.predict(np.zeros((1, 40, 56, 3)), verbose=0).shape == (1, 10, 14, 64)
    assert keras_resnet.ResNet(**tiny).input_shape == (None, 32, 32, 3)
    per_pixel = keras_resnet.ResNet(**tiny, include_top=False, input_mean=np.ones((32, 32, 3)))
    assert per_pixel.output_shape == (None, 8, 8, 64)  # a per-pixel mean fixes the size
    assert keras_resnet.ResNet(**tiny, include_top=False, pooling="avg").output_shape == (None, 64)
    model = keras_resnet.ResNet(**tiny, include_top=False, pooling="max")
    assert model.layers[-1].name == "max_pool" and model.output_shape == (None, 64)
    logits = keras_resnet.ResNet(**tiny, classifier_activation=None)
    x = np.random.RandomState(0).normal(size=(2, 32, 32, 3)).astype("float32")
    assert not np.allclose(logits.predict(x, verbose=0).sum(axis=1), 1.0)
    probs = keras_resnet.ResNet(**tiny)
    np.testing.assert_allclose(probs.predict(x, verbose=0).sum(axis=1), 1.0, rtol=1e-5)


def test_input_tensor_and_variable_input_size():
    inputs = keras.Input((48, 48, 3), name="pixels")
    model = keras_resnet.ResNet(8, stem="cifar", input_tensor=inputs)
    assert model.inputs[0] is inputs and model.input_shape == (None, 48, 48, 3)
    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(None, None, 3))
    assert model.predict(np.zeros((1, 20, 28, 3)), verbose=0).shape == (1, 10)


def test_every_weight_gets_a_gradient():
    keras.utils.set_random_seed(1)
    x = np.random.RandomState(0).normal(size=(4, 16, 16, 3)).astype("float32")
    y = np.array([0, 1, 2, 3])
    for kwargs in (
        {"shortcut": "A"},
        {"shortcut": "B"},
        {"shortcut": "C"},
        {"plain": True},
        {"block": "bottleneck", "depth": 11},
    ):
        model = keras_resnet.ResNet(
            **{"depth": 8, "stem": "cifar", "input_shape": (16, 16, 3), **kwargs}
        )
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(y, out)
        grads = tape.gradient(loss, model.trainable_weights)
        for weight, grad in zip(model.trainable_weights, grads):
            assert grad is not None and np.abs(grad.numpy()).max() > 0, (kwargs, weight.path)


def test_weight_decay_is_the_papers_gradient_on_every_weight():
    keras.utils.set_random_seed(2)
    model = keras_resnet.ResNet(8, stem="cifar", weight_decay=1e-4)
    # One decay term per trainable weight: conv kernels, BN gamma/beta, dense kernel/bias.
    assert len(model.losses) == len(model.trainable_weights)
    with tf.GradientTape() as tape:
        decay = tf.add_n(model.losses)
    grads = tape.gradient(decay, model.trainable_weights)
    for weight, grad in zip(model.trainable_weights, grads):
        np.testing.assert_allclose(grad.numpy(), 1e-4 * weight.numpy(), rtol=1e-5, atol=1e-12)
    # A numeric (central difference) check of the regularizer itself.
    reg, w, eps = keras_resnet.WeightDecay(1e-4), np.array([0.3, -1.2, 2.0]), 1e-3
    for i in range(3):
        step = np.eye(3)[i] * eps
        numeric = (float(reg(w + step)) - float(reg(w - step))) / (2 * eps)
        assert numeric == pytest.approx(1e-4 * w[i], rel=1e-4)
    assert not keras_resnet.ResNet(8, stem="cifar", weight_decay=0).losses


def test_input_normalization_carries_the_mean_inside_the_model():
    mean = np.random.RandomState(0).uniform(100, 150, (32, 32, 3)).astype("float32")
    model = keras_resnet.ResNet(8, stem="cifar", input_mean=mean, input_std=255.0)
    layer = model.get_layer("input_normalization")
    np.testing.assert_allclose(layer.mean.numpy(), mean)
    pixels = np.full((1, 32, 32, 3), 200.0, "float32")
    np.testing.assert_allclose(layer(pixels)[0], (200.0 - mean) / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="input_mean of shape \\(5,\\)"):
        keras_resnet.ResNet(8, stem="cifar", input_mean=np.zeros(5))


def test_mixed_precision_keeps_the_classifier_in_float32():
    keras.config.set_dtype_policy("mixed_float16")
    model = keras_resnet.ResNet(8, stem="cifar")
    assert model.get_layer("conv1_conv").compute_dtype == "float16"
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert model.output.dtype == "float32"


def test_weights_argument_loads_a_weights_file(tmp_path):
    keras.utils.set_random_seed(3)
    source = keras_resnet.ResNet(8, stem="cifar")
    path = str(tmp_path / "resnet8.weights.h5")
    source.save_weights(path)
    loaded = keras_resnet.ResNet(8, stem="cifar", weights=path)
    x = np.random.RandomState(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6
    )
    # A trained model's file (every run's checkpoint) holds its input normalization, which
    # the model built from it takes too: Keras alone would load the rest and drop it.
    mean = np.random.RandomState(1).uniform(100, 150, (32, 32, 3)).astype("float32")
    trained = keras_resnet.ResNet(8, stem="cifar", input_mean=mean, input_std=255.0)
    trained.save_weights(path)
    loaded = keras_resnet.ResNet(8, stem="cifar", weights=path)
    pixels = 255 * x
    np.testing.assert_allclose(
        loaded.predict(pixels, verbose=0), trained.predict(pixels, verbose=0), atol=1e-6
    )
    np.testing.assert_array_equal(loaded.get_layer("input_normalization").mean, mean)
    with pytest.raises(ValueError, match="come with their own input normalization"):
        keras_resnet.ResNet(8, stem="cifar", weights=path, input_mean=mean)
    # Its per-pixel mean takes 32x32 only, and without the classifier too.
    headless = keras_resnet.ResNet(8, stem="cifar", weights=path, include_top=False)
    assert headless.input_shape == (None, 32, 32, 3)
    with pytest.raises(ValueError) as error:
        keras_resnet.ResNet(8, stem="cifar", weights=path, input_shape=(64, 64, 3))
    assert str(error.value) == (
        f"input_shape (64, 64, 3) does not fit the weights from {path!r}: they take 32x32 "
        "inputs with 3 channels only (their input_mean has shape (32, 32, 3)). "
        "Use input_shape=(32, 32, 3)."
    )
    per_channel = keras_resnet.ResNet(8, stem="cifar", input_mean=[1.0, 2.0, 3.0])
    per_channel.save_weights(path)  # any size, but three channels
    headless = keras_resnet.ResNet(8, stem="cifar", weights=path, include_top=False)
    assert headless.input_shape == (None, None, None, 3)
    with pytest.raises(ValueError, match=r"take inputs with 3 channels only .*\(16, 16, 3\)\.$"):
        keras_resnet.ResNet(8, stem="cifar", weights=path, input_shape=(16, 16, 1))


def data_formats(model):
    return {layer.data_format for layer in model.layers if hasattr(layer, "data_format")}


def test_every_layer_is_channels_last_whatever_the_global_setting(tmp_path):
    builds = {
        "resnet20": lambda: keras_resnet.ResNet20(),
        "resnet18": lambda: keras_resnet.ResNet18(input_shape=(64, 64, 3), classes=5),
        "bottleneck": lambda: keras_resnet.ResNet(
            50, input_shape=(64, 64, 3), include_top=False, pooling="max"
        ),
        "plain": lambda: keras_resnet.Plain20(
            include_top=False, pooling="avg", input_shape=(32, 32, 3)
        ),
    }
    for name, build in builds.items():
        keras.config.set_image_data_format("channels_last")
        keras.utils.set_random_seed(5)
        reference = build()
        path = str(tmp_path / f"{name}.weights.h5")
        reference.save_weights(path)
        keras.config.set_image_data_format("channels_first")
        model = build()
        assert data_formats(model) == {"channels_last"}, name
        assert model.output_shape == reference.output_shape
        model.load_weights(path)
        x = np.random.RandomState(0).uniform(0, 255, (2, *reference.input_shape[1:]))
        x = x.astype("float32")
        np.testing.assert_allclose(
            model(x, training=False), reference(x, training=False), rtol=1e-5, atol=1e-6
        )


def test_config_round_trip():
    model = keras_resnet.ResNet(8, stem="cifar", input_mean=np.zeros(3), input_std=255.0)
    clone = keras.Model.from_config(model.get_config())
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert trainable(clone) == trainable(model)


LOAD_AND_PREDICT = textwrap.dedent(
    """
    import sys
    import numpy as np, keras
    import keras_resnet  # registers the package's serializable layers
    model = keras.saving.load_model(sys.argv[1], safe_mode=True)
    np.save(sys.argv[3], keras.ops.convert_to_numpy(model.predict(np.load(sys.argv[2]), verbose=0)))
    print(keras.backend.backend())
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_keras_file_reloads_in_a_fresh_process_with_identical_predictions(tmp_path, backend):
    keras.utils.set_random_seed(4)
    mean = np.random.RandomState(1).uniform(100, 150, (32, 32, 3)).astype("float32")
    model = keras_resnet.ResNet(14, stem="cifar", input_mean=mean, input_std=255.0, shortcut="A")
    x = np.random.RandomState(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([1, 2, 3]), epochs=1, verbose=0)  # moves BN statistics off their init
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.getcwd()}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_PREDICT,
            path,
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == backend
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-4, atol=1e-5)


BUILD_TRAIN_SAVE = textwrap.dedent(
    """
    import sys
    import numpy as np, keras
    import keras_resnet
    limit = sys.getrecursionlimit()
    model = keras_resnet.build_model(sys.argv[1])
    x = np.random.RandomState(0).uniform(0, 255, (2, *model.input_shape[1:])).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
    loss = float(model.train_on_batch(x, np.array([0, 1])))
    model.save(sys.argv[2])
    np.save(sys.argv[3], x)
    # Batch statistics: an untrained ResNet-1202's moving statistics overflow at inference.
    np.save(sys.argv[4], keras.ops.convert_to_numpy(model(x, training=True)))
    print(np.isfinite(loss), sys.getrecursionlimit() == limit)
    """
)
LOAD = textwrap.dedent(
    """
    import sys
    import numpy as np, keras
    import keras_resnet
    model = keras.saving.load_model(sys.argv[1], safe_mode=True)
    clone = keras.models.clone_model(model)  # walks the graph too
    np.save(sys.argv[3], keras.ops.convert_to_numpy(model(np.load(sys.argv[2]), training=True)))
    print(type(model).__name__, type(clone).__name__, len(clone.layers) == len(model.layers))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("name", keras_resnet.list_models())
def test_every_named_network_trains_a_step_saves_and_reloads_in_fresh_processes(tmp_path, name):
    paths = [str(tmp_path / f) for f in ("model.keras", "x.npy", "expected.npy", "reloaded.npy")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    built = subprocess.run(
        [sys.executable, "-c", BUILD_TRAIN_SAVE, name, *paths[:3]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.split()[-2:] == ["True", "True"]  # finite loss; recursion limit untouched
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD, paths[0], paths[1], paths[3]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split()[-3:] == ["ResNetModel", "ResNetModel", "True"]
    np.testing.assert_allclose(np.load(paths[3]), np.load(paths[2]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 21, "stem": "cifar"}, "Invalid depth 21 for the CIFAR stem"),
        ({"depth": 19, "stem": "imagenet"}, "Invalid depth 19 for the ImageNet stem"),
        ({"depth": 19}, "Cannot infer the stem for depth=19"),
        ({"depth": 20, "shortcut": "D"}, "Unknown shortcut 'D'. Allowed: 'A', 'B', 'C'"),
        ({"depth": 20, "stem": "resnet"}, "Unknown stem 'resnet'. Allowed: 'cifar', 'imagenet'"),
        ({"depth": 20, "input_shape": (3, 3, 3)}, "too small for the cifar stem"),
        ({"depth": 18, "input_shape": (16, 16, 3)}, "too small for the imagenet stem"),
        ({"depth": 18, "weights": "imagenet"}, "exist for ResNet-50, 101 and 152"),
        (
            {"depth": 1202, "weights": "cifar10"},
            "exist for ResNet-20, 32, 44, 56 and 110 with the CIFAR",
        ),
        ({"depth": 18, "weights": "missing.weights.h5"}, "does not exist"),
        ({"depth": 20, "include_top": False, "pooling": "median"}, "Unknown pooling 'median'"),
        ({"depth": 20, "pooling": "max"}, "needs include_top=False"),
        ({"depth": 20, "plain": True, "shortcut": "B"}, "plain network has no shortcuts"),
        ({"depth": 20, "bottleneck_stride": "3x3"}, "applies to bottleneck blocks only"),
        ({"depth": 50, "bottleneck_stride": "v2"}, "Unknown bottleneck_stride 'v2'"),
        ({"depth": 50, "block": "basic"}, "uses 'bottleneck' blocks"),
        ({"depth": 20, "block": "wide"}, "Unknown block 'wide'"),
        ({"depth": 20, "classes": 0}, "classes must be a positive int"),
        ({"depth": 20, "weight_decay": -1}, "weight_decay must be a finite number >= 0"),
        ({"depth": 20, "bn_epsilon": float("nan")}, "bn_epsilon must be a finite number >= 0"),
        ({"depth": 20, "bn_momentum": float("inf")}, "bn_momentum must be a finite number"),
        ({"depth": "20"}, "depth must be an int"),
        ({"depth": 20, "base_width": 0}, "base_width must be a positive int"),
    ],
)
def test_bad_input_raises_before_any_layer_is_built(monkeypatch, kwargs, message):
    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built before the arguments were validated")

    monkeypatch.setattr(keras, "Input", no_layers)
    with pytest.raises(ValueError, match=message):
        keras_resnet.ResNet(**kwargs)


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="Unknown model 'resnet21'. Allowed: resnet20"):
        keras_resnet.build_model("resnet21")


def test_freeze_backbone_trains_the_classifier_and_the_named_stages_only():
    model = keras_resnet.ResNet20(weights=None)

    def trainable():
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    keras_resnet.models.freeze_backbone(model)
    assert trainable() == 64 * 10 + 10  # the classifier
    # conv4: 3x3 convs 32->64 and five 64->64, their batch norms' gamma and beta
    keras_resnet.models.freeze_backbone(model, "conv4")
    assert trainable() == 9 * 32 * 64 + 5 * 9 * 64 * 64 + 6 * 2 * 64 + 650
    with pytest.raises(ValueError, match="'conv5': resnet20 has the stages conv1, conv2, conv3"):
        keras_resnet.models.freeze_backbone(model, "conv5")
