"""Writes the CIFAR-10 weights the package ships (`weights="cifar10"`).

    python scripts/make_cifar10_weights.py [--source ../shared/data/pretrained] \\
        [--results docs/paper_table6]

For each depth of `keras_resnet.weights.packaged.CIFAR10_NETS`, the table of
what ships, it writes `keras_resnet/pretrained/resnet{depth}_cifar10.npz` with
the table's description as the file's `source`:

- this package's own runs from their committed results (`--results`, a
  sweep's results folder, in the run's folder the table names:
  `weights.npz`, the weights after the last iteration, and `summary.json`,
  whose final test error must be the table's);
- akamaster/pytorch_resnet_cifar10's checkpoints (`--source`, the files
  ../shared/data/README.md describes; BSD 2-Clause), converted by
  `keras_resnet.weights.pytorch` (the converter `weights=PATH` uses), their
  licence copied beside them. Needs torch.

`tests/test_weights.py` checks that each file scores the table's error on the
original CIFAR-10 test batch.
"""

import argparse
import dataclasses
import json
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_resnet import specs  # noqa: E402
from keras_resnet.weights import npz, packaged, pytorch  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "pretrained"
DEFAULT_RESULTS = ROOT / "docs" / "paper_table6"


def our_weights(net, results, parser):
    """This package's run of `net` from its committed results, checked against the table.

    The run's folder is the one the table names (`resnet56-seed1` for a second
    seed's run), found in `results`.
    """
    folder = results / pathlib.PurePath(net.origin).name
    summary = json.loads((folder / "summary.json").read_text())
    if summary.get("steps") != 64_000 or summary.get("num_test_examples") != 10_000:
        parser.error(f"{folder}: not a finished 64,000-iteration run measured on 10,000 images")
    if abs(summary["test_top1_error"] - net.test_error) > 5e-5:
        parser.error(
            f"{folder}: the run's final test error is {summary['test_top1_error']:.4f}, "
            f"the table in keras_resnet/weights/packaged.py says {net.test_error:.4f}"
        )
    return npz.read(str(folder / "weights.npz"))


def akamaster_weights(net, source, parser):
    """akamaster's checkpoint of `net`, converted."""
    checkpoint = source / net.origin
    if not checkpoint.is_file():
        parser.error(f"--source {source}: no {net.origin} there")
    return pytorch.read(str(checkpoint), source=net.description)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=pathlib.Path, default=DEFAULT_SOURCE)
    parser.add_argument("--results", type=pathlib.Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    licence = args.source / "LICENSE-akamaster"
    if not licence.is_file():
        parser.error(f"--source {args.source}: no LICENSE-akamaster there")
    pathlib.Path(packaged.DIRECTORY).mkdir(exist_ok=True)
    for net in packaged.CIFAR10_NETS.values():
        if net.trained_by == packaged.KERAS_RESNET:
            pretrained = our_weights(net, args.results, parser)
        else:
            pretrained = akamaster_weights(net, args.source, parser)
        if pretrained.spec != specs.make_spec(net.depth, "cifar"):
            parser.error(f"{net.origin} holds a {specs.describe(pretrained.spec)}")
        npz.save(dataclasses.replace(pretrained, source=net.description), net.file)
        size = pathlib.Path(net.file).stat().st_size / 1e6
        print(f"{net.origin} -> {net.file} ({size:.2f} MB)")
    shutil.copyfile(licence, packaged.LICENCE_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
