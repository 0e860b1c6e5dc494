"""Classifying image files (`keras-resnet-predict`) and the class names that travel with a model.

Real images throughout: the committed fixture's original CIFAR-10 test images as PNG class
folders, through the packaged `cifar10` weights, a trained run's `.keras` file and its
SavedModel; the ImageNet path with a weights file and a class index placed in the Keras cache,
as keras.applications would have left them, and no network.
"""

import hashlib
import inspect
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO
from PIL import Image

import keras_resnet
from keras_resnet import export, model_files, models, predict
from keras_resnet import weights as weights_lib
from keras_resnet.weights import keras_applications, packaged

CIFAR10 = list(packaged.CIFAR10_CLASSES)


def top1_by_folder(report):
    """(file's class folder, predicted name) for each image of a `--output-json` report."""
    return [
        (image["file"].split("/")[-2], image["predictions"][0]["class_name"])
        for image in report["images"]
    ]


# --- the command on real images --------------------------------------------------------


def test_cifar10_weights_name_real_test_images(cifar_dir, tmp_path, run_main, no_network):
    out = tmp_path / "out.json"
    result = run_main(
        "predict", cifar_dir / "test", "--weights", "cifar10", "--depth", 20, "--output-json", out
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["model"] == "resnet20 weights=cifar10"
    assert report["num_images"] == 250 and report["top"] == 5
    assert report["input_shape"] == [32, 32, 3] and report["preprocessing"]["kind"] == "cifar"
    pairs = top1_by_folder(report)
    error = np.mean([folder != name for folder, name in pairs])
    assert error < 0.15  # ResNet-20: 8.19% on all 10,000
    files = sorted(str(p) for p in (cifar_dir / "test").rglob("*.png"))
    assert [image["file"] for image in report["images"]] == files
    for image in report["images"]:
        predictions = image["predictions"]
        assert [p["class_name"] for p in predictions] == [
            CIFAR10[p["class_id"]] for p in predictions
        ]
        scores = [p["score"] for p in predictions]
        assert scores == sorted(scores, reverse=True) and 0.0 <= sum(scores) <= 1.0 + 1e-5
    # The table: a header, then each image with its names and probabilities.
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["image", "top", "1", "top", "2", "top", "3", "top", "4", "top", "5"]
    first = report["images"][0]
    row = lines[1].split()
    assert row[0] == first["file"]
    assert row[1:3] == [
        first["predictions"][0]["class_name"],
        f"{100 * first['predictions'][0]['score']:.2f}%",
    ]
    assert len(lines) == 1 + 250 + 1 and "250 images classified" in lines[-1]


def test_files_folders_and_globs_are_found_in_order(cifar_dir, tmp_path):
    test = cifar_dir / "test"
    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    shutil.copy(test / "cat" / "0000.png", tmp_path / "sub" / "b.PNG")
    shutil.copy(test / "cat" / "0001.png", tmp_path / "a.jpg.png")
    shutil.copy(test / "cat" / "0002.png", tmp_path / "sub" / ".hidden" / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    found = predict.find_images([tmp_path, str(test / "cat" / "0003.png"), str(tmp_path / "a*")])
    assert found == [
        str(tmp_path / "a.jpg.png"),
        str(tmp_path / "sub" / "b.PNG"),
        str(test / "cat" / "0003.png"),
    ]
    assert len(predict.find_images([str(test / "*")])) == 250  # folders a pattern matches


def test_a_folder_s_linked_subfolders_are_searched_each_once(cifar_dir, tmp_path):
    cat = cifar_dir / "test" / "cat"
    photos, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    photos.mkdir()
    elsewhere.mkdir()
    shutil.copy(cat / "0000.png", photos / "a.png")
    shutil.copy(cat / "0001.png", elsewhere / "b.png")
    (photos / "linked").symlink_to(elsewhere, target_is_directory=True)
    (photos / "same").symlink_to(elsewhere, target_is_directory=True)  # that folder again
    (elsewhere / "up").symlink_to(photos, target_is_directory=True)  # a loop
    found = predict.find_images([photos])
    assert found == [str(photos / "a.png"), str(photos / "linked" / "b.png")]


@pytest.mark.parametrize("channels", [1, 4])
def test_a_gray_or_rgba_model_takes_gif_webp_jpeg_and_png_as_serving_bytes_does(
    cifar_dir, tmp_path, channels
):
    # TensorFlow alone decodes no GIF, BMP or WebP as gray and no JPEG as RGBA: refused until
    # now.
    photo = Image.open(sorted((cifar_dir / "test" / "cat").iterdir())[0]).convert("RGB")
    ramp = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32, 1)  # a WebP keeps real alpha only
    translucent = Image.fromarray(np.concatenate([np.asarray(photo), ramp], -1))
    files = []
    for name, image, options in [
        ("gray.png", photo.convert("L"), {}),
        ("gray.gif", photo.convert("L"), {}),
        ("rgba.webp", translucent, {"lossless": True}),
        ("rgb.jpg", photo, {"quality": 95}),
        ("rgb.bmp", photo, {}),
        ("palette.bmp", photo.quantize(64), {}),  # TensorFlow alone: the indices as gray
        # The palette's colors, gray as PIL makes it (as decode_image does; libpng's differs).
        ("colors.png", photo.quantize(64).convert("L" if channels == 1 else "RGB"), {}),
    ]:
        files.append(tmp_path / name)
        image.save(files[-1], **options)
    with Image.open(files[2]) as webp:
        assert webp.mode == "RGBA"
    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(32, 32, channels), classes=4)
    path = export.export_saved_model(model, str(tmp_path / "served"))
    served = (
        tf.saved_model.load(path)
        .signatures["serving_bytes"](
            image_bytes=tf.stack([tf.io.read_file(str(f)) for f in files])
        )["probabilities"]
        .numpy()
    )
    report = predict.classify([str(f) for f in files], model=path, top=4)
    for image, probabilities in zip(report["images"], served, strict=True):
        scores = [p["score"] for p in image["predictions"]]
        np.testing.assert_allclose(scores, np.sort(probabilities)[::-1], rtol=1e-4, atol=1e-6)
    # The GIF is the PNG's gray levels: the same pixels, the same answer.
    np.testing.assert_allclose(served[1], served[0], rtol=1e-6)
    np.testing.assert_allclose(served[5], served[6], rtol=1e-6)


