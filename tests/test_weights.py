"""Pretrained weights: keras.applications files, PyTorch checkpoints, the packaged CIFAR-10 nets.

Every conversion is checked against the original framework's forward pass on the
same pixels: keras.applications' model after its `preprocess_input`, and PyTorch
networks in the torchvision and akamaster layouts (tests/torch_reference.py).
"""

import hashlib
import json
import pathlib
import sys

import keras
import numpy as np
import pytest
from conftest import REPO

import keras_resnet
from keras_resnet import data as data_lib
from keras_resnet import evaluation, specs
from keras_resnet import weights as weights_lib
from keras_resnet.weights import keras_applications, npz, packaged

PRETRAINED = REPO.parent / "shared" / "data" / "pretrained"
# Top-1 error of akamaster's checkpoints on the original CIFAR-10 test batch, as akamaster's
# README publishes it (the `best_prec1` stored in the checkpoints, their best epoch's test
# accuracy, gives 8.22/7.22/6.86/6.38%).
PUBLISHED_ERROR = {20: 0.0827, 32: 0.0737, 44: 0.0690, 56: 0.0661}


def close(ours, reference, tolerance=1e-4):
    """Largest difference relative to the reference's largest magnitude."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape
    return np.max(np.abs(ours - reference)) <= tolerance * np.max(np.abs(reference))


# --- keras.applications ---------------------------------------------------------------


def randomize_keras(model, seed=0):
    """Random conv biases, batch-norm statistics, scales and offsets; He-scaled kernels."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            values = [
                rng.uniform(0.5, 1.5, shape),
                rng.normal(0, 0.1, shape),
                rng.normal(0, 0.1, shape),
                rng.uniform(0.5, 1.5, shape),
            ]
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.kernel
            scale = np.sqrt(1.0 / np.prod(kernel.shape[:-1]))
            values = [rng.normal(0, scale, kernel.shape), rng.normal(0, 0.1, layer.bias.shape)]
        else:
            continue
        layer.set_weights([v.astype("float32") for v in values])
    return model


def save_legacy_h5(model, path):
    """The legacy format keras.applications downloads (Keras 2's HDF5 weights)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def keras_applications_model(depth, include_top, **kwargs):
    return getattr(keras.applications, f"ResNet{depth}")(
        weights=None, include_top=include_top, **kwargs
    )


def reference_outputs(model, pixels):
    return model.predict(keras.applications.resnet.preprocess_input(pixels.copy()), verbose=0)


def test_keras_applications_urls_and_hashes_are_keras_own():
    from keras.src.applications import resnet

    assert keras_applications.URL == resnet.BASE_WEIGHTS_PATH
    for depth, hashes in keras_applications.HASHES.items():
        assert hashes == resnet.WEIGHTS_HASHES[f"resnet{depth}"]


def check_keras_applications(depth, tmp_path):
    source = randomize_keras(keras_applications_model(depth, True, classifier_activation=None))
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    reference = reference_outputs(source, pixels)
    legacy = save_legacy_h5(source, tmp_path / "legacy.h5")
    keras3 = str(tmp_path / "resnet.weights.h5")
    source.save_weights(keras3)
    for path in (legacy, keras3):
        ours = keras_resnet.build_model(f"resnet{depth}", weights=path, classifier_activation=None)
        assert close(ours.predict(pixels, verbose=0), reference), path


@pytest.mark.slow
@pytest.mark.parametrize("depth", [50, 101, 152])
def test_keras_applications_files_in_both_formats_give_its_outputs(depth, tmp_path):
    check_keras_applications(depth, tmp_path)


def test_keras_applications_without_top_any_size(tmp_path):
    source = randomize_keras(keras_applications_model(50, False, input_shape=(None, None, 3)))
    path = str(tmp_path / "notop.weights.h5")
    source.save_weights(path)
    pixels = np.random.default_rng(2).uniform(0, 255, (1, 97, 131, 3)).astype("float32")
    features = reference_outputs(source, pixels)
    ours = keras_resnet.ResNet50(
        weights=path, include_top=False, pooling="avg", input_shape=(None, None, 3)
    )
    assert close(ours.predict(pixels, verbose=0), features.mean(axis=(1, 2)))
    with pytest.raises(ValueError, match="no classifier.*include_top=False"):
        keras_resnet.ResNet50(weights=path)


def test_imagenet_weights_come_from_the_keras_cache_without_network(
    tmp_path, monkeypatch, no_network
):
    # Keras reads $KERAS_HOME once, as it loads: point its cache here instead.
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path / "keras"))
    source = randomize_keras(keras_applications_model(50, False, input_shape=(None, None, 3)))
    name = keras_applications.file_name(50, include_top=False)
    assert name == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    (tmp_path / "keras" / "models").mkdir(parents=True)
    cached = save_legacy_h5(source, tmp_path / "keras" / "models" / name)
    digest = hashlib.md5(open(cached, "rb").read()).hexdigest()
    # A file whose hash is keras.applications' own is reused; this one has its own hash.
    monkeypatch.setitem(keras_applications.HASHES, 50, ("unused", digest))
    pixels = np.random.default_rng(3).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    ours = keras_resnet.ResNet50(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    assert close(ours.predict(pixels, verbose=0), reference_outputs(source, pixels))

    # Without the file, the error says where it was looked for and what to do.
    with pytest.raises(ValueError, match="resnet50_weights_tf_dim_ordering_tf_kernels.h5.*cache"):
        keras_resnet.ResNet50(weights="imagenet")


def test_imagenet_weights_errors_name_the_model_and_the_alternative():
    with pytest.raises(
        ValueError, match="ResNet-50, 101 and 152 with the ImageNet.*ResNet-18/34.*torchvision"
    ):
        keras_resnet.ResNet18(weights="imagenet")
    with pytest.raises(ValueError, match="1000-class classifier, but classes=10"):
        keras_resnet.ResNet50(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="requested model is a ResNet-50 .*stride on the 3x3"):
        keras_resnet.ResNet50(weights="imagenet", bottleneck_stride="3x3")
    with pytest.raises(ValueError, match="hold a ResNet-50 .*requested model is a Plain-50"):
        keras_resnet.Plain50(weights="imagenet")


# --- PyTorch ----------------------------------------------------------------------------


@pytest.fixture
def torch_reference():
    pytest.importorskip("torch", reason="PyTorch checkpoints need torch (the [pytorch] extra)")
    import torch_reference

    return torch_reference


def save_checkpoint(net, path, wrapped=True):
    """As training scripts save: {'state_dict': ...} with DataParallel's `module.` prefix."""
    import torch

    state = net.state_dict()
    if wrapped:
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "best_prec1": 0.0}
    torch.save(state, path)
    return str(path)


