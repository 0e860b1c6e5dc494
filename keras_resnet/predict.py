"""Classify image files with a trained or pretrained model: `keras-resnet-predict`'s library.

    keras-resnet-predict photos/ --weights imagenet --depth 50
    keras-resnet-predict 'cifar/test/*/*.png' --weights cifar10 --depth 56 --output-json out.json
    keras-resnet-predict cat.jpg --model runs/cifar10-resnet110

The steps, each a function:

- `find_images`: image files, folders (their images, recursively, in sorted
  order) and glob patterns to a list of files;
- `load_predictor`: the model (a run directory, `.keras` file, SavedModel or
  TF Serving base folder; or pretrained weights built into their network by
  `keras_resnet.models.from_weights`) with its class names (`keras_resnet.classes`) and the
  preparation its images need;
- `predict`: each image decoded and prepared as the model expects, the way
  the exported SavedModel's `serving_bytes` signature prepares them
  (`keras_resnet.data.Preprocessing.serving_image`): the run's recorded
  preprocessing (a SavedModel's, in its `assets/preprocessing.json`), or for
  a model without either, the choice training would have
  made for its input size: images up to 64 pixels a side (CIFAR nets: 32x32)
  resized to the input if they differ; larger inputs (ImageNet nets) the
  paper's test crop, shorter side 256 (scaled with the input) and a centre
  crop of 224. Batches go through the model with `Progress`; the top classes
  come by name from `keras_resnet.decode_predictions`.
- `format_table` and `report`: the terminal table and the JSON.

A file that is not an image, a folder without images, a pattern that matches
nothing, a model that does not take images or does not output class
probabilities: a `ValueError` that names it.
"""

import dataclasses
import glob
import os
import sys
import time

import tensorflow as tf

from keras_resnet import classes, evaluation, model_files, models
from keras_resnet import data as data_lib
from keras_resnet.data.sources import IMAGE_EXTENSIONS, any_may_be_bmp, decode_image_file
from keras_resnet.progress import Progress

DEFAULT_TOP = 5
GLOB_CHARACTERS = "*?["


