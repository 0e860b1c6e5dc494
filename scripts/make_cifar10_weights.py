"""Converts the trained CIFAR-10 checkpoints into the weights the package ships.

    python scripts/make_cifar10_weights.py [--source ../shared/data/pretrained]

Input: akamaster/pytorch_resnet_cifar10's ResNet-20/32/44/56 checkpoints
(`resnet20-12fca82f.th`, ...; BSD 2-Clause), the files ../shared/data/README.md
describes. Output: `keras_resnet/pretrained/resnet{20,32,44,56}_cifar10.npz`,
converted by `keras_resnet.weights.pytorch` (the converter `weights=PATH` uses), and
their licence beside them. `ResNet56(weights="cifar10")` reads them; reading
needs neither torch nor a network. Needs torch to read the checkpoints.
"""

import argparse
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_resnet import specs  # noqa: E402
from keras_resnet.weights import npz, packaged, pytorch  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "pretrained"
REPOSITORY = "akamaster/pytorch_resnet_cifar10"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=pathlib.Path, default=DEFAULT_SOURCE)
    args = parser.parse_args(argv)
    licence = args.source / "LICENSE-akamaster"
    if not licence.is_file():
        parser.error(f"--source {args.source}: no LICENSE-akamaster there")
    target = pathlib.Path(packaged.DIRECTORY)
    target.mkdir(exist_ok=True)
    for depth in packaged.CIFAR10.depths:
        found = sorted(args.source.glob(f"resnet{depth}-*.th"))
        if len(found) != 1:
            parser.error(f"--source {args.source}: expected one resnet{depth}-*.th, found {found}")
        checkpoint = found[0]
        pretrained = pytorch.read(
            str(checkpoint), source=f"{REPOSITORY} {checkpoint.name} (BSD 2-Clause)"
        )
        if pretrained.spec != specs.make_spec(depth, "cifar"):
            parser.error(f"{checkpoint} holds a {specs.describe(pretrained.spec)}")
        path = packaged.cifar10_path(depth)
        npz.save(pretrained, path)
        print(f"{checkpoint.name} -> {path} ({pathlib.Path(path).stat().st_size / 1e6:.2f} MB)")
    shutil.copyfile(licence, packaged.LICENCE_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
