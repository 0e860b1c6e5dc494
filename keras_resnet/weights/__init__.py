"""Pretrained weights: the paper's ImageNet models, trained CIFAR-10 nets, PyTorch checkpoints.

`ResNet(weights=...)` and the commands' `--weights` take:

- `"imagenet"`: the MSRA ResNet-50/101/152 released with the paper, in the
  files keras.applications publishes, fetched into the Keras cache
  (`keras_applications`).
- `"cifar10"`: ResNet-20/32/44/56/110 trained on CIFAR-10, shipped with the
  package (`packaged`).
- a path: a keras.applications ResNet50/101/152 file (the legacy `.h5` it
  downloads, or a `.weights.h5` saved from such a model; `keras_applications`);
  a PyTorch checkpoint (`.pth`, `.th`, `.pt` with torch installed,
  `.safetensors`) in the torchvision/timm layout or akamaster's CIFAR layout
  (`pytorch`); an `.npz` written by `npz.save` (`npz`); or a `.weights.h5`
  saved from a keras_resnet model of the same architecture (loaded by Keras
  as it is).

Named weights are one table, `NAMED`: per name its classes and their names,
stem, depths, provenance, licence and where its files come from (`NamedWeights`).

Everything goes through one call: `resolve(weights)` reads the argument once
into a `Source`, which says what architecture the weights fix
(`Source.architecture`) and loads them for a network, checked to fit it and
its classifier (`Source.load`): a `Pretrained`, arrays in this package's
layout under its layer names with their input normalization, which `assign`
sets into a built model. The conversions are exact, not approximations; each
source module's docstring says how.

    source = keras_resnet.weights.resolve("resnet50.pth")   # read once
    source.architecture      # {"depth": 50, "stem": "imagenet", "shortcut": "B", ...}
    model = keras_resnet.ResNet(50, bottleneck_stride="3x3", weights=source)
"""

from keras_resnet.weights import keras_applications, npz, packaged, pytorch
from keras_resnet.weights.core import (
    ARCHITECTURE_FLAGS,
    NamedWeights,
    Pretrained,
    assign,
)
from keras_resnet.weights.sources import (
    FORMATS,
    NAMED,
    FileSource,
    KerasResNetFile,
    NamedSource,
    Source,
    read_file,
    resolve,
    same,
)

__all__ = [
    "ARCHITECTURE_FLAGS",
    "FORMATS",
    "NAMED",
    "FileSource",
    "KerasResNetFile",
    "NamedSource",
    "NamedWeights",
    "Pretrained",
    "Source",
    "assign",
    "keras_applications",
    "npz",
    "packaged",
    "pytorch",
    "read_file",
    "resolve",
    "same",
]