def find_images(inputs):
    """The image files that files, folders and glob patterns name, in order, each once.

    Args:
        inputs: paths: a file (taken as it is: one that is not an image is an
            error when it is decoded), a folder (its files with an image
            extension, `.jpg`, `.jpeg`, `.png`, `.bmp`, `.gif` or `.webp`, in every
            subfolder, linked ones too, each folder once, sorted; hidden
            ones skipped), or a glob pattern
            (`photos/*.jpg`, `data/**/*.png`), whose matches are taken as
            files and folders are.

    Returns:
        A list of file paths.

    Raises:
        ValueError: naming a path that does not exist, a folder without image
            files, or a pattern that matches none.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found, seen = [], set()
    for item in map(os.fspath, inputs):
        if os.path.isdir(item):
            paths = _images_in(item)
            if not paths:
                raise ValueError(
                    f"No image files in folder {item!r} (looked for "
                    f"{', '.join(IMAGE_EXTENSIONS)} in it and its subfolders)."
                )
        elif os.path.isfile(item):
            paths = [item]
        elif any(c in item for c in GLOB_CHARACTERS):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise ValueError(f"No files match {item!r}.")
            paths = [p for m in matches for p in (_images_in(m) if os.path.isdir(m) else [m])]
            if not paths:
                raise ValueError(f"{item!r} matches only folders without image files.")
        else:
            raise ValueError(f"No such file or folder: {item!r}.")
        for path in paths:
            if path not in seen:
                seen.add(path)
                found.append(path)
    return found


def _images_in(folder):
    paths = []
    visited = set()  # real paths: a link back up the tree is walked once, not forever
    for root, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            folders[:] = []
            continue
        visited.add(real)
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        paths += [
            os.path.join(root, name)
            for name in sorted(names)
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return paths


@dataclasses.dataclass
class Predictor:
    """A model ready to classify image files.

    Attributes:
        classifier: the `keras_resnet.evaluation.Classifier` (pixels to probabilities).
        class_names: tuple of the model's class names in label order.
        preprocessing: the `keras_resnet.data.Preprocessing` whose
            `serving_image` prepares each decoded image.
        label: how reports name the model.
    """

    classifier: evaluation.Classifier
    class_names: tuple
    preprocessing: data_lib.Preprocessing
    label: str

    @property
    def input_shape(self):
        return tuple(self.classifier.input_shape)


def load_predictor(model=None, weights=None, depth=None, bottleneck_stride=None, labels=None):
    """Loads a model to classify images with, its class names and its image preparation.

    Args:
        model: a run directory, `.keras` file, SavedModel folder or TF Serving
            base folder (`keras_resnet.model_files`); or a `keras.Model`.
        weights: instead of `model`, pretrained weights (`keras_resnet.models.from_weights`).
        depth, bottleneck_stride: with `weights`, as `from_weights` takes.
        labels: optional class names in label order, instead of the model's
            own (a path of a text file, one a line, or a list).

    Returns:
        A `Predictor`. A model that knows no class names gets "0", "1", ...

    Raises:
        ValueError: for a model that cannot be loaded, does not take images of
            a fixed size or does not output class probabilities, or class
            names of another count than its classes.
    """
    if (model is None) == (weights is None):
        raise ValueError("Give a model or pretrained weights (one of them).")
    names_from = "the model's own" if labels is None else "the labels given"  # for errors
    if isinstance(labels, (str, os.PathLike)):  # before the model, which may be a download
        names_from = f"labels {os.fspath(labels)!r}"
        if not os.path.isfile(labels):
            raise ValueError(f"labels {os.fspath(labels)!r} is not a file (one class name a line).")
        try:
            with open(labels, encoding="utf-8-sig") as f:  # a byte-order mark is no name
                labels = [line.rstrip("\n") for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(
                f"labels {os.fspath(labels)!r} cannot be read as UTF-8 text, one class name "
                f"a line: {error}"
            ) from None
    recorded = {}
    if weights is not None:
        keras_model = models.from_weights(weights, depth, bottleneck_stride=bottleneck_stride)
        _check_keras_model(keras_model, weights)
        classifier = evaluation.classifier_from_model(keras_model, keras_model.class_names, weights)
        label = f"{keras_model.name} weights={weights}"
    elif isinstance(model, (str, os.PathLike)):
        loaded = model_files.load_model(os.fspath(model))
        if loaded.kind == "keras":
            _check_keras_model(loaded.model, loaded.path)
        classifier = evaluation.classifier_from_loaded(loaded)
        recorded, label = loaded.data, os.fspath(model)
    else:
        _check_keras_model(model, model.name)
        classifier = evaluation.classifier_from_model(model, getattr(model, "class_names", None))
        label = model.name
    shape = tuple(classifier.input_shape)
    if len(shape) != 3 or None in shape or shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"The model {label} takes inputs of shape {shape}; classifying image files needs "
            "images of a fixed size, (height, width, channels) with 1, 3 or 4 channels: build "
            "it with input_shape=(height, width, channels)."
        )
    names = classes.names_of(labels if labels is not None else classifier.class_names)
    if names is None:
        names = tuple(str(i) for i in range(classifier.num_classes))
    if len(names) != classifier.num_classes:
        raise ValueError(
            f"{len(names)} class names ({names_from}) for the model {label}, which has "
            f"{classifier.num_classes} classes."
        )
    preprocessing = data_lib.Preprocessing.from_description(recorded) or (
        data_lib.Preprocessing.for_input_shape(shape)
    )
    return Predictor(classifier, names, preprocessing, label)


def _check_keras_model(model, label):
    shape = model.output_shape
    headless = isinstance(model, models.ResNetModel) and "predictions" not in {
        layer.name for layer in model.layers
    }
    if headless or not (
        isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[-1], int)
    ):
        raise ValueError(
            f"The model {label} outputs shape {shape}, not class probabilities (batch, classes): "
            "classifying images needs a model with its classifier (include_top=True)."
        )
    last = model.layers[-1] if model.layers else None
    if getattr(getattr(last, "activation", None), "__name__", None) == "linear":
        raise ValueError(
            f"The model {label} outputs logits (its last layer, {last.name!r}, has no "
            "activation), not class probabilities: build it with "
            "classifier_activation='softmax' (the default)."
        )


def prepare_image(path, preprocessing, input_shape, palette_bmps=True):
    """Reads and decodes one image file and prepares it as the model takes it (float32).

    `palette_bmps`: `decode_image_file`'s.
    """
    height, width, channels = input_shape
    image = decode_image_file(path, channels, palette_bmps)
    return preprocessing.serving_image(image, height, width)


def predict(predictor, paths, top=None, batch_size=64):
    """Classifies image files in batches.

    Args:
        predictor: a `Predictor` from `load_predictor`.
        paths: image files (`find_images`).
        top: int, classes per image, at most the model's. Default None: 5, or
            all of a model with fewer.
        batch_size: int, images per call of the model.

    Returns:
        A list with one entry per file: `{"file": path, "predictions":
        [{"class_id": 3, "class_name": "cat", "score": 0.91}, ...]}`, best first.

    Raises:
        ValueError: for a `top` or `batch_size` out of range, or a file that
            cannot be read or is not an image (the message names it).
    """
    count = predictor.classifier.num_classes
    top = min(DEFAULT_TOP, count) if top is None else top
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= count:
        raise ValueError(f"--top must be from 1 to {count} (the model's classes), received {top}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be positive, received {batch_size}.")
    paths = list(paths)
    if not paths:
        raise ValueError("No image files to classify.")
    shape, palette_bmps = predictor.input_shape, any_may_be_bmp(paths)
    dataset = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(
            lambda path: prepare_image(path, predictor.preprocessing, shape, palette_bmps),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(batch_size)
        .prefetch(1)
    )
    results = []
    with Progress("Classifying images", len(paths)) as progress:
        iterator = iter(dataset)
        while len(results) < len(paths):
            try:
                images = next(iterator)
            except tf.errors.OpError as error:
                _raise_bad_file(paths[len(results) : len(results) + batch_size], error)
            decoded = classes.decode_predictions(
                predictor.classifier.predict(images), top, predictor.class_names
            )
            for path, predictions in zip(paths[len(results) :], decoded):
                results.append({"file": path, "predictions": [p._asdict() for p in predictions]})
            progress.add(len(decoded))
    return results


def _raise_bad_file(paths, error):
    """Names the file of a batch that could not be read or decoded."""
    data_lib.name_unreadable_image(error, paths)
    raise ValueError(f"Cannot prepare the images {paths[0]!r}...: {error.message}") from None


def format_table(results):
    """The terminal table: one row per image, its top classes with their probabilities."""
    top = max(len(r["predictions"]) for r in results)
    header = ["image"] + [f"top {i + 1}" for i in range(top)]
    rows = [
        [r["file"]] + [f"{p['class_name']} {100 * p['score']:.2f}%" for p in r["predictions"]]
        for r in results
    ]
    widths = [
        max(len(row[i]) for row in [header, *rows] if i < len(row)) for i in range(len(header))
    ]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *rows]
    )


def report(predictor, results, seconds=None):
    """The JSON `--output-json` writes: the model, how images were prepared, the results."""
    return {
        "model": predictor.label,
        "format": predictor.classifier.kind,
        "input_shape": list(predictor.input_shape),
        "preprocessing": {  # how each image was prepared (the training flip does not apply)
            "kind": predictor.preprocessing.kind,
            "image_size": predictor.preprocessing.image_size,
        },
        "num_images": len(results),
        "top": max((len(r["predictions"]) for r in results), default=0),
        "seconds": None if seconds is None else round(seconds, 3),
        "images": results,
    }


def classify(inputs, top=None, batch_size=64, **model):
    """`find_images`, `load_predictor` and `predict` in one call: the command's work.

    Args:
        inputs: files, folders and glob patterns (`find_images`).
        top, batch_size: as `predict` takes.
        **model: `load_predictor`'s arguments (`model=` or `weights=` ...).

    Returns:
        `report`'s dict.
    """
    paths = find_images(inputs)
    predictor = load_predictor(**model)
    started = time.perf_counter()
    results = predict(predictor, paths, top, batch_size)
    return report(predictor, results, time.perf_counter() - started)


if __name__ == "__main__":
    import keras_resnet_cli

    sys.exit(keras_resnet_cli.run_module("predict"))