def torch_outputs(net, pixels, torch_reference):
    import torch

    with torch.no_grad():
        return net(torch_reference.normalize(pixels)).numpy()


TORCH_NETS = {
    "resnet18": ("TorchvisionResNet", ("BasicBlock", [2, 2, 2, 2]), {}),
    "resnet34": ("TorchvisionResNet", ("BasicBlock", [3, 4, 6, 3]), {}),
    "resnet50": ("TorchvisionResNet", ("Bottleneck", [3, 4, 6, 3]), {"bottleneck_stride": "3x3"}),
    "resnet101": ("TorchvisionResNet", ("Bottleneck", [3, 4, 23, 3]), {"bottleneck_stride": "3x3"}),
    "resnet152": ("TorchvisionResNet", ("Bottleneck", [3, 8, 36, 3]), {"bottleneck_stride": "3x3"}),
    "resnet20": ("AkamasterResNet", (3,), {}),
    "resnet56": ("AkamasterResNet", (9,), {}),
}


def make_torch_net(name, torch_reference):
    cls, args, kwargs = TORCH_NETS[name]
    if cls == "TorchvisionResNet":
        args = (getattr(torch_reference, args[0]), args[1])
    return torch_reference.randomize(getattr(torch_reference, cls)(*args)), kwargs


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "resnet50",
        "resnet20",
        pytest.param("resnet34", marks=pytest.mark.slow),
        pytest.param("resnet101", marks=pytest.mark.slow),
        pytest.param("resnet152", marks=pytest.mark.slow),
        pytest.param("resnet56", marks=pytest.mark.slow),
    ],
)
def test_pytorch_checkpoint_gives_pytorch_outputs(name, tmp_path, torch_reference):
    net, kwargs = make_torch_net(name, torch_reference)
    cifar = name in ("resnet20", "resnet56")
    shape = (4, 32, 32, 3) if cifar else (2, 64, 80, 3)
    pixels = np.random.default_rng(4).uniform(0, 255, shape).astype("float32")
    reference = torch_outputs(net, pixels, torch_reference)
    path = save_checkpoint(net, tmp_path / f"{name}.pth")
    size = {} if cifar else {"input_shape": (None, None, 3)}
    ours = keras_resnet.build_model(
        name, weights=path, classifier_activation=None, **size, **kwargs
    )
    assert close(ours.predict(pixels, verbose=0), reference)


