"""The weights shipped with the package: `weights="cifar10"`.

ResNet-20/32/44/56 trained on CIFAR-10 by akamaster/pytorch_resnet_cifar10
(BSD 2-Clause, its notice in `keras_resnet/pretrained/LICENSE-akamaster`),
converted from their PyTorch checkpoints by `keras_resnet.weights.pytorch`
(option-A channel permutation included) and saved in this package's `.npz`
format by `scripts/make_cifar10_weights.py` into `keras_resnet/pretrained/`.
Reading them needs neither torch nor a network.
"""

import os

from keras_resnet.weights import npz
from keras_resnet.weights.core import NamedWeights

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained")
LICENCE_FILE = os.path.join(DIRECTORY, "LICENSE-akamaster")


# CIFAR-10's classes in label order (the batches' batches.meta.txt; torchvision's order, which
# akamaster's networks were trained in).
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def cifar10_path(depth):
    """The path of the packaged CIFAR-10 weights of ResNet-`depth`."""
    return os.path.join(DIRECTORY, f"resnet{depth}_cifar10.npz")


def _locate_cifar10(depth, include_top):
    """The packaged file, the same with or without classifier; an error when it is missing."""
    path = cifar10_path(depth)
    if not os.path.isfile(path):
        raise ValueError(f"The packaged weights {path!r} are missing: reinstall keras_resnet.")
    return path


CIFAR10 = NamedWeights(
    name="cifar10",
    classes=10,
    stem="cifar",
    depths=(20, 32, 44, 56),
    provenance="akamaster/pytorch_resnet_cifar10's checkpoints, shipped with the package",
    licence="BSD 2-Clause (akamaster/pytorch_resnet_cifar10)",
    locate=_locate_cifar10,
    read=npz.read,
    class_names=lambda: CIFAR10_CLASSES,
)
