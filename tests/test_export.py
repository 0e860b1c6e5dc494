import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from keras_resnet import data, export


def real_test_jpegs(cifar_dir, destination, per_class=3):
    """JPEG files of the first real test images of each class (the fixture's lossless PNGs,
    encoded as a client would send them)."""
    root = os.path.join(cifar_dir, "test")
    files = []
    for c in sorted(os.listdir(root)):
        for f in sorted(os.listdir(os.path.join(root, c)))[:per_class]:
            pixels = tf.io.decode_png(tf.io.read_file(os.path.join(root, c, f)))
            files.append(os.path.join(destination, f"{c}-{os.path.splitext(f)[0]}.jpg"))
            tf.io.write_file(files[-1], tf.io.encode_jpeg(pixels, quality=90))
    return files


SERVE_WITHOUT_PACKAGE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf
    files = json.loads(sys.argv[2])
    raw = [tf.io.read_file(f) for f in files]
    pixels = tf.stack([tf.io.decode_jpeg(r) for r in raw])
    model = tf.saved_model.load(sys.argv[1])
    by_pixels = model.signatures["serving_default"](images=tf.cast(pixels, tf.float32))
    by_uint8 = model.signatures["serving_uint8"](images=pixels)
    by_bytes = model.signatures["serving_bytes"](image_bytes=tf.stack(raw))
    np.save(sys.argv[3], np.stack([by_pixels["probabilities"], by_uint8["probabilities"],
                                   by_bytes["probabilities"]]))
    print(json.dumps({"names": by_bytes["class_names"].numpy()[:, 0].astype(str).tolist(),
                      "ids": by_bytes["class_ids"].numpy()[:, 0].tolist(),
                      "package_imported": any(m.startswith("keras_resnet") for m in sys.modules)}))
    """
)


def test_saved_model_serves_pixels_and_jpeg_bytes_without_the_package(
    cifar_run, cifar_dir, tmp_path
):
    saved = cifar_run / "saved_model" / "1"
    assert (saved / "saved_model.pb").exists() and (saved / "assets" / "labels.txt").exists()
    files = real_test_jpegs(cifar_dir, str(tmp_path))
    out = tmp_path / "probabilities.npy"
    result = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_PACKAGE, str(saved), json.dumps(files), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert not answer["package_imported"]
    pixels, uint8, from_bytes = np.load(out)
    np.testing.assert_array_equal(pixels, uint8)
    np.testing.assert_array_equal(pixels, from_bytes)  # same JPEG decoder inside and outside
    # Equal to model.keras on the same pixels, with the training class names.
    model = keras.saving.load_model(cifar_run / "model.keras")
    images = np.stack([tf.io.decode_jpeg(tf.io.read_file(f)).numpy() for f in files]).astype(
        "float32"
    )
    np.testing.assert_allclose(pixels, model.predict(images, verbose=0), rtol=1e-4, atol=1e-6)
    classes = json.loads((cifar_run / "config.json").read_text())["data"]["class_names"]
    assert answer["names"] == [classes[i] for i in answer["ids"]]
    assert answer["ids"] == pixels.argmax(axis=1).tolist()


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(cifar_run):
    saved_model_cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [saved_model_cli, "show", "--all", "--dir", str(cifar_run / "saved_model" / "1")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in (
        "serving_default",
        "serving_bytes",
        "serving_uint8",
        "probabilities",
        "class_names",
        "class_ids",
        "image_bytes",
    ):
        assert name in result.stdout


def test_wrong_shapes_and_dtypes_raise(cifar_run):
    signature = tf.saved_model.load(str(cifar_run / "saved_model" / "1")).signatures[
        "serving_default"
    ]
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
        signature(images=tf.zeros((1, 28, 28, 3)))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
        signature(images=tf.zeros((1, 32, 32, 3), tf.int32))


def test_export_command_versions_and_refuses_to_overwrite(cifar_run, tmp_path, run_main):
    base = tmp_path / "models" / "resnet8"

    def run(*extra):
        return run_main("export", "--model", cifar_run, "--export-base", base, *extra)

    first = run("--name", "cifar", "--tflite", str(tmp_path / "model.tflite"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Exported cifar version 1" in first.stdout and "MODEL_NAME=cifar" in first.stdout
    assert "agrees with the Keras model" in first.stdout and (tmp_path / "model.tflite").exists()
    assert run().returncode == 0
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging folders left behind
    blocker = tmp_path / "file"
    blocker.write_text("")
    not_a_folder = run_main("export", "--model", cifar_run, "--export-base", blocker)
    assert not_a_folder.returncode == 1 and "--export-base '" in not_a_folder.stderr
    assert "is not a directory" in not_a_folder.stderr
    blocker.unlink()
    suffix = run("--tflite", str(tmp_path / "model.lite"))
    assert suffix.returncode == 1 and "must end in .tflite" in suffix.stderr
    # A version that exists: the TFLite file there before is kept as it was.
    (tmp_path / "model.tflite").write_bytes(b"earlier")
    clash = run("--version", "2", "--tflite", str(tmp_path / "model.tflite"))
    assert clash.returncode == 1 and "exists" in clash.stderr
    assert (tmp_path / "model.tflite").read_bytes() == b"earlier"
    assert sorted(os.listdir(tmp_path)) == sorted(["model.tflite", "models"])
    missing = run_main("export", "--model", tmp_path / "no", "--export-base", base)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert sorted(os.listdir(base)) == ["1", "2"]
    # A model of any input size (a backbone built without input_shape, say): serving needs one.
    any_size = tmp_path / "any_size.keras"
    keras_resnet.ResNet(8, stem="cifar", input_shape=(None, None, 3)).save(any_size)
    tflite = tmp_path / "any_size.tflite"
    refused = run_main("export", "--model", any_size, "--export-base", base, "--tflite", tflite)
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "Export needs a fixed input size; the model takes (None, None, None, 3)" in (
        refused.stderr
    )
    assert "input_shape=(height, width, channels)" in refused.stderr
    assert sorted(os.listdir(base)) == ["1", "2"] and not tflite.exists()


def test_export_from_python_checks_class_names(tmp_path):
    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(16, 16, 3), classes=3)
    with pytest.raises(ValueError, match="2 class names for a model with 3 outputs"):
        export.export_saved_model(model, str(tmp_path), class_names=["a", "b"])
    path = export.export_saved_model(model, str(tmp_path), class_names=["a", "b", "c"])
    assert path == str(tmp_path / "1")
    loaded = tf.saved_model.load(path).signatures["serving_default"]
    result = loaded(images=tf.zeros((2, 16, 16, 3)))
    assert result["class_ids"].shape == (2, 3)  # top-k is capped at the number of classes
    assert set(result["class_names"].numpy().ravel().astype(str)) <= {"a", "b", "c"}


def test_a_model_without_a_run_serves_bytes_with_the_crop_training_would_choose(tmp_path):
    """An ImageNet-size .keras file alone: serving_bytes takes the paper's centre crop, as
    `keras-resnet-predict` does for it; a CIFAR-size one takes its images as they are."""
    # With an input normalization, the random network's probabilities are not all 0 and 1.
    normalization = {"input_mean": [120.0, 115.0, 100.0], "input_std": [60.0, 60.0, 60.0]}
    model = keras_resnet.ResNet(18, input_shape=(72, 72, 3), classes=3, **normalization)
    path = export.export_saved_model(model, str(tmp_path / "large"))
    photo = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    served = tf.saved_model.load(path).signatures["serving_bytes"](
        image_bytes=tf.stack([tf.io.encode_png(photo)])
    )["probabilities"]
    preprocessing = data.Preprocessing.for_input_shape((72, 72))
    assert (preprocessing.kind, preprocessing.image_size) == ("imagenet", 72)
    crop = preprocessing.serving_image(photo, 72, 72)
    expected = model(np.asarray(crop, np.float32)[None], training=False)
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-4, atol=1e-6)  # squashed: 2%
    assert data.Preprocessing.for_input_shape((32, 32)).kind == "cifar"


def test_predict_prepares_a_saved_models_images_as_its_serving_bytes_does(tmp_path):
    """The export records its preprocessing (assets/preprocessing.json): a streamed run's
    64-pixel model takes the centre crop there, where its size alone would say "as they are"."""
    from keras_resnet import predict

    normalization = {"input_mean": [120.0, 115.0, 100.0], "input_std": [60.0, 60.0, 60.0]}
    model = keras_resnet.ResNet(18, input_shape=(64, 64, 3), classes=3, **normalization)
    trained_with = data.Preprocessing("imagenet", image_size=64)
    assert data.Preprocessing.for_input_shape((64, 64)) != trained_with
    path = export.export_saved_model(model, str(tmp_path / "served"), preprocessing=trained_with)
    with open(os.path.join(path, "assets", "preprocessing.json")) as f:
        recorded = json.load(f)
    assert data.Preprocessing(**recorded) == trained_with
    assert predict.load_predictor(model=path).preprocessing == trained_with
    photo = np.random.default_rng(1).integers(0, 256, (80, 150, 3), dtype=np.uint8)
    file = tmp_path / "photo.png"
    file.write_bytes(tf.io.encode_png(photo).numpy())
    served = (
        tf.saved_model.load(path)
        .signatures["serving_bytes"](image_bytes=tf.stack([tf.io.encode_png(photo)]))[
            "probabilities"
        ]
        .numpy()[0]
    )
    result = predict.classify([str(file)], model=path, top=3)["images"][0]
    scores = [prediction["score"] for prediction in result["predictions"]]
    np.testing.assert_allclose(scores, np.sort(served)[::-1], rtol=1e-4, atol=1e-6)