def test_safetensors_and_headless_pytorch_weights(tmp_path, torch_reference):
    pytest.importorskip("safetensors", reason="the [pytorch] extra installs safetensors")
    from safetensors.torch import save_file

    net, kwargs = make_torch_net("resnet18", torch_reference)
    path = str(tmp_path / "resnet18.safetensors")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    pixels = np.random.default_rng(5).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    ours = keras_resnet.ResNet18(weights=path, classifier_activation=None, input_shape=(64, 64, 3))
    assert close(ours.predict(pixels, verbose=0), torch_outputs(net, pixels, torch_reference))

    features = keras_resnet.ResNet18(
        weights=path, include_top=False, pooling="avg", input_shape=(64, 64, 3)
    )
    import torch

    with torch.no_grad():
        x = torch_reference.normalize(pixels)
        x = torch.nn.functional.max_pool2d(torch.relu(net.bn1(net.conv1(x))), 3, 2, 1)
        for stage in range(1, 5):
            x = getattr(net, f"layer{stage}")(x)
        reference = x.mean((2, 3)).numpy()
    assert close(features.predict(pixels, verbose=0), reference)


def test_pytorch_checkpoint_that_does_not_fit_is_an_error_naming_both(tmp_path, torch_reference):
    net, _ = make_torch_net("resnet50", torch_reference)
    path = save_checkpoint(net, tmp_path / "resnet50.pth", wrapped=False)
    with pytest.raises(ValueError, match="stride on the 3x3.*stride on the 1x1.*'3x3'"):
        keras_resnet.ResNet50(weights=path)
    with pytest.raises(ValueError, match="hold a ResNet-50 .*requested model is a ResNet-101"):
        keras_resnet.ResNet101(weights=path, bottleneck_stride="3x3")
    with pytest.raises(ValueError, match="1000-class classifier, but classes=10"):
        keras_resnet.ResNet50(weights=path, bottleneck_stride="3x3", classes=10)
    cifar, _ = make_torch_net("resnet20", torch_reference)
    path = save_checkpoint(cifar, tmp_path / "resnet20.th")
    with pytest.raises(ValueError, match="hold a ResNet-20 .*requested model is a ResNet-56"):
        keras_resnet.ResNet56(weights=path)
    with pytest.raises(ValueError, match="own input normalization"):
        keras_resnet.ResNet20(weights=path, input_mean=[0.0, 0.0, 0.0])


def test_bad_weights_arguments_say_what_is_allowed(tmp_path):
    with pytest.raises(ValueError, match="does not exist.*'imagenet', 'cifar10'"):
        keras_resnet.ResNet20(weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="'imagenet' or 'cifar10'"):
        keras_resnet.ResNet20(weights=3)
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="unknown format.*\\.h5.*\\.pth"):
        keras_resnet.ResNet20(weights=str(text))
    not_torch = tmp_path / "garbage.pth"
    not_torch.write_bytes(b"\x00not a checkpoint")
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="weights_only=True"):
        keras_resnet.ResNet20(weights=str(not_torch))


# --- the packaged CIFAR-10 weights ------------------------------------------------------


def test_packaged_cifar10_weights_are_small_licensed_and_say_whose_they_are():
    files = [pathlib.Path(net.file) for net in packaged.CIFAR10_NETS.values()]
    assert [f.parent for f in files] == [REPO / "keras_resnet" / "pretrained"] * 5
    assert sum(f.stat().st_size for f in files) < 16e6
    notice = (REPO / "keras_resnet" / "pretrained" / "LICENSE-akamaster").read_text()
    assert "Redistribution" in notice
    for net in packaged.CIFAR10_NETS.values():
        # The file's own metadata names who trained it, how, and its error.
        assert npz.read(net.file).source == net.description
        assert net.trained_by in net.description and f"{100 * net.test_error:.2f}%" in (
            net.description
        )
        if net.trained_by == packaged.AKAMASTER:
            assert net.test_error == PUBLISHED_ERROR[net.depth]
            assert net.licence == "BSD 2-Clause"


