"""`python train.py ...` in a checkout: the same command as `keras-resnet-train`.

`python train.py --help` lists its flags; the command is keras_resnet/cli/train.py.
"""

import sys

import keras_resnet_cli

if __name__ == "__main__":
    sys.exit(keras_resnet_cli.run("train"))
