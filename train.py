"""Train a ResNet of He et al. (2015) with the paper's recipe.

    python train.py --dataset cifar10 --depth 110             # the paper's CIFAR-10 run (TFDS)
    python train.py --dataset cifar10 --data-dir .data --depth 20 --epochs 1
    python train.py --dataset digits --depth 8 --epochs 3     # offline, bundled data

`python train.py --help` lists every flag. Logic lives in keras_resnet.training.
"""

import sys

from keras_resnet import training


def main(argv=None):
    config = training.config_from_args(argv)
    try:
        training.train(config)
    except (ValueError, RuntimeError) as error:  # DataError and TrainingDiverged included
        print(f"train.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