def test_our_packaged_cifar10_weights_are_our_committed_runs_final_weights():
    """What ships as this package's own is exactly its Table 6 run's last weights and figure."""
    ours = [n for n in packaged.CIFAR10_NETS.values() if n.trained_by == packaged.KERAS_RESNET]
    assert ours, "no packaged weights of this package's own runs"
    for net in ours:
        folder = REPO / net.origin
        summary = json.loads((folder / "summary.json").read_text())
        assert (summary["steps"], summary["num_test_examples"]) == (64_000, 10_000)
        assert summary["test_top1_error"] == pytest.approx(net.test_error, abs=5e-5)
        # At least as good as akamaster's checkpoint of the same depth, which it replaces.
        assert net.test_error <= PUBLISHED_ERROR.get(net.depth, 1.0)
        shipped, run = npz.read(net.file), npz.read(str(folder / "weights.npz"))
        assert shipped.spec == run.spec == specs.make_spec(net.depth, "cifar")
        assert shipped.layers.keys() == run.layers.keys()
        for name, arrays in run.layers.items():
            for a, b in zip(arrays, shipped.layers[name], strict=True):
                np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(shipped.input_mean, run.input_mean)
        np.testing.assert_array_equal(shipped.input_std, run.input_std)


def test_cifar10_weights_score_on_real_test_images_offline(cifar_dir, no_network):
    """ResNet-20 on the fixture's 250 original CIFAR-10 test images (8.19% on all 10,000)."""
    data = data_lib.load_data("cifar10", str(cifar_dir))
    model = keras_resnet.ResNet20(weights="cifar10")
    report = evaluation.evaluate(
        evaluation.classifier_from_model(model, data.class_names), data, 250
    )
    assert report["num_examples"] == 250
    assert report["top1_error"] < 0.15  # the JPEG copy of these images would cost ~10 points
    with pytest.raises(
        ValueError, match="ResNet-20, 32, 44, 56 and 110 with.*requested model is a ResNet-1202"
    ):
        keras_resnet.ResNet1202(weights="cifar10")
    with pytest.raises(ValueError, match="10-class classifier, but classes=100"):
        keras_resnet.ResNet20(weights="cifar10", classes=100)


