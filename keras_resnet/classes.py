"""Class names that travel with a model, and `decode_predictions`.

A model's class names come with it:

- a pretrained model's are its weights' (`keras_resnet.weights.NAMED`):
  CIFAR-10's ten, or ImageNet's thousand from the class index that
  keras.applications' `decode_predictions` reads (the same file and md5,
  through the Keras cache; a cached copy needs no network);
- a trained model keeps its data's in its `.keras` file
  (`ResNetModel.class_names`, set by the training run);
- an export writes them to `assets/labels.txt`, where TF Serving's
  `class_names` output and `keras_resnet.model_files` read them.

`decode_predictions` turns a batch of probabilities into the top classes by
name, in keras.applications' convention: one list per sample, best first, of
`(class_id, class_name, score)` tuples. The first element is the class's
index, the `class_ids` of the exported SavedModel (keras.applications gives
ImageNet's WordNet id there); the name and the score are where Keras has them.

    model = keras_resnet.ResNet56(weights="cifar10")
    keras_resnet.decode_predictions(model.predict(images), top=3, class_names=model)
    # [[Prediction(class_id=3, class_name='cat', score=0.91), ...], ...]
"""

import collections

import numpy as np

from keras_resnet import weights as weights_lib

Prediction = collections.namedtuple("Prediction", ["class_id", "class_name", "score"])
Prediction.__doc__ = """One of a sample's top classes: its index, its name and its probability."""


def names_of(class_names, classes=None):
    """The class names a `class_names` argument stands for, as a tuple (or None).

    Args:
        class_names: a sequence of names in label order; a model (its
            `class_names` attribute, which a keras_resnet model has); the
            name of named weights (`"cifar10"`, `"imagenet"`); or None.
        classes: int, the outputs they must name; None: not checked.

    Returns:
        A tuple of str, or None when `class_names` is None or a model without
        names.

    Raises:
        ValueError: for names of another count than `classes`, or ImageNet's
            class index that cannot be fetched.
    """
    if class_names is None:
        return None
    if isinstance(class_names, str):
        if class_names not in weights_lib.NAMED:
            raise ValueError(
                f"class_names={class_names!r} is not the name of named weights "
                f"({', '.join(map(repr, weights_lib.NAMED))}); pass a list of names or a model."
            )
        names = weights_lib.NAMED[class_names].class_names()
    elif hasattr(class_names, "class_names") or hasattr(class_names, "layers"):  # a model
        names = getattr(class_names, "class_names", None)
        if names is None:
            return None
    else:
        names = class_names
    names = tuple(str(name) for name in names)
    if classes is not None and len(names) != classes:
        raise ValueError(f"{len(names)} class names for {classes} classes.")
    return names


def decode_predictions(probabilities, top=5, class_names=None):
    """The top classes of each sample, by name: keras.applications' `decode_predictions`.

    Args:
        probabilities: array `(samples, classes)` of a classifier's outputs.
        top: int, how many classes per sample, at most `classes`. Default 5.
        class_names: the names of the classes: a model with them (a
            keras_resnet model knows its own: `class_names=model`), a list in
            label order, or the name of named weights (`"cifar10"`,
            `"imagenet"`). Default None: ImageNet's for 1000 classes (as
            keras.applications does; the class index comes through the Keras
            cache), else an error.

    Returns:
        A list with one list per sample of `top` `Prediction` tuples
        `(class_id, class_name, score)`, highest score first.

    Raises:
        ValueError: for probabilities that are not 2D, a `top` out of range,
            names of another count, or no names to be had.

    Example:

    >>> model = keras_resnet.ResNet20(weights="cifar10")
    >>> decode_predictions(model.predict(images, verbose=0), top=2, class_names=model)[0]
    [Prediction(class_id=3, class_name='cat', score=0.83), Prediction(class_id=5, ...)]
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(
            "decode_predictions expects a batch of predictions, an array of shape "
            f"(samples, classes); received shape {probabilities.shape}."
        )
    classes = probabilities.shape[1]
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= classes:
        raise ValueError(f"top must be an int from 1 to {classes} (the classes), received {top!r}.")
    if class_names is None and classes == 1000:
        class_names = "imagenet"
    names = names_of(class_names, classes)
    if names is None:
        raise ValueError(
            f"No class names for {classes} classes: pass class_names= (a list of names, a "
            "model that has them, or 'cifar10' / 'imagenet')."
        )
    # A stable sort on the negated scores: ties keep label order.
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    return [
        [Prediction(int(i), names[i], float(row[i])) for i in indices]
        for row, indices in zip(probabilities, order)
    ]
