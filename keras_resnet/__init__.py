"""keras_resnet: the networks of He et al., "Deep Residual Learning for Image
Recognition" (2015), in Keras 3, with the paper's training recipe.

Example:

>>> import keras_resnet
>>> model = keras_resnet.ResNet56()          # CIFAR-10 ResNet-56, option A
>>> model = keras_resnet.ResNet50(classes=10, input_shape=(64, 64, 3))
>>> model = keras_resnet.build_model("plain20")
"""

import os
import sys
import warnings

# TensorFlow leaves its oneDNN kernels off on some CPUs (an AVX2 AMD EPYC here;
# it turned them on itself on an AVX-512 EPYC); there they double training throughput
# (benchmarks/README.md). A default, not an override: export
# TF_ENABLE_ONEDNN_OPTS=0 to turn them off. TensorFlow reads the variable when
# it loads, so this works only if TensorFlow (or Keras on it) is not loaded yet.
_tensorflow_loaded_first = "tensorflow" in sys.modules and "TF_ENABLE_ONEDNN_OPTS" not in os.environ
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _warn_if_onednn_off():
    try:
        from tensorflow.python.util import _pywrap_util_port
        enabled = _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):  # a TensorFlow without this query: say nothing
        return
    if not enabled:
        warnings.warn(
            "TensorFlow was loaded before keras_resnet, with its oneDNN CPU kernels off: CPU "
            "training runs about 2x slower (benchmarks/README.md). Import keras_resnet before "
            "keras and tensorflow, or export TF_ENABLE_ONEDNN_OPTS=1 (=0 to keep them off "
            "without this warning).", stacklevel=3)


if _tensorflow_loaded_first:
    _warn_if_onednn_off()

from keras_resnet import schedules  # registers the optimizer and schedules model.keras files name
from keras_resnet.flops import FlopsReport, count_flops
from keras_resnet.layers import FusedBatchNormalization, InputNormalization, WeightDecay, ZeroPadShortcut
from keras_resnet.models import (
    Plain18,
    Plain20,
    Plain32,
    Plain34,
    Plain44,
    Plain50,
    Plain56,
    Plain101,
    Plain110,
    Plain152,
    ResNet,
    ResNet18,
    ResNet20,
    ResNet32,
    ResNet34,
    ResNet44,
    ResNet50,
    ResNet56,
    ResNet101,
    ResNet110,
    ResNet152,
    ResNet1202,
    build_model,
    list_models,
)

__version__ = "0.1.0"