def test_a_trained_model_keeps_its_class_names_in_its_keras_file(
    cifar_run, cifar_dir, tmp_path, run_main
):
    classes = json.loads((cifar_run / "config.json").read_text())["data"]["class_names"]
    # In the .keras file itself: its config, read without Keras.
    with zipfile.ZipFile(cifar_run / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert config["config"]["class_names"] == classes
    # A copy alone, with no run directory beside it, still names its classes.
    alone = tmp_path / "alone.keras"
    shutil.copy(cifar_run / "model.keras", alone)
    images = [cifar_dir / "test" / name / "0000.png" for name in ("ship", "frog")]
    out = tmp_path / "alone.json"
    result = run_main("predict", *images, "--model", alone, "--top", 10, "--output-json", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["format"] == "keras" and report["top"] == 10
    for image in report["images"]:
        assert sorted(p["class_name"] for p in image["predictions"]) == sorted(classes)
    # Its SavedModel carries them in assets/labels.txt, and gives the same answers.
    out_saved = tmp_path / "saved.json"
    saved = cifar_run / "saved_model" / "1"
    result = run_main("predict", *images, "--model", saved, "--top", 10, "--output-json", out_saved)
    assert result.returncode == 0, result.stderr
    from_saved = json.loads(out_saved.read_text())
    assert from_saved["format"] == "saved_model"
    for a, b in zip(report["images"], from_saved["images"]):
        assert [p["class_name"] for p in a["predictions"]] == [
            p["class_name"] for p in b["predictions"]
        ]
        np.testing.assert_allclose(
            [p["score"] for p in a["predictions"]],
            [p["score"] for p in b["predictions"]],
            atol=1e-5,
        )


def test_class_names_travel_from_builder_to_keras_file_to_export(tmp_path):
    names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "boat", "lorry"]
    model = keras_resnet.ResNet20(weights="cifar10", class_names=names)
    assert model.class_names == tuple(names)
    assert keras_resnet.ResNet20(weights="cifar10").class_names == tuple(CIFAR10)
    assert keras_resnet.ResNet20().class_names is None
    assert keras_resnet.ResNet20(weights="cifar10", include_top=False).class_names is None
    path = tmp_path / "renamed.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.class_names == tuple(names)
    version = export.export_saved_model(loaded, str(tmp_path / "serving"))  # names from the model
    assert (tmp_path / "serving" / "1" / "assets" / "labels.txt").read_text().split() == names
    assert version.endswith("1")
    # A model saved without names (as every .keras file before them) loads with None.
    keras_resnet.ResNet20().save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as archive:
        assert "class_names" not in json.loads(archive.read("config.json"))["config"]
    assert keras.saving.load_model(tmp_path / "plain.keras").class_names is None
    with pytest.raises(ValueError, match="class_names has 2 names; the classifier has 10"):
        keras_resnet.ResNet20(class_names=["a", "b"])
    with pytest.raises(ValueError, match="need include_top=True"):
        keras_resnet.ResNet20(include_top=False, class_names=names)


def test_decode_predictions_follows_keras_applications():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], np.float32)
    decoded = keras_resnet.decode_predictions(probabilities, top=2, class_names=["a", "b", "c"])
    assert decoded == [
        [(1, "b", pytest.approx(0.6)), (2, "c", pytest.approx(0.3))],
        [(0, "a", pytest.approx(0.5)), (2, "c", pytest.approx(0.3))],
    ]
    assert decoded[0][0].class_name == "b" and isinstance(decoded[0][0].score, float)
    model = keras_resnet.ResNet20(weights="cifar10")
    probabilities = np.eye(10, dtype=np.float32)[[3, 9]]
    for names in (model, "cifar10", CIFAR10):
        decoded = keras_resnet.decode_predictions(probabilities, class_names=names)
        assert [d[0].class_name for d in decoded] == ["cat", "truck"] and len(decoded[0]) == 5
    with pytest.raises(ValueError, match="No class names for 10 classes"):
        keras_resnet.decode_predictions(probabilities)
    with pytest.raises(ValueError, match="top must be an int from 1 to 10"):
        keras_resnet.decode_predictions(probabilities, top=11, class_names=model)
    with pytest.raises(ValueError, match="shape \\(samples, classes\\).*\\(10,\\)"):
        keras_resnet.decode_predictions(probabilities[0], class_names=model)
    with pytest.raises(ValueError, match="3 class names for 10 classes"):
        keras_resnet.decode_predictions(probabilities, class_names=["a", "b", "c"])


