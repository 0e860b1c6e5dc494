"""The core of pretrained weights: `Pretrained`, the table entry of named weights, the checks.

Every source module (`keras_applications`, `pytorch`, `npz`, `packaged`) reads
its files into a `Pretrained`: arrays in this package's layout under its layer
names, with the input normalization they were trained with and the batch-norm
epsilon their statistics were computed for. This module checks that they fit
a requested network and its classifier, and assigns them to a built model:
each batch norm's variance takes the difference between the weights' epsilon
and the layer's, so that `variance + epsilon`, which is what a batch norm
divides by, stays what it was trained with.
"""

import dataclasses
import os
from typing import Callable

import keras
import numpy as np

from keras_resnet import specs

# The `ResNet` arguments that a weights file fixes (`Source.architecture`).
ARCHITECTURE_FLAGS = ("depth", "stem", "shortcut", "bottleneck_stride")


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """Trained weights in this package's layout, with what they fit.

    Attributes:
        source: where they come from, for messages and metadata.
        spec: the `keras_resnet.specs.Spec` of the network they belong to.
        classes: outputs of their classifier; None when they have none.
        input_mean: per-channel RGB mean the model subtracts from pixels 0-255.
        input_std: per-channel RGB divisor applied after it.
        bn_epsilon: the batch-norm epsilon the statistics were computed for.
        layers: layer name -> list of arrays in the order of the layer's
            `get_weights()` (batch norm: gamma, beta, moving mean, variance).
    """

    source: str
    spec: specs.Spec
    classes: int
    input_mean: np.ndarray
    input_std: np.ndarray
    bn_epsilon: float
    layers: dict

    @property
    def architecture(self):
        """The `ResNet` arguments these weights fix: `{"depth": 20, "stem": "cifar", ...}`."""
        return {flag: getattr(self.spec, flag) for flag in ARCHITECTURE_FLAGS}

    @property
    def channels(self):
        """The channels of the images they take: their first conv's input channels."""
        return self.layers["conv1_conv"][0].shape[-2]

    @classmethod
    def from_model(cls, model, spec, source):
        """The weights of a keras_resnet `model` of `spec`: what `assign` sets back exactly.

        Args:
            model: a model a keras_resnet builder made (a trained run's, say).
            spec: its `keras_resnet.specs.Spec`.
            source: where the weights come from, for messages and metadata.

        Raises:
            ValueError: for a model whose batch norms differ in epsilon.
        """
        layers, epsilons = {}, set()
        for layer in model.layers:
            if layer.weights and layer.name != "input_normalization":
                layers[layer.name] = [np.asarray(array) for array in layer.get_weights()]
            if isinstance(layer, keras.layers.BatchNormalization):
                epsilons.add(layer.epsilon)
        if len(epsilons) != 1:
            raise ValueError(f"{model.name}'s batch norms have epsilons {sorted(epsilons)}.")
        mean, std = model.get_layer("input_normalization").get_weights()
        classes = layers["predictions"][1].shape[0] if "predictions" in layers else None
        return cls(source, spec, classes, mean, std, epsilons.pop(), layers)


@dataclasses.dataclass(frozen=True)
class NamedWeights:
    """One entry of the table of named weights (`keras_resnet.weights.NAMED`).

    Attributes:
        name: the name a user passes, `weights="cifar10"`.
        classes: outputs of their classifiers.
        stem: the stem of every network they exist for.
        depths: the depths they exist for (with the paper's shortcuts).
        provenance: who trained them and where the files come from.
        licence: the licence the files are distributed under.
        locate: `(depth, include_top) -> path` of a local file, fetched first
            when it is not there yet.
        read: `path -> Pretrained`, the reader of that file's format.
        class_names: `() -> tuple` of the names of their `classes` in label
            order, fetched first where they come from a file (ImageNet's class
            index, through the Keras cache).
        hint: what to use instead for a network they do not exist for.
    """

    name: str
    classes: int
    stem: str
    depths: tuple
    provenance: str
    licence: str
    locate: Callable[[int, bool], str]
    read: Callable[[str], Pretrained]
    class_names: Callable[[], tuple]
    hint: str = ""

    def check_exists(self, spec, label):
        """Raises a `ValueError` naming what exists when there are no such weights for `spec`."""
        if spec.stem == self.stem and spec.depth in self.depths:
            return
        *first, last = map(str, self.depths)
        networks = f"ResNet-{', '.join(first)} and {last}" if first else f"ResNet-{last}"
        stem = "ImageNet" if self.stem == "imagenet" else "CIFAR"
        raise ValueError(
            f"weights={label} exist for {networks} with the {stem} stem ({self.provenance}); "
            f"the requested model is a {specs.describe(spec)}."
            + (f" {self.hint}" if self.hint else "")
        )