def test_npz_round_trip_is_exact(tmp_path):
    pretrained = weights_lib.resolve("cifar10").load(specs.make_spec(20, "cifar"))
    path = tmp_path / "copy.npz"
    npz.save(pretrained, path)
    again = weights_lib.resolve(path).load(pretrained.spec)
    assert (again.spec, again.classes, again.source) == (
        pretrained.spec,
        pretrained.classes,
        pretrained.source,
    )
    assert again.layers.keys() == pretrained.layers.keys()
    for name, arrays in pretrained.layers.items():
        for a, b in zip(arrays, again.layers[name]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.real_data
@pytest.mark.parametrize("depth", sorted(PUBLISHED_ERROR))
def test_akamaster_checkpoints_convert_exactly(depth, full_cifar_dir, torch_reference):
    """akamaster's published figure on the original test batch; same logits as PyTorch.

    Where akamaster's network is the one that ships, the packaged file holds
    exactly these converted weights.
    """
    checkpoints = sorted(PRETRAINED.glob(f"resnet{depth}-*.th"))
    assert checkpoints, f"no resnet{depth}-*.th in {PRETRAINED}"
    data = data_lib.load_test_data("cifar10", str(full_cifar_dir))
    model = keras_resnet.build_model(f"resnet{depth}", weights=str(checkpoints[0]))
    report = evaluation.evaluate(
        evaluation.classifier_from_model(model, data.class_names), data, 500
    )
    assert report["num_examples"] == 10_000
    assert report["top1_error"] == pytest.approx(PUBLISHED_ERROR[depth], abs=0.0003)

    # The conversion is exact: same logits on the same pixels.
    import torch

    net = torch_reference.AkamasterResNet((depth - 2) // 6)
    state = torch.load(checkpoints[0], map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    pixels = data.test.images[:64].astype("float32")
    ours = keras_resnet.build_model(
        f"resnet{depth}", weights=str(checkpoints[0]), classifier_activation=None
    )
    assert close(
        ours.predict(pixels, verbose=0), torch_outputs(net.eval(), pixels, torch_reference)
    )

    if packaged.CIFAR10_NETS[depth].trained_by == packaged.AKAMASTER:
        assert packaged.CIFAR10_NETS[depth].origin == checkpoints[0].name
        spec = specs.make_spec(depth, "cifar")
        converted = weights_lib.resolve(str(checkpoints[0])).load(spec)
        shipped = weights_lib.resolve("cifar10").load(spec)
        for name, arrays in converted.layers.items():
            for a, b in zip(arrays, shipped.layers[name], strict=True):
                np.testing.assert_array_equal(a, b)


@pytest.mark.real_data
@pytest.mark.parametrize(
    "depth",
    [n.depth for n in packaged.CIFAR10_NETS.values() if n.trained_by == packaged.KERAS_RESNET],
)
def test_our_packaged_cifar10_weights_score_their_runs_figure(depth, full_cifar_dir, no_network):
    """`ResNet20(weights="cifar10")`, offline: its committed run's final error on the test batch."""
    data = data_lib.load_test_data("cifar10", str(full_cifar_dir))
    model = keras_resnet.build_model(f"resnet{depth}", weights="cifar10")
    report = evaluation.evaluate(
        evaluation.classifier_from_model(model, data.class_names), data, 500
    )
    assert report["num_examples"] == 10_000
    assert report["top1_error"] == pytest.approx(packaged.CIFAR10_NETS[depth].test_error, abs=5e-5)


def test_pytorch_files_without_torch_say_which_extra_to_install(tmp_path, monkeypatch):
    path = tmp_path / "resnet20.th"
    path.write_bytes(b"any")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(
        ImportError, match=r"needs PyTorch: pip install 'keras-resnet-paper\[pytorch\]'"
    ):
        keras_resnet.ResNet20(weights=str(path))


# --- one entry point ----------------------------------------------------------------------


def test_named_weights_are_one_table_of_what_exists():
    assert set(weights_lib.NAMED) == {"imagenet", "cifar10"}
    for name, entry in weights_lib.NAMED.items():
        assert entry.name == name and entry.licence and entry.provenance
        for depth in entry.depths:
            specs.make_spec(depth, entry.stem)  # a network of the paper
    assert weights_lib.NAMED["imagenet"].depths == tuple(keras_applications.HASHES)
    assert weights_lib.NAMED["cifar10"].depths == tuple(packaged.CIFAR10_NETS)
    for net in packaged.CIFAR10_NETS.values():
        assert pathlib.Path(net.file).is_file()


def test_resolve_reads_a_file_once_and_answers_both_questions(tmp_path, monkeypatch):
    path = tmp_path / "resnet32.npz"
    npz.save(weights_lib.resolve("cifar10").load(specs.make_spec(32, "cifar")), path)
    reads = []
    read_file = weights_lib.sources.read_file
    monkeypatch.setattr(weights_lib.sources, "read_file", lambda p: reads.append(p) or read_file(p))
    source = weights_lib.resolve(path)
    assert source.architecture == {
        "depth": 32,
        "stem": "cifar",
        "shortcut": "A",
        "bottleneck_stride": None,
    }
    assert weights_lib.resolve(source) is source
    model = keras_resnet.ResNet(32, weights=source)
    keras_resnet.ResNet(32, weights=source, include_top=False)
    assert reads == [str(path)]
    assert model.get_layer("predictions").units == 10
    with pytest.raises(ValueError, match="hold a ResNet-32 .*requested model is a ResNet-20"):
        source.load(specs.make_spec(20, "cifar"))
    # A name fixes the stem only: its file depends on the depth.
    assert weights_lib.resolve("imagenet").architecture == {"stem": "imagenet"}
    assert weights_lib.resolve(None) is None


def test_fine_tuning_takes_weights_of_any_classes_or_none():
    source = weights_lib.resolve("cifar10")
    spec = specs.make_spec(20, "cifar")
    with pytest.raises(ValueError, match="10-class classifier, but classes=2"):
        source.load(spec, classes=2)
    assert source.load(spec, classes=2, fine_tune=True).classes == 10


def test_a_keras_resnet_weights_file_is_left_to_keras(tmp_path):
    path = str(tmp_path / "resnet20.weights.h5")
    keras_resnet.ResNet20().save_weights(path)
    source = weights_lib.resolve(path)
    assert isinstance(source, weights_lib.KerasResNetFile)
    assert source.architecture == {}
    with pytest.raises(ValueError, match="saved from a keras_resnet model.*same architecture"):
        source.load(specs.make_spec(20, "cifar"), fine_tune=True)
    assert keras_resnet.ResNet(20, weights=source).count_params() == 271_098
