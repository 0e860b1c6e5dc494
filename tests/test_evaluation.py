import dataclasses
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from conftest import gray_copy
from keras_resnet import data, evaluation


def test_same_numbers_for_every_format_on_real_cifar10(cifar_run, cifar_dir, tmp_path, run_main):
    reports = {}
    for name, path in (
        ("run", cifar_run),
        ("keras", cifar_run / "model.keras"),
        ("saved_model", cifar_run / "saved_model" / "1"),
        ("serving_base", cifar_run / "saved_model"),
    ):
        out = tmp_path / f"{name}.json"
        result = run_main(
            "evaluate",
            "--model",
            path,
            "--dataset",
            "cifar10",
            "--data-dir",
            cifar_dir,
            "--batch-size",
            "64",
            "--output-json",
            str(out),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        reports[name] = json.loads(out.read_text())
        assert os.path.getsize(tmp_path / f"{name}_confusion.png") > 10_000
    first = reports["run"]
    assert first["num_examples"] == 250 and set(first["per_class_accuracy"]) >= {"cat", "dog"}
    assert np.sum(first["confusion_matrix"]) == 250
    for report in reports.values():
        assert report["top1_error"] == first["top1_error"]
        assert report["top5_error"] == first["top5_error"]
        assert report["loss"] == pytest.approx(first["loss"], rel=1e-5)
    assert reports["saved_model"]["format"] == "saved_model"
    # It equals train.py's summary and a count made through the serving signature itself.
    summary = json.loads((cifar_run / "summary.json").read_text())
    assert summary["test_top1_error"] == first["top1_error"]
    assert summary["test_loss"] == pytest.approx(first["loss"], rel=1e-5)
    signature = tf.saved_model.load(str(cifar_run / "saved_model" / "1")).signatures[
        "serving_bytes"
    ]
    wrong = total = 0
    for label, name in enumerate(sorted(os.listdir(cifar_dir / "test"))):
        folder = cifar_dir / "test" / name
        encoded = [tf.io.read_file(str(folder / f)) for f in sorted(os.listdir(folder))]
        ids = signature(image_bytes=tf.stack(encoded))["class_ids"].numpy()[:, 0]
        wrong += int(np.sum(ids != label))
        total += len(ids)
    assert (total, wrong / total) == (250, pytest.approx(first["top1_error"]))


def test_metrics_by_hand():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    labels = np.array([0, 2, 1, 1])
    report = evaluation.metrics(probabilities, labels, ["a", "b", "c"])
    assert report["top1_error"] == 0.5 and report["top5_error"] == 0.0
    assert report["loss"] == pytest.approx(-np.mean(np.log([0.7, 0.6, 0.4, 0.2])))
    assert report["per_class_accuracy"] == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert report["confusion_matrix"] == [[1, 0, 0], [1, 0, 1], [0, 0, 1]]


def test_ten_crops_are_corners_centre_and_mirrors():
    image = tf.reshape(tf.range(300 * 256 * 3, dtype=tf.int32) % 251, (300, 256, 3))
    image = tf.cast(image, tf.uint8)
    crops = data.Preprocessing("imagenet", image_size=224).ten_crops(image).numpy()
    assert crops.shape == (10, 224, 224, 3)
    full = image.numpy()  # shorter side is already 256: no resize
    np.testing.assert_array_equal(crops[0], full[:224, :224])
    np.testing.assert_array_equal(crops[3], full[-224:, -224:])
    np.testing.assert_array_equal(crops[4], full[38:262, 16:240])
    np.testing.assert_array_equal(crops[5], crops[0][:, ::-1])


def test_mismatched_classes_missing_and_corrupt_models(cifar_run, tmp_path, run_main):
    result = run_main("evaluate", "--model", cifar_run, "--dataset", "digits")
    assert result.returncode == 1 and "classes" in result.stderr
    result = run_main("evaluate", "--model", tmp_path / "nothing", "--dataset", "digits")
    assert result.returncode == 1 and "does not exist" in result.stderr
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip file")
    result = run_main("evaluate", "--model", corrupt, "--dataset", "digits")
    assert result.returncode == 1 and "Cannot load" in result.stderr
    cifar = data.load_data("synthetic")
    classifier = evaluation.load_classifier(str(cifar_run))
    with pytest.raises(ValueError, match="differ from the dataset's"):
        evaluation.evaluate(classifier, cifar)
    anonymous = evaluation.classifier_from_model(keras.saving.load_model(cifar_run / "model.keras"))
    with pytest.raises(ValueError, match="ten_crop applies to ImageNet-style"):
        evaluation.evaluate(anonymous, cifar, ten_crop=True)


def test_in_memory_model_predicts_as_its_eager_call_for_any_batch_size():
    import keras_resnet

    model = keras_resnet.ResNet(8, stem="cifar", input_shape=(16, 16, 3), classes=3)
    classifier = evaluation.classifier_from_model(model)
    rng = np.random.default_rng(0)
    for batch in (4, 3, 7):  # a last, smaller batch must not be a problem
        images = rng.uniform(0, 255, (batch, 16, 16, 3)).astype("float32")
        expected = keras.ops.convert_to_numpy(model(images, training=False))
        predicted = classifier.predict(images)
        assert predicted.shape == (batch, 3) and predicted.dtype == np.float32
        np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)