def label(weights):
    """How messages name a `weights` argument: `'resnet50.pth'`, `'cifar10'`."""
    if isinstance(weights, Pretrained):
        return repr(weights.source)
    return repr(os.fspath(weights)) if isinstance(weights, os.PathLike) else repr(weights)


def check_fits(theirs, spec, weights_label):
    """Raises a `ValueError` naming both when weights of spec `theirs` do not fit `spec`.

    Args:
        theirs: the `keras_resnet.specs.Spec` the weights belong to.
        spec: the requested network's spec.
        weights_label: the weights as messages name them (`label`).

    Raises:
        ValueError: when the specs differ; it names the bottleneck stride to
            pass when that is the only difference.
    """
    if theirs == spec:
        return
    hint = ""
    if dataclasses.replace(theirs, bottleneck_stride=spec.bottleneck_stride) == spec:
        hint = f" Pass bottleneck_stride={theirs.bottleneck_stride!r}."
    raise ValueError(
        f"weights={weights_label} hold a {specs.describe(theirs)}; the requested model is a "
        f"{specs.describe(spec)}.{hint}"
    )


def check_head(theirs, include_top, classes, weights_label):
    """Checks the classifier a model may have with weights of `theirs` classes.

    Args:
        theirs: the weights' classes; None when they have no classifier.
        include_top: whether the model has a classifier.
        classes: the classes the caller asks for; None for the weights' own.
        weights_label: the weights as messages name them (`label`).

    Raises:
        ValueError: for a classifier the weights have none of, or of other classes.
    """
    if not include_top:
        return
    if theirs is None:
        raise ValueError(
            f"weights={weights_label} have no classifier: build the model with "
            "include_top=False (and any pooling), or train a new head."
        )
    if classes is not None and classes != theirs:
        raise ValueError(
            f"weights={weights_label} have a {theirs}-class classifier, but classes={classes} "
            f"with include_top=True. Use classes={theirs}, or include_top=False to load "
            "everything but the classifier."
        )


def assign(model, pretrained, new_classifier=False):
    """Sets every weight of `model` from `pretrained`, checking names and shapes.

    Args:
        model: a keras_resnet model of `pretrained.spec`. Without
            `predictions` (include_top=False) it takes everything else.
        pretrained: a `Pretrained`.
        new_classifier: keep the model's freshly initialised `predictions`
            (fine-tuning on other classes) instead of the weights'. Default
            False: a model with a classifier needs theirs.

    The input normalization is the weights' own; each batch norm's variance
    is moved by the difference of the two epsilons.

    Raises:
        ValueError: for a layer the weights have nothing for, or arrays of
            other shapes, or weights the model has no layer for.
    """
    assigned = set()
    for layer in model.layers:
        if not layer.weights or (new_classifier and layer.name == "predictions"):
            continue
        if layer.name == "input_normalization":
            arrays = [pretrained.input_mean, pretrained.input_std]
        elif layer.name in pretrained.layers:
            arrays = list(pretrained.layers[layer.name])
            assigned.add(layer.name)
        else:
            raise ValueError(
                f"weights from {pretrained.source} have nothing for layer {layer.name!r} of "
                f"{model.name}."
            )
        if isinstance(layer, keras.layers.BatchNormalization):
            # The same normalization with this layer's epsilon: var + eps is what counts.
            arrays[3] = np.maximum(arrays[3] + pretrained.bn_epsilon - layer.epsilon, 0)
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(a.shape) for a in arrays]
        if expected != received:
            raise ValueError(
                f"weights from {pretrained.source} for layer {layer.name!r} have shapes "
                f"{received}; the layer has {expected}."
            )
        layer.set_weights(arrays)
    unused = sorted(set(pretrained.layers) - assigned - {"predictions"})
    if unused:
        raise ValueError(
            f"{model.name} has no layers {unused[:5]} that weights from {pretrained.source} have."
        )
