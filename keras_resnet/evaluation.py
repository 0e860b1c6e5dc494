"""Evaluate trained models: top-1/top-5 error, loss, per-class accuracy, confusion.

`load_classifier` takes any of the formats a run produces and gives one
callable, so the numbers are computed the same way whatever the format:

- a run directory (its `model.keras`, class names from `config.json`);
- a `.keras` file;
- a SavedModel version folder (its `serving_default` signature, class names
  from `assets/labels.txt`), or a TF Serving base folder (its latest version).

For ImageNet-style data, `ten_crop=True` is the paper's 10-crop test: the
four corners and the centre of the shorter-side-256 image, and their mirror
images; the probabilities are averaged.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_resnet import data as data_lib


@dataclasses.dataclass
class Classifier:
    """A loaded model as a function of float32 pixels to probabilities.

    Attributes:
        predict: callable, float32 `[batch, h, w, c]` pixels -> numpy probabilities.
        input_shape: (height, width, channels).
        num_classes: int.
        class_names: list of names, or None when the format does not carry them.
        kind: `"keras"` or `"saved_model"`.
        path: the file or folder loaded.
    """

    predict: object
    input_shape: tuple
    num_classes: int
    class_names: list
    kind: str
    path: str


def load_classifier(path):
    """Loads a run directory, `.keras` file, SavedModel or TF Serving base folder.

    Raises:
        ValueError: for a missing path, an unknown layout or a file that does not load.
    """
    if not os.path.exists(path):
        raise ValueError(f"Model path {path!r} does not exist.")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.keras")):
        return _load_keras(os.path.join(path, "model.keras"))
    if os.path.isfile(path) and path.endswith(".keras"):
        return _load_keras(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        return _load_saved_model(path)
    if os.path.isdir(path):
        versions = [n for n in os.listdir(path) if n.isdigit()
                    and os.path.isfile(os.path.join(path, n, "saved_model.pb"))]
        if versions:
            return _load_saved_model(os.path.join(path, max(versions, key=int)))
    raise ValueError(f"{path!r} is not a run directory (with model.keras), a .keras file, a "
                     "SavedModel folder (with saved_model.pb) or a TF Serving base folder.")


def load_keras_run(path):
    """Loads a `.keras` file and the data description of its run.

    Returns:
        (model, the `data` entry of the `config.json` beside the file, or {}).
    """
    try:
        model = keras.saving.load_model(path)
    except Exception as error:
        raise ValueError(f"Cannot load {path!r}: {error}") from None
    config = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if not os.path.isfile(config):
        return model, {}
    with open(config) as f:
        return model, json.load(f).get("data", {})


def _load_keras(path):
    model, described = load_keras_run(path)
    return classifier_from_model(model, described.get("class_names"), path)


def classifier_from_model(model, class_names=None, path=None):
    """A `Classifier` over an in-memory Keras model."""
    # A traced call, not an eager one: eagerly, the functional model keeps every
    # layer's output until the call returns (6.5 GiB more at the peak of a
    # ResNet-1202 run, batch 128) and runs several times slower. Not `predict_on_batch`: under a
    # distribution strategy that gives every replica the whole batch.
    forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)

    def predict(images):
        return forward(images).numpy().astype(np.float32)

    return Classifier(predict, tuple(model.input_shape[1:]), model.output_shape[-1], class_names,
                      "keras", path)


def _load_saved_model(path):
    try:
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures["serving_default"]
    except Exception as error:
        raise ValueError(f"Cannot load the SavedModel {path!r}: {error}") from None
    spec = signature.structured_input_signature[1]
    if len(spec) != 1:
        raise ValueError(f"{path!r}: serving_default takes {sorted(spec)}, expected one image input.")
    (input_name, input_spec), = spec.items()
    outputs = signature.structured_outputs
    output_name = "probabilities" if "probabilities" in outputs else next(iter(outputs))
    labels = os.path.join(path, "assets", "labels.txt")
    class_names = None
    if os.path.isfile(labels):
        with open(labels) as f:
            class_names = [line.rstrip("\n") for line in f]

    def predict(images):
        result = signature(**{input_name: tf.cast(images, input_spec.dtype)})
        return result[output_name].numpy().astype(np.float32)

    return Classifier(predict, tuple(input_spec.shape[1:]), outputs[output_name].shape[-1],
                      class_names, "saved_model", path)


def ten_crops(image, image_size):
    """The paper's 10 test crops of one image: corners, centre, and their mirrors."""
    image = data_lib.resize_short_side(image, round(data_lib.TEST_SHORT_SIDE * image_size / 224))
    shape = tf.shape(image)
    bottom, right = shape[0] - image_size, shape[1] - image_size
    offsets = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    crops = tf.stack([image[y : y + image_size, x : x + image_size] for y, x in offsets])
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def check_compatible(classifier, data):
    """Raises ValueError when a model cannot be evaluated on a dataset."""
    if classifier.num_classes != data.num_classes:
        raise ValueError(f"The model has {classifier.num_classes} classes; {data.name} has "
                         f"{data.num_classes} ({', '.join(data.class_names[:12])}...).")
    if classifier.class_names is not None and list(classifier.class_names) != list(data.class_names):
        raise ValueError(f"The model's classes {classifier.class_names} differ from the dataset's "
                         f"{data.class_names}.")
    if tuple(classifier.input_shape) != tuple(data.image_shape):
        raise ValueError(f"The model takes images of shape {classifier.input_shape}; the dataset "
                         f"gives {data.image_shape}.")


