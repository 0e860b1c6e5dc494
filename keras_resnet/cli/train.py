"""`keras-resnet-train`: train a ResNet of He et al. (2015) with the paper's recipe.

    keras-resnet-train --dataset cifar10 --depth 110              # the paper's CIFAR-10 run (TFDS)
    keras-resnet-train --dataset cifar10 --data-dir .data --depth 20 --epochs 1
    keras-resnet-train --dataset digits --depth 20 --epochs 1     # offline, bundled data

The same as `python -m keras_resnet_cli train` and, in a checkout, `python train.py`.
Every `TrainConfig` field is a flag; `--help` lists them. The logic lives in
`keras_resnet.training`.
"""

from keras_resnet import training
from keras_resnet.cli import flags, run_command


def build_parser():
    parser = flags.ArgumentParser(
        description="Train a ResNet of He et al. (2015) with the paper's recipe."
    )
    flags.add_train_config_flags(parser)
    return parser


def main(argv=None):
    """Runs the command; returns its exit status (1 for a bad input or a failed run)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run():
        training.finish(training.run(flags.train_config(args)))

    return run_command(parser.prog, run)
