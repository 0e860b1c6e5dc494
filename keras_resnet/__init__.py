"""keras_resnet: the networks of He et al., "Deep Residual Learning for Image
Recognition" (2015), in Keras 3, with the paper's training recipe.

Example:

>>> import keras_resnet
>>> model = keras_resnet.ResNet56()          # CIFAR-10 ResNet-56, option A
>>> model = keras_resnet.ResNet56(weights="cifar10")   # trained, shipped with the package
>>> model = keras_resnet.ResNet50(classes=10, input_shape=(64, 64, 3))
>>> model = keras_resnet.build_model("plain20")

Importing the package changes no environment variable and no global Keras
setting. On CPUs where TensorFlow leaves its oneDNN kernels off, export
TF_ENABLE_ONEDNN_OPTS=1 before Python starts (the commands set it themselves,
see keras_resnet_cli.py); benchmarks/README.md says what it is worth.
"""

from keras_resnet import schedules  # registers the optimizer and schedules model.keras files name
from keras_resnet.classes import Prediction, decode_predictions
from keras_resnet.features import FeatureInfo, feature_extractor, feature_info
from keras_resnet.flops import FlopsReport, count_flops
from keras_resnet.layers import (
    FusedBatchNormalization,
    InputNormalization,
    WeightDecay,
    ZeroPadShortcut,
)
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