# --- ImageNet: the Keras cache, no network ---------------------------------------------


def test_imagenet_class_index_is_keras_applications_own():
    from keras.src.applications import imagenet_utils

    assert keras_applications.CLASS_INDEX_URL == imagenet_utils.CLASS_INDEX_PATH
    source = inspect.getsource(imagenet_utils.decode_predictions)
    assert f'"{keras_applications.CLASS_INDEX_NAME}"' in source
    assert f'file_hash="{keras_applications.CLASS_INDEX_HASH}"' in source


def cache_class_index(tmp_path, monkeypatch):
    """A class index in keras.applications' format, placed in a Keras cache at tmp_path/keras."""
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path / "keras"))
    (tmp_path / "keras" / "models").mkdir(parents=True, exist_ok=True)
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    index["281"] = ["n02123045", "tabby"]
    path = tmp_path / "keras" / "models" / keras_applications.CLASS_INDEX_NAME
    path.write_text(json.dumps(index))
    # keras.applications' own file has its own md5; this one has its own.
    monkeypatch.setattr(
        keras_applications, "CLASS_INDEX_HASH", hashlib.md5(path.read_bytes()).hexdigest()
    )
    return path


def test_decode_predictions_names_imagenet_classes_from_the_keras_cache(
    tmp_path, monkeypatch, no_network
):
    cache_class_index(tmp_path, monkeypatch)
    probabilities = np.zeros((2, 1000), np.float32)
    probabilities[0, 281], probabilities[0, 7], probabilities[1, 999] = 0.7, 0.2, 0.9
    decoded = keras_resnet.decode_predictions(probabilities, top=2)  # 1000 classes: ImageNet's
    assert decoded[0] == [(281, "tabby", pytest.approx(0.7)), (7, "class_7", pytest.approx(0.2))]
    assert decoded[1][0][:2] == (999, "class_999")
    assert weights_lib.NAMED["imagenet"].class_names()[281] == "tabby"


def test_imagenet_class_index_missing_offline_is_an_error_naming_it(
    tmp_path, monkeypatch, no_network
):
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="imagenet_class_index.json.*Keras cache"):
        keras_resnet.decode_predictions(np.zeros((1, 1000)))


