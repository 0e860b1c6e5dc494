"""`python -m keras_resnet.analysis`: the `keras-resnet-analysis` command."""

import sys

import keras_resnet_cli

sys.exit(keras_resnet_cli.run_module("analysis"))
