"""A user's `weights` argument behind one call: `resolve` reads it once into a `Source`.

A `Source` answers the two questions its callers have, in either order and
without reading anything again:

- `architecture`: the `ResNet` arguments the weights fix (all of depth, stem,
  shortcut and bottleneck stride for a file; only the stem for a name, which
  needs the depth to choose a file), so that `--weights resnet50.pth` needs no
  `--depth`;
- `load(spec, include_top, classes)`: the `Pretrained` for the requested
  network, checked to fit it and its classifier (the messages name both).

Names come from `NAMED`, the table of named weights; paths are read by the
source module of their format (`FORMATS`); a `.weights.h5` saved from a
keras_resnet model stays a path that Keras loads itself.
"""

import abc
import os

from keras_resnet import specs
from keras_resnet.weights import keras_applications, npz, packaged, pytorch
from keras_resnet.weights.core import Pretrained, check_fits, check_head, label

# The named weights, by name.
NAMED = {entry.name: entry for entry in (keras_applications.IMAGENET, packaged.CIFAR10)}
# Each format of a weights file: its suffixes, its reader, and what writes it.
FORMATS = (
    ((".h5",), keras_applications.read, "keras.applications, or a keras_resnet .weights.h5"),
    (pytorch.SUFFIXES, pytorch.read, "PyTorch"),
    ((".npz",), npz.read, "keras_resnet.weights.npz.save"),
)


class Source(abc.ABC):
    """A `weights` argument that `resolve` read: what it implies, and its weights for a network.

    Attributes:
        label: the argument as messages name it (`'resnet50.pth'`).
    """

    def __init__(self, label):
        self.label = label

    @property
    @abc.abstractmethod
    def architecture(self):
        """The `ResNet` arguments the weights fix, as a dict of keyword arguments."""

    @abc.abstractmethod
    def load(self, spec, include_top=True, classes=None, fine_tune=False):
        """The weights for a network of `spec`, checked to fit it.

        Args:
            spec: the requested network's `keras_resnet.specs.Spec`.
            include_top: whether the model has the classifier. Chooses the
                file with or without it for `"imagenet"`. Default True.
            classes: the classes the caller asks for; None (default) for the
                weights' own. Checked before anything is fetched.
            fine_tune: the model keeps the weights' classifier when it has
                their classes and gets a new one otherwise, so neither other
                classes nor a missing classifier is an error. Default False.

        Returns:
            A `keras_resnet.weights.Pretrained`.

        Raises:
            ValueError: for weights that do not fit `spec` or the classifier
                (the message names both), or that cannot be fetched.
        """

    @property
    def channels(self):
        """The channels of the images the weights take; None where only loading tells."""
        return None

    def check(self, spec):
        """Raises the `ValueError` that `load` would for a network of `spec`, fetching nothing.

        The check of a file's architecture before anything slow (a download of
        data, say) happens; `load` checks the classifier too. A `.weights.h5`
        saved from a keras_resnet model is checked by Keras as it loads.
        """

    def class_names(self):
        """The names of the weights' classes in label order, or None when they have none.

        Named weights know theirs (`NamedWeights.class_names`; ImageNet's are
        fetched through the Keras cache); a file does not carry them.

        Raises:
            ValueError: when they cannot be fetched (the message says where
                to put the file instead).
        """
        return None

    def _checked(self, pretrained, spec, include_top, classes, fine_tune):
        check_fits(pretrained.spec, spec, self.label)
        if not fine_tune:
            check_head(pretrained.classes, include_top, classes, self.label)
        return pretrained

    def __repr__(self):
        return f"{type(self).__name__}({self.label})"


class NamedSource(Source):
    """Named weights (`"imagenet"`, `"cifar10"`): an entry of `NAMED`, read when loaded.

    Attributes:
        entry: the `keras_resnet.weights.NamedWeights`.
    """

    def __init__(self, entry):
        super().__init__(repr(entry.name))
        self.entry = entry

    @property
    def architecture(self):
        return {"stem": self.entry.stem}

    @property
    def channels(self):
        return 3  # every named weights were trained on RGB images

    def class_names(self):
        return tuple(self.entry.class_names())

    def check(self, spec):
        self.entry.check_exists(spec, self.label)
        check_fits(specs.make_spec(spec.depth, self.entry.stem), spec, self.label)

    def load(self, spec, include_top=True, classes=None, fine_tune=False):
        entry = self.entry
        if not fine_tune:
            check_head(entry.classes, include_top, classes, self.label)
        self.check(spec)  # before fetching
        pretrained = entry.read(entry.locate(spec.depth, include_top))
        return self._checked(pretrained, spec, include_top, classes, fine_tune)