@pytest.mark.slow
def test_imagenet_weights_classify_a_photo_with_the_evaluation_crop(
    tmp_path, monkeypatch, run_main, no_network
):
    from test_weights import randomize_keras, save_legacy_h5

    cache_class_index(tmp_path, monkeypatch)
    source = randomize_keras(keras.applications.ResNet50(weights=None))
    classifier = source.get_layer("predictions")
    kernel, bias = classifier.get_weights()
    classifier.set_weights([kernel / 200, bias])  # logits of a few units: no ties at 0 and 1
    name = keras_applications.file_name(50, include_top=True)
    cached = save_legacy_h5(source, tmp_path / "keras" / "models" / name)
    digest = hashlib.md5(open(cached, "rb").read()).hexdigest()
    monkeypatch.setitem(keras_applications.HASHES, 50, (digest, "unused"))
    # A "photo": a real image, landscape, larger than the crop.
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    (tmp_path / "photo.png").write_bytes(buffer.getvalue())
    out = tmp_path / "out.json"
    result = run_main(
        "predict",
        tmp_path / "photo.png",
        "--weights",
        "imagenet",
        "--depth",
        50,
        "--top",
        3,
        "--output-json",
        out,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["input_shape"] == [224, 224, 3]
    assert report["preprocessing"]["kind"] == "imagenet"
    assert report["preprocessing"]["image_size"] == 224
    # The same crop as serving_bytes' (shorter side 256, centre 224), through keras.applications.
    crop = keras_resnet.data.Preprocessing("imagenet", image_size=224).serving_image(
        photo, 224, 224
    )
    reference = source.predict(
        keras.applications.resnet.preprocess_input(np.array(crop)[None]), verbose=0
    )[0]
    top = np.argsort(-reference)[:3]
    assert reference[top[0]] < 0.5 and reference[top[2]] > 1e-4
    predictions = report["images"][0]["predictions"]
    assert [p["class_id"] for p in predictions] == top.tolist()
    assert [p["class_name"] for p in predictions] == [
        "tabby" if i == 281 else f"class_{i}" for i in top
    ]
    np.testing.assert_allclose([p["score"] for p in predictions], reference[top], rtol=1e-3)


@pytest.mark.slow
def test_a_keras_applications_resnet_is_refused_and_its_weights_classify_pixels(
    cifar_dir, tmp_path, run_main, no_network
):
    """Its input is preprocess_input's BGR minus the mean, not pixels: refused wherever this
    package would feed it pixels; the route the error gives classifies as it does."""
    from test_weights import randomize_keras

    source = randomize_keras(keras.applications.ResNet50(weights=None, classes=10))
    classifier = source.get_layer("predictions")
    kernel, bias = classifier.get_weights()
    classifier.set_weights([kernel / 200, bias])  # logits of a few units: no ties at 0 and 1
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    saved = tmp_path / "applications.keras"
    source.save(saved)
    refusal = "straight to a keras.applications ResNet.*preprocess_input.*save_weights"
    with pytest.raises(ValueError, match=refusal):
        predict.load_predictor(model=source)
    with pytest.raises(ValueError, match=refusal):
        export.export_saved_model(source, str(tmp_path / "served"))
    with pytest.raises(ValueError, match=refusal):
        export.export_tflite(source, str(tmp_path / "model.tflite"))
    report = tmp_path / "report.json"
    for command, *args in (
        ("predict", tmp_path / "photo.png", "--model", saved, "--output-json", report),
        ("evaluate", "--model", saved, "--dataset", "cifar10", "--data-dir", cifar_dir)
        + ("--output-json", report),
        ("export", "--model", saved, "--export-base", tmp_path / "served"),
    ):
        result = run_main(command, *args)
        assert result.returncode == 1, (command, result.stdout)
        assert re.search(refusal, result.stderr) and "applications.keras" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["applications.keras", "photo.png"]
    # Inside a transfer-learning model, refused; with its preprocessing in front, it takes pixels.
    for model, takes_pixels in transfer_models():
        if takes_pixels:
            models.check_takes_pixels(model, model.name)
        else:
            with pytest.raises(ValueError, match=refusal):
                models.check_takes_pixels(model, model.name)
    # The route the message gives: its weights into keras_resnet's ResNet-50, which takes pixels.
    source.save_weights(tmp_path / "applications.weights.h5")
    result = run_main(
        "predict",
        tmp_path / "photo.png",
        "--weights",
        tmp_path / "applications.weights.h5",
        "--top",
        3,
        "--output-json",
        report,
    )
    assert result.returncode == 0, result.stderr
    crop = keras_resnet.data.Preprocessing("imagenet", image_size=224).serving_image(
        photo, 224, 224
    )
    reference = source.predict(
        keras.applications.resnet.preprocess_input(np.array(crop)[None]), verbose=0
    )[0]
    predictions = json.loads(report.read_text())["images"][0]["predictions"]
    assert [p["class_id"] for p in predictions] == np.argsort(-reference)[:3].tolist()
    np.testing.assert_allclose(
        [p["score"] for p in predictions], np.sort(reference)[::-1][:3], rtol=1e-3
    )


def transfer_models():
    """(model, whether it takes pixels) for keras.applications ResNets inside other models."""
    shape = (32, 32, 3)
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=shape)
    head = [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")]
    yield keras.Sequential([keras.Input(shape), base, *head]), False
    pixels = keras.Input(shape)
    yield keras.Model(pixels, head[1](head[0](base(pixels)))), False
    v2 = keras.applications.ResNet50V2(weights=None, classes=3, input_shape=shape)
    yield v2, False
    yield keras.Model(pixels, base(keras.layers.Rescaling(1 / 127.5, -1)(pixels))), True
    preprocessed = keras.applications.resnet.preprocess_input(pixels)
    inline = keras.applications.ResNet50(weights=None, input_tensor=preprocessed, classes=3)
    yield keras.Model(pixels, inline.output), True
    yield keras_resnet.ResNet50(weights=None, input_shape=shape, classes=3), True


# --- errors --------------------------------------------------------------------------


def test_errors_name_the_file_the_folder_or_the_model(cifar_dir, tmp_path, run_main):
    image = cifar_dir / "test" / "cat" / "0000.png"
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    out = tmp_path / "out.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    features = tmp_path / "features.keras"
    keras_resnet.ResNet20(include_top=False, pooling="avg").save(features)
    feature_maps = tmp_path / "feature_maps.keras"
    keras_resnet.ResNet20(include_top=False).save(feature_maps)
    dense = tmp_path / "dense.keras"
    inputs = keras.Input((10,))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)).save(dense)
    logits = tmp_path / "logits.keras"
    keras_resnet.ResNet20(classifier_activation=None).save(logits)
    any_size = tmp_path / "any_size.keras"
    keras_resnet.ResNet20(input_shape=(None, None, 3)).save(any_size)
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    binary = tmp_path / "labels.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    rle = tmp_path / "rle.bmp"
    Image.open(image).quantize(16).save(rle)
    with open(rle, "r+b") as file:  # the header says RLE-compressed (BI_RLE8)
        file.seek(30)
        file.write(struct.pack("<I", 1))
    cases = [
        (
            (rle, "--weights", "cifar10", "--depth", 20),
            f"{rle}' is not an image that can be decoded .*: only uncompressed palette BMPs",
        ),
        (
            (image, fake, "--weights", "cifar10", "--depth", 20, "--output-json", out),
            f"{fake}.*is not an image",
        ),
        ((empty, "--weights", "cifar10", "--depth", 20), f"No image files in folder '{empty}'"),
        (
            (str(tmp_path / "*.jpg"), "--weights", "cifar10", "--depth", 20),
            "No files match .*\\*.jpg",
        ),
        (
            (tmp_path / "missing.png", "--weights", "cifar10", "--depth", 20),
            "No such file or folder: .*missing.png",
        ),
        (
            (image, "--weights", "cifar10"),
            "--weights cifar10 needs --depth \\(20, 32, 44, 56, 110\\)",
        ),
        (
            (image, "--weights", "cifar10", "--depth", 50),
            "weights='cifar10' exist for ResNet-20, 32, 44, 56 and 110.*ResNet-50",
        ),
        (
            (image, "--weights", "cifar10", "--depth", 20, "--top", 11),
            "--top must be from 1 to 10 \\(the model's classes\\), received 11",
        ),
        ((image, "--model", features), "outputs shape \\(None, 64\\), not class probab"),
        ((image, "--model", feature_maps), "outputs shape \\(None, None, None, 64\\), not class"),
        ((image, "--model", dense), "takes inputs of shape \\(10,\\).*fixed size"),
        (
            (image, "--model", any_size),
            "shape \\(None, None, 3\\).*fixed size.*input_shape=\\(height, width, channels\\)",
        ),
        ((image, "--model", logits), "outputs logits .*'predictions', has no activation"),
        ((image, "--model", features, "--depth", 20), "--depth .* go with --weights"),
        ((image, "--model", features, "--depth", 0), "--depth .* go with --weights"),
        ((image, "--weights", "cifar10", "--depth", 0), "Invalid depth 0 for the CIFAR stem"),
        (
            (image, "--weights", "cifar10", "--depth", 20, "--labels", labels),
            "2 class names \\(labels '.*labels.txt'\\) for the model .* 10 classes",
        ),
        (
            (image, "--weights", "cifar10", "--depth", 20, "--output-json", empty),
            f"--output-json '{empty}' is a folder",
        ),
        (
            (image, "--weights", "cifar10", "--depth", 20, "--labels", tmp_path / "no.txt"),
            "labels .*no.txt' is not a file",
        ),
        (
            (image, "--weights", "cifar10", "--depth", 20, "--labels", binary),
            "labels .*labels.bin' cannot be read as UTF-8 text, one class name a line",
        ),
    ]
    bad_records = (("{", "is not a JSON file"), ("[1]", "holds list, not a JSON object"))
    for i, (content, message) in enumerate(bad_records):
        beside = tmp_path / f"beside{i}"  # a .keras file beside another config.json
        beside.mkdir()
        shutil.copy(logits, beside / "net.keras")
        (beside / "config.json").write_text(content)
        cases.append(((image, "--model", beside / "net.keras"), f"{beside}/config.json' {message}"))
    for args, message in cases:
        result = run_main("predict", *args)
        assert result.returncode == 1, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("predict: error: ") or "error:" in lines[-1], result.stderr
        assert any(re.search(message, line) for line in lines), (message, lines)
    assert not out.exists()  # nothing half-written


