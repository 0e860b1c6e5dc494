"""`python tune.py ...` in a checkout: the same command as `keras-resnet-tune`.

`python tune.py --help` lists its flags; the command is keras_resnet/cli/tune.py.
"""

import sys

import keras_resnet_cli

if __name__ == "__main__":
    sys.exit(keras_resnet_cli.run("tune"))
