"""Train a ResNet of He et al. (2015) with the paper's recipe.

    keras-resnet-train --dataset cifar10 --depth 110              # the paper's CIFAR-10 run (TFDS)
    keras-resnet-train --dataset cifar10 --data-dir .data --depth 20 --epochs 1
    keras-resnet-train --dataset digits --depth 20 --epochs 1     # offline, bundled data

The same as `python -m keras_resnet_cli train` and, in a checkout, `python train.py`.
`--help` lists every flag. The logic lives in `keras_resnet.training`.
"""

import sys

from keras_resnet import config as config_lib
from keras_resnet import training
from keras_resnet.cli import run_command


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input or a failed run)."""
    parser = config_lib.build_parser()
    config = config_lib.config_from_namespace(parser, parser.parse_args(argv))

    def run():
        training.finish(training.train(config))

    return run_command(parser.prog, run)


if __name__ == "__main__":
    sys.exit(main())
