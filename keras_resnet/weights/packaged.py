"""The weights shipped with the package: `weights="cifar10"`.

Per depth, the best trained CIFAR-10 network there is to ship, judged by top-1
error on the original CIFAR-10 test batch (`test_batch.bin`): this package's
own full-length run of the paper's recipe where it scores at least as well as
akamaster/pytorch_resnet_cifar10's checkpoint, akamaster's otherwise
(ResNet-110 is this package's run: akamaster's is not among the checkpoints
converted here).
`CIFAR10_NETS` says, per depth, whose the file is, how it was trained and what
it scores; each file's metadata (`Pretrained.source`) says the same.
`scripts/make_cifar10_weights.py` writes them into `keras_resnet/pretrained/`
in this package's `.npz` format, so reading them needs neither torch nor a
network. akamaster's checkpoints that do not ship still load by path
(`ResNet20(weights="resnet20-12fca82f.th")`, with torch installed).
"""

import dataclasses
import os

from keras_resnet.weights import npz
from keras_resnet.weights.core import NamedWeights

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained")
LICENCE_FILE = os.path.join(DIRECTORY, "LICENSE-akamaster")
AKAMASTER = "akamaster/pytorch_resnet_cifar10"
KERAS_RESNET = "keras_resnet"


# CIFAR-10's classes in label order (the batches' batches.meta.txt; torchvision's order, which
# akamaster's networks were trained in, and this package's CIFAR-10 loader's).
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


@dataclasses.dataclass(frozen=True)
class ShippedNet:
    """The packaged CIFAR-10 weights of one depth: whose, how trained, what they score.

    Attributes:
        depth: the network, ResNet-`depth` of the paper's CIFAR nets (option A).
        trained_by: `AKAMASTER` or `KERAS_RESNET`.
        origin: where the weights come from: akamaster's checkpoint file name,
            or the folder of this package's committed run.
        training: how they were trained, and which epoch's weights they are.
        licence: the licence the file is distributed under.
        test_error: top-1 error on the 10,000 images of the original test
            batch, as `keras-resnet-evaluate --weights cifar10` measures it.
    """

    depth: int
    trained_by: str
    origin: str
    training: str
    licence: str
    test_error: float

    @property
    def file(self):
        """The packaged file."""
        return os.path.join(DIRECTORY, f"resnet{self.depth}_cifar10.npz")

    @property
    def description(self):
        """One line for messages and the file's metadata."""
        return (
            f"ResNet-{self.depth} trained on CIFAR-10 by {self.trained_by} ({self.origin}; "
            f"{self.training}; {self.licence}): {100 * self.test_error:.2f}% top-1 error on "
            "the original CIFAR-10 test batch"
        )


# akamaster's trainer.py: 200 epochs of batch 128 (78k iterations), lr 0.1 divided by 10 at
# epochs 100 and 150, momentum 0.9, weight decay 1e-4, flips and 4-pixel crops, on all 50,000
# training images; its README reports, and its checkpoints hold, the best epoch on the test set.
_AKAMASTER_TRAINING = (
    "PyTorch, 200 epochs of batch 128, lr divided by 10 at epochs 100 and 150, "
    "the epoch with the best test error"
)
# `docs/paper_table6/<net>/`: the committed results of this package's run (config, history,
# summary); `weights.npz` there is the file shipped.
_OUR_TRAINING = (
    "the paper's recipe, 64,000 iterations, `keras-resnet-analysis depth-table`; "
    "the weights after the last iteration"
)
CIFAR10_NETS = {
    net.depth: net
    for net in (
        ShippedNet(
            20, KERAS_RESNET, "docs/paper_table6/resnet20", _OUR_TRAINING, "Apache-2.0", 0.0819
        ),
        ShippedNet(
            32, AKAMASTER, "resnet32-d509ac18.th", _AKAMASTER_TRAINING, "BSD 2-Clause", 0.0737
        ),
        ShippedNet(
            44, AKAMASTER, "resnet44-014dd654.th", _AKAMASTER_TRAINING, "BSD 2-Clause", 0.0690
        ),
        ShippedNet(
            56, AKAMASTER, "resnet56-4bfd9763.th", _AKAMASTER_TRAINING, "BSD 2-Clause", 0.0661
        ),
        ShippedNet(
            110, KERAS_RESNET, "docs/paper_table6/resnet110", _OUR_TRAINING, "Apache-2.0", 0.0636
        ),
    )
}


def _locate_cifar10(depth, include_top):
    """The packaged file, the same with or without classifier; an error when it is missing."""
    path = CIFAR10_NETS[depth].file
    if not os.path.isfile(path):
        raise ValueError(f"The packaged weights {path!r} are missing: reinstall keras_resnet.")
    return path


def _by_whom(attribute):
    """'x (ResNet-20), y (ResNet-32/44/56)': the depths that share each value of `attribute`."""
    groups = {}
    for net in CIFAR10_NETS.values():
        groups.setdefault(getattr(net, attribute), []).append(str(net.depth))
    return ", ".join(f"{value} (ResNet-{'/'.join(depths)})" for value, depths in groups.items())


CIFAR10 = NamedWeights(
    name="cifar10",
    classes=10,
    stem="cifar",
    depths=tuple(CIFAR10_NETS),
    provenance="shipped with the package; trained by " + _by_whom("trained_by"),
    licence=_by_whom("licence"),
    locate=_locate_cifar10,
    read=npz.read,
    class_names=lambda: CIFAR10_CLASSES,
)