def test_a_saved_model_s_assets_that_cannot_be_read_are_named(tmp_path):
    version = tmp_path / "serving" / "1"
    tf.saved_model.save(tf.Module(), str(version))
    labels = version / "assets" / "labels.txt"
    labels.parent.mkdir(exist_ok=True)
    labels.write_bytes(b"cat\n\xff\xfe\n")
    with pytest.raises(ValueError, match=f"'{labels}' is not UTF-8 text"):
        model_files.load_model(str(tmp_path / "serving"))
    labels.write_text("cat\n")
    (version / "assets" / "preprocessing.json").write_text("[1]")
    with pytest.raises(ValueError, match="preprocessing.json' holds list, not a JSON object"):
        model_files.load_model(str(tmp_path / "serving"))


@pytest.mark.slow
def test_the_module_runs_as_the_command(cifar_dir, tmp_path):
    images = [str(cifar_dir / "test" / name / "0001.png") for name in ("dog", "horse")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_resnet.predict",
            *images,
            "--weights",
            "cifar10",
            "--depth",
            "20",
            "--top",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["image", "top", "1"]
    assert [row.split()[0] for row in rows[1:3]] == images
    assert "RuntimeWarning" not in result.stderr


# --- the full test set ----------------------------------------------------------------


def write_test_pngs(batches_dir, destination):
    """The 10,000 original CIFAR-10 test images as lossless PNG class folders."""
    from conftest import _png

    test = keras_resnet.data.load_test_data("cifar10", str(batches_dir))
    for label, name in enumerate(test.class_names):
        folder = destination / name
        folder.mkdir(parents=True)
        for number, image in enumerate(test.test.images[test.test.labels == label]):
            (folder / f"{number:04d}.png").write_bytes(_png(image))
    return destination


@pytest.mark.slow
@pytest.mark.real_data
def test_predicting_the_test_images_gives_evaluates_error(full_cifar_dir, tmp_path, run_main):
    folder = write_test_pngs(full_cifar_dir, tmp_path / "test")
    out = tmp_path / "predict.json"
    result = run_main(
        "predict",
        folder,
        "--weights",
        "cifar10",
        "--depth",
        56,
        "--batch-size",
        256,
        "--output-json",
        out,
    )
    assert result.returncode == 0, result.stderr
    pairs = top1_by_folder(json.loads(out.read_text()))
    assert len(pairs) == 10_000
    error = np.mean([folder != name for folder, name in pairs])
    evaluated = tmp_path / "eval.json"
    result = run_main(
        "evaluate",
        "--weights",
        "cifar10",
        "--depth",
        56,
        "--dataset",
        "cifar10",
        "--data-dir",
        full_cifar_dir,
        "--output-json",
        evaluated,
    )
    assert result.returncode == 0, result.stderr
    assert error == json.loads(evaluated.read_text())["top1_error"]
    assert error == pytest.approx(0.0661, abs=1e-6)


def test_labels_from_a_windows_text_file_keep_no_byte_order_mark_or_carriage_return(tmp_path):
    names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(names).encode() + b"\r\n")
    predictor = predict.load_predictor(weights="cifar10", depth=20, labels=labels)
    assert predictor.class_names == tuple(names)
