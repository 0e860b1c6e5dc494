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
import re

import numpy as np
import tensorflow as tf

from keras_resnet import data as data_lib
from keras_resnet import model_files, models
from keras_resnet.progress import Progress
from keras_resnet.weights import keras_applications


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
    return classifier_from_loaded(model_files.load_model(path))


def classifier_from_loaded(loaded):
    """A `Classifier` over a `keras_resnet.model_files.LoadedModel`, with its class names."""
    class_names = loaded.data.get("class_names")
    if loaded.kind == "keras":
        return classifier_from_model(loaded.model, class_names, loaded.path)
    return _classifier_from_saved_model(loaded.model, class_names, loaded.path)


def classifier_from_model(model, class_names=None, path=None):
    """A `Classifier` over an in-memory Keras model, which takes RGB pixels 0-255.

    Raises:
        ValueError: for a keras.applications ResNet (`models.check_takes_pixels`).
    """
    models.check_takes_pixels(model, repr(path) if path else model.name)
    # A traced call, not an eager one: eagerly, the functional model keeps every
    # layer's output until the call returns (gigabytes more at the peak of a
    # ResNet-1202 run) and runs several times slower. Not `predict_on_batch`: under
    # a distribution strategy that gives every replica the whole batch.
    forward = tf.function(
        lambda images: model(images, training=False), reduce_retracing=True, autograph=False
    )

    def predict(images):
        return forward(images).numpy().astype(np.float32)

    return Classifier(
        predict, tuple(model.input_shape[1:]), model.output_shape[-1], class_names, "keras", path
    )


def _classifier_from_saved_model(loaded, class_names, path):
    try:
        signature = loaded.signatures["serving_default"]
    except KeyError:
        raise ValueError(f"The SavedModel {path!r} has no serving_default signature.") from None
    spec = signature.structured_input_signature[1]
    if len(spec) != 1:
        raise ValueError(
            f"{path!r}: serving_default takes {sorted(spec)}, expected one image input."
        )
    ((input_name, input_spec),) = spec.items()
    outputs = signature.structured_outputs
    output_name = "probabilities" if "probabilities" in outputs else next(iter(outputs))

    def predict(images):
        result = signature(**{input_name: tf.cast(images, input_spec.dtype)})
        return result[output_name].numpy().astype(np.float32)

    return Classifier(
        predict,
        tuple(input_spec.shape[1:]),
        outputs[output_name].shape[-1],
        class_names,
        "saved_model",
        path,
    )


def _same_classes(model_names, data_names):
    """Whether two lists name the same classes in the same order.

    ImageNet's are named two ways: keras.applications' readable names, which
    a pretrained model carries, and WordNet ids, which TFDS's imagenet2012
    and ImageNet's class folders use. Both come from the same class index.
    """
    if list(model_names) == list(data_names):
        return True
    if len(data_names) != 1000 or not all(re.fullmatch(r"n\d{8}", n) for n in data_names):
        return False
    try:  # cached wherever ImageNet's names were read before
        index = keras_applications.class_index()
    except ValueError:  # not to be had: the names differ, as far as can be known
        return False
    return [name for _, name in index] == list(model_names) and [
        wordnet_id for wordnet_id, _ in index
    ] == list(data_names)


def check_compatible(classifier, data):
    """Raises ValueError when a model cannot be evaluated on a dataset."""
    if classifier.num_classes != data.num_classes:
        raise ValueError(
            f"The model has {classifier.num_classes} classes; {data.name} has "
            f"{data.num_classes} ({', '.join(data.class_names[:12])}...)."
        )
    if classifier.class_names is not None and not _same_classes(
        classifier.class_names, data.class_names
    ):
        raise ValueError(
            f"The model's classes {classifier.class_names} differ from the dataset's "
            f"{data.class_names}."
        )
    if tuple(classifier.input_shape) != tuple(data.image_shape):
        raise ValueError(
            f"The model takes images of shape {classifier.input_shape}; the dataset "
            f"gives {data.image_shape}."
        )


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
        if data.preprocessing.kind != "imagenet":
            raise ValueError("ten_crop applies to ImageNet-style (large-image) datasets only.")
        dataset = data_lib.ten_crop_dataset(data, data.test, batch_size)
    else:
        dataset = data_lib.eval_dataset(data, data.test, batch_size)

    probabilities, labels = [], []
    what = "Evaluating 10 crops of each test image" if ten_crop else "Evaluating the test images"
    with Progress(what, data.test.num_examples) as progress:
        try:
            for images, batch_labels in dataset:
                images = tf.cast(images, tf.float32)
                if ten_crop:
                    crops = tf.reshape(images, [-1, *data.image_shape])
                    predicted = classifier.predict(crops).reshape(images.shape[0], 10, -1)
                    predicted = predicted.mean(axis=1)
                else:
                    predicted = classifier.predict(images)
                probabilities.append(predicted)
                labels.append(batch_labels.numpy())
                progress.add(len(labels[-1]))
        except tf.errors.OpError as error:
            paths, seen = data.test.paths, sum(map(len, labels))
            data_lib.name_unreadable_image(
                error, None if paths is None else paths[seen : seen + batch_size]
            )
            raise
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
    per_class = {
        name: float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None
        for i, name in enumerate(class_names)
    }
    return {
        "top1_error": float(np.mean(predicted != labels)),
        "top5_error": float(np.mean(~(top_k == labels[:, None]).any(axis=1))),
        "loss": float(-np.mean(np.log(np.clip(probabilities[np.arange(n), labels], 1e-7, 1.0)))),
        "num_examples": int(n),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
    }