def evaluate(classifier, data, batch_size=256, ten_crop=False):
    """Evaluates a classifier on the test split of `data`.

    Args:
        classifier: a `Classifier` from `load_classifier`.
        data: a `keras_resnet.data.Data`.
        batch_size: int, images per call.
        ten_crop: bool, the paper's 10-crop testing (ImageNet-style data only).

    Returns:
        dict with `top1_error`, `top5_error`, `loss`, `num_examples`,
        `per_class_accuracy` ({class name: accuracy}) and `confusion_matrix`
        (rows: true class, columns: predicted).
    """
    check_compatible(classifier, data)
    if ten_crop:
        if data.augmentation != "scale":
            raise ValueError("ten_crop applies to ImageNet-style (large-image) datasets only.")
        size = data.image_shape[0]
        dataset = data.test.dataset().map(lambda image, label: (ten_crops(image, size), label),
                                          num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(max(1, batch_size // 10)).prefetch(tf.data.AUTOTUNE)
    else:
        dataset = data_lib.eval_dataset(data, data.test, batch_size)

    probabilities, labels = [], []
    for images, batch_labels in dataset:
        images = tf.cast(images, tf.float32)
        if ten_crop:
            crops = tf.reshape(images, [-1, *data.image_shape])
            predicted = classifier.predict(crops).reshape(images.shape[0], 10, -1).mean(axis=1)
        else:
            predicted = classifier.predict(images)
        probabilities.append(predicted)
        labels.append(batch_labels.numpy())
    probabilities, labels = np.concatenate(probabilities), np.concatenate(labels).astype(np.int64)
    return metrics(probabilities, labels, data.class_names)


def metrics(probabilities, labels, class_names):
    """Top-1/top-5 error, cross-entropy, per-class accuracy and confusion matrix."""
    n, classes = probabilities.shape
    predicted = probabilities.argmax(axis=1)
    k = min(5, classes)
    top_k = np.argsort(-probabilities, axis=1)[:, :k]
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {name: float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None
                 for i, name in enumerate(class_names)}
    return {
        "top1_error": float(np.mean(predicted != labels)),
        "top5_error": float(np.mean(~(top_k == labels[:, None]).any(axis=1))),
        "loss": float(-np.mean(np.log(np.clip(probabilities[np.arange(n), labels], 1e-7, 1.0)))),
        "num_examples": int(n),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def plot_confusion(report, class_names, path, title=""):
    """Writes the confusion matrix (counts, row-normalised colours) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(report["confusion_matrix"])
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(5, 0.5 * len(class_names) + 2)
    fig, axis = plt.subplots(figsize=(size, size))
    axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90)
    axis.set_yticks(ticks, class_names)
    axis.set(xlabel="predicted class", ylabel="true class",
             title=f"{title} top-1 error {100 * report['top1_error']:.2f}%".strip())
    if len(class_names) <= 20:
        for (row, column), count in np.ndenumerate(counts):
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if rates[row, column] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=100)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
