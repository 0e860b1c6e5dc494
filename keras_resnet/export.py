"""Export trained models as SavedModels for TF Serving (and TFLite).

`export_saved_model` writes `EXPORT_BASE/<version>/` (the next free version by
default), the layout TF Serving polls. The SavedModel needs no keras_resnet
code: it loads with plain `tf.saved_model.load`. Its signatures:

- `serving_default`: `images`, float32 `[batch, height, width, channels]`,
  raw pixels 0-255 (REST clients may send integers);
- `serving_uint8`: the same as uint8 (compact gRPC requests);
- `serving_bytes`: `image_bytes`, string `[batch]` of encoded JPEG/PNG/BMP/GIF/WebP
  images, decoded and brought to the model's size inside the graph (resized,
  or for ImageNet-style models the paper's test crop: shorter side 256,
  centre crop).

Each returns `probabilities` `[batch, classes]`, and for the top
`min(5, classes)` classes their `class_ids`, `class_names` and `scores`. The
class names travel as the asset `assets/labels.txt`, and the image preparation
`serving_bytes` does as `assets/preprocessing.json` (a `Preprocessing`'s
description, so that `keras-resnet-predict` prepares image files the same way).
The model's own preprocessing (mean subtraction) is inside the graph. A version is written
under a temporary name and renamed when complete, so TF Serving never loads
half an export; an existing version is never overwritten.

The command (`keras_resnet.cli.export`):

    keras-resnet-export --model runs/cifar10-resnet110 --export-base /models/resnet110
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_resnet import data as data_lib
from keras_resnet import files, model_files, models

TOP_K = 5


def next_version(export_base):
    """The next free numeric version folder under a TF Serving base path."""
    if not os.path.isdir(export_base):
        return 1
    return max((int(n) for n in os.listdir(export_base) if n.isdigit()), default=0) + 1


def version_folder(export_base, version=None):
    """`(version, its folder)` under `export_base`: `version`, or the next free one.

    Raises:
        ValueError: for a version below 1, or one that exists (nothing is overwritten).
    """
    version = next_version(export_base) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive int, received {version}.")
    target = os.path.join(export_base, str(version))
    if os.path.exists(target):
        raise ValueError(f"{target!r} exists; choose another --version (nothing is overwritten).")
    return version, target


def check_fixed_input(model):
    """The model's (height, width, channels); an error unless all are fixed (serving resizes
    every image to that size)."""
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or None in shape:
        raise ValueError(
            f"Export needs a fixed input size; the model takes {model.input_shape}. Build it "
            "with input_shape=(height, width, channels): a backbone takes any size without it, "
            "e.g. ResNet50(include_top=False, input_shape=(224, 224, 3))."
        )
    return shape


def export_saved_model(model, export_base, version=None, class_names=None, preprocessing=None):
    """Writes `model` as a TF Serving SavedModel version.

    Args:
        model: a Keras classifier taking `(height, width, channels)` pixels.
        export_base: the model's base path; versions are its numeric subfolders.
        version: int, or None for the next free one. An existing version is
            an error: nothing is overwritten.
        class_names: list of names in label order. Default None: the model's
            own (`model.class_names`, which a keras_resnet model keeps), else
            "0", "1", ...
        preprocessing: the `keras_resnet.data.Preprocessing` the model was
            trained with: `serving_bytes` gives decoded images its test crop
            (the paper's centre crop for `"imagenet"`), then resizes them to
            the model's size if they still differ. None: the choice training
            makes for the model's input size
            (`keras_resnet.data.Preprocessing.for_input_shape`).

    Returns:
        The path of the written version.

    Raises:
        ValueError: for an input size that is not fixed, class names of
            another count, or a keras.applications ResNet, which expects its
            own preprocessing, not pixels (`keras_resnet.models.check_takes_pixels`).

    Example:

    >>> path = export_saved_model(model, "/models/resnet20", class_names=names)
    """
    models.check_takes_pixels(model, model.name)  # serving_bytes gives it pixels
    height, width, channels = check_fixed_input(model)
    classes = model.output_shape[-1]
    if class_names is None:
        class_names = getattr(model, "class_names", None)
    class_names = [str(i) for i in range(classes)] if class_names is None else list(class_names)
    if len(class_names) != classes:
        raise ValueError(f"{len(class_names)} class names for a model with {classes} outputs.")
    if preprocessing is None:
        preprocessing = data_lib.Preprocessing.for_input_shape((height, width))
    elif not isinstance(preprocessing, data_lib.Preprocessing):
        raise ValueError(
            f"preprocessing must be a keras_resnet.data.Preprocessing or None, "
            f"received {preprocessing!r}."
        )
    version, target = version_folder(export_base, version)
    os.makedirs(export_base, exist_ok=True)

    staging = tempfile.mkdtemp(prefix=f".tmp-version-{version}-", dir=export_base)
    try:
        labels_path = os.path.join(staging, "labels.txt")
        with open(labels_path, "w", encoding="utf-8") as f:
            f.write("\n".join(name.replace("\n", " ") for name in class_names) + "\n")
        archive = _archive(model, labels_path, (height, width, channels), classes, preprocessing)
        saved = os.path.join(staging, "saved_model")
        archive.write_out(saved, verbose=False)
        # Beside labels.txt, for keras_resnet to read; the graph itself does not use it.
        described = os.path.join(saved, "assets", model_files.PREPROCESSING_ASSET)
        files.write_json(described, preprocessing.describe())
        files.sync_tree(saved)
        os.replace(saved, target)
        files.sync_folder(export_base)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _archive(model, labels_path, shape, classes, preprocessing):
    height, width, channels = shape
    labels = tf.saved_model.Asset(labels_path)
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            labels,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="",
    )
    k = min(TOP_K, classes)

    def answer(images):
        probabilities = tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)
        scores, ids = tf.math.top_k(probabilities, k)
        ids = tf.cast(ids, tf.int64)
        return {
            "probabilities": probabilities,
            "class_ids": ids,
            "class_names": table.lookup(ids),
            "scores": scores,
        }

    def decode(encoded):
        image = data_lib.decode_image(encoded, channels)
        return preprocessing.serving_image(image, height, width)

    def from_bytes(image_bytes):
        images = tf.map_fn(
            decode,
            image_bytes,
            fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32),
        )
        return answer(images)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)
    pixels = [None, height, width, channels]
    archive.add_endpoint(
        "serving_default",
        answer,
        input_signature=[tf.TensorSpec(pixels, tf.float32, name="images")],
    )
    archive.add_endpoint(
        "serving_uint8", answer, input_signature=[tf.TensorSpec(pixels, tf.uint8, name="images")]
    )
    archive.add_endpoint(
        "serving_bytes",
        from_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    return archive


def check_tflite_path(path):
    """Raises ValueError unless `path` names a `.tflite` file."""
    if not path.endswith(".tflite"):
        raise ValueError(f"The TFLite path must end in .tflite, received {path!r}.")


def export_tflite(model, path, check_images=None):
    """Writes the model as TFLite (pixels in, probabilities out); checks it agrees.

    Uses Keras's LiteRT exporter. TFLite has no lookup tables for the class
    names, so the file returns probabilities only.

    Args:
        model: the Keras model.
        path: the `.tflite` file to write.
        check_images: optional float32 batch; the TFLite model's probabilities
            must match the Keras model's (to 1e-4) or nothing is written.

    Returns:
        The largest absolute difference seen on `check_images` (0.0 without).

    Raises:
        ValueError: for a path not ending in `.tflite`, a keras.applications
            ResNet (`keras_resnet.models.check_takes_pixels`), or a TFLite
            model that disagrees with the Keras model.
    """
    check_tflite_path(path)
    models.check_takes_pixels(model, model.name)
    difference = 0.0
    with files.atomic_path(path) as staging:
        model.export(staging, format="litert", verbose=False)
        if check_images is not None:
            interpreter = tf.lite.Interpreter(staging)
            interpreter.allocate_tensors()
            (source,) = interpreter.get_input_details()
            (target,) = interpreter.get_output_details()
            got = []
            for image in check_images:
                interpreter.set_tensor(source["index"], image[None])
                interpreter.invoke()
                got.append(interpreter.get_tensor(target["index"]))
            expected = keras.ops.convert_to_numpy(model.predict(check_images, verbose=0))
            difference = float(np.abs(np.concatenate(got) - expected).max())
            if difference > 1e-4:
                raise ValueError(
                    f"TFLite predictions differ from the Keras model's by {difference:.2e}."
                )
    return difference


def load_for_export(path):
    """Loads a `.keras` file or a run directory's model with its class names.

    Returns:
        (model, class_names or None, `Preprocessing` or None).
    """
    loaded = model_files.load_model(path, saved_model=False)
    return (
        loaded.model,
        loaded.data.get("class_names"),
        data_lib.Preprocessing.from_description(loaded.data),
    )
