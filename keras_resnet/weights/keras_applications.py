"""keras.applications' ResNet50/101/152 files, and `weights="imagenet"`.

`"imagenet"` is the MSRA ResNet-50/101/152 released with the paper, in the
files keras.applications publishes (the same names, URLs and md5 hashes),
fetched with `keras.utils.get_file` into the Keras cache (`~/.keras/models`;
a file keras.applications already downloaded is reused, and no network is
touched while it is there). By path, this module reads the legacy `.h5` that
keras.applications downloads and a `.weights.h5` saved from such a model.

The conversion is exact:

- keras.applications convs carry biases: each is folded into the mean of the
  batch norm that follows (`mean - bias`).
- Its batch norm's epsilon (1.001e-5) is kept in the `Pretrained`, and
  `assign` moves it into the variance for a model with another epsilon.
- Its inputs are Caffe's BGR minus the ImageNet mean: the first conv's input
  channels are reversed and the mean becomes the model's
  `input_normalization`, so the model takes RGB pixels 0-255 like every
  keras_resnet model.

A `.weights.h5` saved from a keras_resnet model has the same layer names but
convs without biases: `holds_keras_resnet` tells it apart, and Keras loads it
as it is.

The names of the 1000 ImageNet classes (`class_names`) come from the class
index that keras.applications' `decode_predictions` reads, the same file and
md5 through the same Keras cache: once either package has fetched it, neither
touches the network for it again.
"""

import json
import os

import h5py
import keras
import numpy as np

from keras_resnet import specs
from keras_resnet.weights.core import NamedWeights, Pretrained

URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# keras.applications' md5 hashes of (with classifier, without) for each depth.
HASHES = {
    50: ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    101: ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    152: ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
}
BN_EPSILON = 1.001e-5
# keras.applications' "caffe" preprocessing subtracts this (given here in RGB order).
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
# The ImageNet class index keras.applications' `decode_predictions` reads: its URL and md5.
CLASS_INDEX_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
)
CLASS_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"
CLASS_INDEX_NAME = "imagenet_class_index.json"


def file_name(depth, include_top):
    """keras.applications' file name for ResNet-`depth` weights."""
    suffix = "" if include_top else "_notop"
    return f"resnet{depth}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"


def fetch(depth, include_top):
    """The path of keras.applications' ResNet-`depth` file in the Keras cache, fetched if need be.

    Raises:
        ValueError: when it is not cached and cannot be downloaded; the
            message says where to put the file instead.
    """
    name = file_name(depth, include_top)
    return _get_file(
        name, URL + name, HASHES[depth][0 if include_top else 1], " or pass its path as weights="
    )


def _get_file(name, url, file_hash, alternative=""):
    """`keras.utils.get_file` into the Keras cache's `models` folder, as keras.applications does."""
    try:
        return keras.utils.get_file(name, url, cache_subdir="models", file_hash=file_hash)
    except Exception as error:  # get_file raises plain Exceptions for network failures
        raise ValueError(
            f"Could not fetch {name} from {url}: {error}. Without a network, copy the file "
            f"into the Keras cache (~/.keras/models, or $KERAS_HOME/models){alternative}."
        ) from None


def class_names():
    """The names of the 1000 ImageNet classes in label order: `("tench", "goldfish", ...)`.

    Read from the class index keras.applications' `decode_predictions` reads
    (`imagenet_class_index.json`, the same URL and md5, through the Keras
    cache): a copy in the cache is used without a network.

    Raises:
        ValueError: when it is not cached and cannot be downloaded, or is not
            a class index (the message names the file).
    """
    return tuple(name for _, name in class_index())


def class_index():
    """ImageNet's classes in label order as `(WordNet id, name)` pairs; see `class_names`."""
    path = _get_file(CLASS_INDEX_NAME, CLASS_INDEX_URL, CLASS_INDEX_HASH)
    try:
        with open(path) as f:
            index = json.load(f)
        pairs = tuple((str(index[str(i)][0]), str(index[str(i)][1])) for i in range(len(index)))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise ValueError(f"{path!r} is not an ImageNet class index ({error!r}).") from None
    if len(pairs) != 1000:
        raise ValueError(f"{path!r} names {len(pairs)} classes; ImageNet has 1000.")
    return pairs