def test_evaluate_pretrained_weights_on_real_cifar10(cifar_dir, tmp_path, run_main):
    report_path = tmp_path / "resnet20.json"
    result = run_main(
        "evaluate",
        "--weights",
        "cifar10",
        "--depth",
        "20",
        "--data-dir",
        cifar_dir,
        "--output-json",
        report_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resnet20 weights=cifar10 (keras) on cifar10: top-1 error" in result.stdout
    with open(report_path) as f:
        report = json.load(f)
    # The packaged ResNet-20 scores 8.19% on all 10,000 original test images; these are 250 of
    # them, losslessly (the JPEG copy would cost about 10 points).
    assert report["num_examples"] == 250 and report["top1_error"] < 0.15

    # Classes of other names (or order) than the weights' are refused, not scored.
    renamed = tmp_path / "renamed"
    for folder in sorted((cifar_dir / "test").iterdir()):
        target = renamed / "test" / folder.name.replace("airplane", "plane")
        target.mkdir(parents=True)
        shutil.copy(min(folder.iterdir()), target)
    result = run_main("evaluate", "--weights", "cifar10", "--depth", "20", "--data-dir", renamed)
    assert result.returncode == 1 and "'plane'" in result.stderr and "differ" in result.stderr

    result = run_main("evaluate", "--weights", "cifar10", "--data-dir", cifar_dir)
    assert result.returncode == 1 and "--weights cifar10 needs --depth" in result.stderr
    result = run_main("evaluate", "--model", "x", "--depth", "20", "--data-dir", cifar_dir)
    assert result.returncode == 1 and "go with --weights, not --model" in result.stderr
    result = run_main("evaluate", "--model", "x", "--weights", "cifar10")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


@pytest.mark.slow
def test_a_gray_set_tests_rgb_weights_on_its_images_repeated_into_rgb(
    cifar_dir, tmp_path, run_main
):
    gray_dir = gray_copy(cifar_dir, tmp_path / "gray", splits=("test",))
    gray = data.load_test_data("cifar10", data_dir=str(gray_dir))
    assert gray.image_shape == (32, 32, 1)
    model = keras_resnet.ResNet20(weights="cifar10")
    predicted = model.predict(np.repeat(gray.test.images, 3, -1), verbose=0).argmax(-1)
    model.save(tmp_path / "resnet20.keras")
    model.save_weights(tmp_path / "resnet20.weights.h5")
    # Named weights, the model saved, and its weights saved as a keras_resnet file.
    for flags in (
        ["--weights", "cifar10", "--depth", "20"],
        ["--model", tmp_path / "resnet20.keras"],
        ["--weights", tmp_path / "resnet20.weights.h5", "--depth", "20"],
    ):
        result = run_main(
            "evaluate", *flags, "--data-dir", gray_dir, "--output-json", tmp_path / "gray.json"
        )
        assert result.returncode == 0, result.stderr[-2000:]
        with open(tmp_path / "gray.json") as f:
            top1_error = json.load(f)["top1_error"]
        assert top1_error == pytest.approx(np.mean(predicted != gray.test.labels)), flags


def test_imagenet_names_match_its_wordnet_id_folders_in_the_same_order(
    tmp_path, monkeypatch, no_network
):
    # A model saved from ResNet50(weights="imagenet") names its classes as
    # keras.applications does; ImageNet's folders (and TFDS) by WordNet id.
    from test_predict import cache_class_index

    index = json.loads(cache_class_index(tmp_path, monkeypatch).read_text())
    ids, names = zip(*(index[str(i)] for i in range(1000)))
    classifier = evaluation.Classifier(None, (224, 224, 3), 1000, list(names), "keras", "m")

    def imagenet(class_names):
        return data.Data("imagenet", "folders", list(class_names), (224, 224, 3), *[None] * 5)

    evaluation.check_compatible(classifier, imagenet(ids))
    evaluation.check_compatible(classifier, imagenet(names))
    swapped = list(ids)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match="differ from the dataset's"):
        evaluation.check_compatible(classifier, imagenet(swapped))
    other = dataclasses.replace(classifier, class_names=[f"x{i}" for i in range(1000)])
    with pytest.raises(ValueError, match="differ from the dataset's"):
        evaluation.check_compatible(other, imagenet(ids))