class FileSource(Source):
    """A weights file read into a `Pretrained` (or a `Pretrained` passed as it is).

    Attributes:
        pretrained: the `keras_resnet.weights.Pretrained` read.
    """

    def __init__(self, label, pretrained):
        super().__init__(label)
        self.pretrained = pretrained

    @property
    def architecture(self):
        return self.pretrained.architecture

    @property
    def channels(self):
        return self.pretrained.channels

    def check(self, spec):
        check_fits(self.pretrained.spec, spec, self.label)

    def load(self, spec, include_top=True, classes=None, fine_tune=False):
        return self._checked(self.pretrained, spec, include_top, classes, fine_tune)


class KerasResNetFile(Source):
    """A `.weights.h5` saved from a keras_resnet model: Keras loads it as it is.

    It fixes no argument but the input normalization (Keras checks, as it
    loads, that the model has the file's architecture, but loads a file's
    `input_normalization` into nothing where the model lacks the layer), and
    is not converted into a `Pretrained`.

    Attributes:
        path: the file.
        input_normalization: (mean, std) arrays of the model that saved the
            file, or None when it had no input normalization.
    """

    def __init__(self, path):
        super().__init__(repr(path))
        self.path = path
        self.input_normalization = keras_applications.input_normalization_of(path)
        self._channels = keras_applications.input_channels_of(path)

    @property
    def architecture(self):
        return {}

    @property
    def channels(self):
        return self._channels

    def load(self, spec, include_top=True, classes=None, fine_tune=False):
        raise ValueError(
            f"weights={self.label} were saved from a keras_resnet model: Keras loads them as "
            "they are into a model of the same architecture (ResNet(..., weights=path)), "
            "unconverted and unchecked, which cannot start a fine-tuning run. Start it from a "
            "file of a converted format (keras_resnet.weights.FORMATS), or resume the run that "
            "saved them."
        )


def resolve(weights):
    """Reads a `weights` argument once: a name, a path, or what was read already.

    Args:
        weights: None, a name of `NAMED` (`"imagenet"`, `"cifar10"`), a path
            of a format of `FORMATS` or a keras_resnet `.weights.h5`, a
            `Pretrained`, or a `Source` (returned as it is).

    Returns:
        A `Source`, or None for None. A file is read here, once; named
        weights are fetched by `Source.load`, which knows the depth.

    Raises:
        ValueError: for an argument of another type, a missing file, one of an
            unknown format, or one that cannot be read (the message names it
            and what is allowed).
        ImportError: for a PyTorch file when torch (or safetensors) is missing.
    """
    if weights is None or isinstance(weights, Source):
        return weights
    if isinstance(weights, Pretrained):
        return FileSource(label(weights), weights)
    if isinstance(weights, str) and weights in NAMED:
        return NamedSource(NAMED[weights])
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"weights must be None, {' or '.join(map(repr, NAMED))}, a path, or a "
            f"keras_resnet.weights.Pretrained; received {weights!r}."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"weights file {path!r} does not exist (named weights: {', '.join(map(repr, NAMED))})."
        )
    if keras_applications.holds_keras_resnet(path):
        return KerasResNetFile(path)
    return FileSource(label(path), read_file(path))


def same(a, b):
    """Whether two `weights` arguments name the same weights.

    The same name of `NAMED`, or two spellings of one file's path
    (`w.npz`, `./w.npz`, its absolute path, a link to it), whether or not
    the file is still there: a resumed run is checked against the
    `weights` its record holds as the user wrote it.
    """
    if a == b:
        return True
    paths = [w for w in (a, b) if isinstance(w, (str, os.PathLike)) and w not in NAMED]
    if len(paths) < 2:
        return False
    return os.path.realpath(os.fspath(a)) == os.path.realpath(os.fspath(b))


def read_file(path):
    """Reads a weights file of a converted format into a `Pretrained` (no fit check).

    Raises:
        ValueError: for a file of an unknown format, or one its reader rejects.
    """
    path = os.fspath(path)
    for suffixes, reader, _ in FORMATS:
        if path.endswith(suffixes):
            return reader(path)
    allowed = "; ".join(f"{', '.join(suffixes)} ({what})" for suffixes, _, what in FORMATS)
    raise ValueError(f"weights file {path!r} has an unknown format. Allowed: {allowed}.")