def _layout(path):
    """What a Keras `.h5` weights file holds: `(kind, conv layers, classes)`.

    `kind` is `"keras_applications"` when every conv has a bias, else
    `"keras_resnet"`; `classes` is None without a classifier.
    """

    def text(value):
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as f:
            if "layers" in f:  # Keras 3 .weights.h5: layers/<class name>/vars/<index>
                groups = [f["layers"][name] for name in f["layers"]]
                shapes = [
                    [g["vars"][k].shape for k in sorted(g["vars"], key=int)]
                    for g in groups
                    if "vars" in g and len(g["vars"])
                ]
            else:  # legacy .h5 of Keras 2 (what keras.applications downloads)
                root = f["model_weights"] if "model_weights" in f else f
                shapes = []
                for name in map(text, root.attrs["layer_names"]):
                    weight_names = [text(w) for w in root[name].attrs["weight_names"]]
                    if weight_names:
                        shapes.append([root[name][w].shape for w in weight_names])
    except (OSError, KeyError) as error:
        raise ValueError(f"{path!r} is not a Keras weights file ({error}).") from None
    convs = [s for s in shapes if len(s[0]) == 4]
    dense = [s for s in shapes if len(s[0]) == 2]
    kind = "keras_applications" if convs and all(len(s) == 2 for s in convs) else "keras_resnet"
    return kind, len(convs), dense[-1][0][1] if dense else None


def input_normalization_of(path):
    """The (mean, std) of a keras_resnet `.weights.h5`'s `input_normalization` layer; None
    when the model that saved it had none."""
    with h5py.File(path, "r") as f:
        layer = f.get("layers/input_normalization/vars")
        return None if layer is None else (layer["0"][()], layer["1"][()])


def input_channels_of(path):
    """The input channels of a keras_resnet `.weights.h5`'s first conv; None without one."""
    with h5py.File(path, "r") as f:  # its layers by class in the model's order: conv1_conv
        kernel = f.get("layers/conv2d/vars/0")
        return None if kernel is None else kernel.shape[-2]


def holds_keras_resnet(path):
    """True for a `.weights.h5` saved from a keras_resnet model (Keras loads it as it is)."""
    return path.endswith(".weights.h5") and _layout(path)[0] == "keras_resnet"


def read(path):
    """Reads a keras.applications ResNet50/101/152 weights file into a `Pretrained`.

    Args:
        path: the legacy `.h5` keras.applications downloads, or a `.weights.h5`
            saved from a keras.applications ResNet, with or without classifier.

    Returns:
        A `Pretrained` of the ImageNet ResNet-50/101/152 (option B, stride on
        the 1x1 conv), in RGB with the Caffe mean as its input normalization.

    Raises:
        ValueError: for another file, or one that does not load into its model.
    """
    kind, convs, classes = _layout(path)
    depth = convs - 3  # ResNet-d has d - 1 convs in its stages and stem, plus 4 projections.
    if kind != "keras_applications" or depth not in HASHES:
        raise ValueError(
            f"{path!r} is not a keras.applications ResNet50/101/152 weights file (it has "
            f"{convs} conv layers"
            + (", none with a bias)" if kind != "keras_applications" else ")")
            + ". A .weights.h5 saved from a keras_resnet model loads only into the same "
            "architecture."
        )
    include_top = classes is not None
    source_model = getattr(keras.applications, f"ResNet{depth}")(
        weights=None,
        include_top=include_top,
        classes=classes or 1000,
        input_shape=(224, 224, 3) if include_top else (None, None, 3),
    )
    try:
        source_model.load_weights(path)
    except Exception as error:  # Keras raises several types for a mismatched file
        raise ValueError(
            f"{path!r} does not load into keras.applications.ResNet{depth}: {error}"
        ) from None
    layers = {}
    for layer in source_model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            if layer.name == "conv1_conv":
                kernel = kernel[:, :, ::-1, :]  # BGR -> RGB input channels
            bn_name = layer.name[: -len("conv")] + "bn"
            gamma, beta, mean, variance = source_model.get_layer(bn_name).get_weights()
            layers[layer.name] = [kernel]
            layers[bn_name] = [gamma, beta, mean - bias, variance]  # the bias folded in
        elif isinstance(layer, keras.layers.Dense):
            layers["predictions"] = layer.get_weights()
    return Pretrained(
        f"keras.applications ResNet{depth} weights {os.path.basename(path)}",
        specs.make_spec(depth, "imagenet"),
        classes,
        np.array(CAFFE_MEAN_RGB, np.float32),
        np.ones(3, np.float32),
        BN_EPSILON,
        layers,
    )


IMAGENET = NamedWeights(
    name="imagenet",
    classes=1000,
    stem="imagenet",
    depths=tuple(HASHES),
    provenance="the paper's MSRA models, in the files keras.applications publishes",
    licence="MIT (KaimingHe/deep-residual-networks)",
    locate=fetch,
    read=read,
    class_names=class_names,
    hint=(
        "For ResNet-18/34, pass a torchvision checkpoint as weights='resnet18.pth' (PyTorch "
        "layout; needs bottleneck_stride only for bottleneck nets)."
    ),
)
