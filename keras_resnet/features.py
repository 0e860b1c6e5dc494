"""Named stage outputs: any network of this package as a backbone for other tasks.

    model = keras_resnet.ResNet50(weights="imagenet", include_top=False)
    backbone = keras_resnet.feature_extractor(model, trainable=False)
    features = backbone(images)        # {"conv2": ..., "conv3": ..., "conv4": ..., "conv5": ...}

The stages are the paper's (Table 1): `conv2` .. `conv5` of an ImageNet
network, `conv2` .. `conv4` of a CIFAR network; each stage's output is its
last block's `convS_blockB_out`, found by the fixed layer names
(`keras_resnet.models`), so any network with them works: built with or
without weights or classifier, loaded from a `.keras` file, or a
keras.applications ResNet. `feature_info` gives each stage's channels and
stride, as timm's `feature_info` does; the keys are what KerasHub's
`pyramid_outputs` calls P2 .. P5.
"""

import dataclasses
import re


from keras_resnet.models import ResNetModel

# Named stage outputs: a network as a backbone for other tasks.

_STAGE_OUTPUT = re.compile(r"conv(\d+)_block(\d+)_out")


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """What one stage of a network outputs (timm's `feature_info` entry).

    Attributes:
        layer: str, the layer whose output the stage's is: its last block's
            `convS_blockB_out`, e.g. `"conv4_block6_out"` in ResNet-50.
        channels: int, channels of the output (timm's `num_chs`).
        stride: int, the input's height and width over the output's (timm's
            `reduction`): 4, 8, 16, 32 for `conv2` .. `conv5` of an ImageNet
            network, 1, 2, 4 for `conv2` .. `conv4` of a CIFAR network. With an
            input size that is not a multiple of it, sizes round up.
    """

    layer: str
    channels: int
    stride: int


def feature_info(model):
    """The stages of a network and what each one outputs.

    Args:
        model: a model of this package: any builder's, with or without
            weights or classifier, or one loaded from a `.keras` file; or any
            functional model with its layer names (keras.applications'
            ResNets have them), or the extractor `feature_extractor` made.

    Returns:
        dict, stage name to `FeatureInfo`, in order: `"conv2"` .. `"conv5"`
        for an ImageNet network, `"conv2"` .. `"conv4"` for a CIFAR one.

    Raises:
        ValueError: when `model` has no layer named `convS_blockB_out`.

    Example:

    >>> feature_info(ResNet20())["conv4"]
    FeatureInfo(layer='conv4_block3_out', channels=64, stride=4)
    """
    last = {}  # stage number -> (block number, layer)
    for layer in getattr(model, "layers", ()):
        match = _STAGE_OUTPUT.fullmatch(layer.name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            if stage not in last or block > last[stage][0]:
                last[stage] = (block, layer)
    if not last:
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} has no layer named convS_blockB_out "
            "(e.g. conv2_block1_out): feature_info and feature_extractor take the networks "
            "of keras_resnet, or models with their layer names."
        )
    # Where the input's height is known, the stride is read off the shapes: the smallest
    # power of two that gives the stage's height (sizes round up). Otherwise: stages after
    # the first halve the resolution; the ImageNet stem (7x7/2 conv and 3x3/2 max pool,
    # `pool1_pool`) divides it by 4 before conv2, the CIFAR stem keeps it; keras.applications'
    # ResNet V2 (its `post_bn`) halves it at the end of every stage but the last instead.
    height = model.inputs[0].shape[1] if getattr(model, "inputs", None) else None
    first = 4 if any(layer.name == "pool1_pool" for layer in model.layers) else 1
    v2 = any(layer.name == "post_bn" for layer in model.layers)

    def stride(stage, layer):
        if height and layer.output.shape[1]:
            return next(2**k for k in range(16) if -(-height // 2**k) <= layer.output.shape[1])
        halvings = stage - min(last)
        return first * 2 ** (min(halvings + 1, max(last) - min(last)) if v2 else halvings)

    return {
        f"conv{stage}": FeatureInfo(
            layer=layer.name, channels=int(layer.output.shape[-1]), stride=stride(stage, layer)
        )
        for stage, (_, layer) in sorted(last.items())
    }


def feature_extractor(model, stages=None, *, trainable=None, name=None):
    """A model from a network's input to its stage outputs, by name.

    The network as a backbone for other tasks (the paper's detection results
    use ResNet-101's stages so), in the convention of KerasHub's
    `pyramid_outputs` and timm's `features_only`: a dict of the stages'
    outputs, each the output of the stage's last block. With ImageNet
    networks at 224x224 (sizes and strides scale with the input):

    | stage   | stride | ResNet-18/34 | ResNet-50/101/152 | stride | CIFAR ResNets, 32x32 |
    |---------|-------:|--------------|-------------------|-------:|----------------------|
    | `conv2` |      4 | 56x56x64     | 56x56x256         |      1 | 32x32x16             |
    | `conv3` |      8 | 28x28x128    | 28x28x512         |      2 | 16x16x32             |
    | `conv4` |     16 | 14x14x256    | 14x14x1024        |      4 | 8x8x64               |
    | `conv5` |     32 | 7x7x512      | 7x7x2048          |        |                      |

    (`feature_info(model)` gives each stage's layer, channels and stride.)
    The extractor takes what `model` takes: RGB pixels 0-255 for pretrained
    weights, whose input normalization is inside the model.

    Args:
        model: a network of this package, as for `feature_info`: any builder's
            output, pretrained or not, with or without its classifier, or one
            loaded with `keras.saving.load_model`.
        stages: None (default) for every stage, or a stage name or a list of
            them, e.g. `["conv4", "conv5"]`.
        trainable: None (default) leaves the layers' `trainable` as it is;
            False freezes the backbone: no trainable weights, and its batch
            norms run in inference mode, with their moving statistics, even
            under `fit` or `training=True` (Keras's rule for a non-trainable
            `BatchNormalization`); True makes every layer trainable.
        name: the extractor's name. Default `"{model.name}_features"`.

    Returns:
        A functional `keras.Model` (a `ResNetModel`: it saves to and loads
        from `.keras`) whose output is a dict, stage name to a 4D tensor
        `(batch, height, width, channels)`. It shares its layers and weights
        with `model`: training one trains the other, and `trainable` applies
        to those layers in `model` too (the classifier and the stages after
        the last one asked for are not touched). Clone the model first
        (`keras.models.clone_model`, then `set_weights`) for an independent one.

    Raises:
        ValueError: for a stage `model` does not have (the message names the
            ones it has), an empty `stages` or one of another type, or a
            `model` without the layer names of this package.

    Example:

    >>> backbone = feature_extractor(ResNet56(weights="cifar10"), trainable=False)
    >>> features = backbone.predict(np.zeros((1, 32, 32, 3)), verbose=0)
    >>> {stage: array.shape for stage, array in features.items()}
    {'conv2': (1, 32, 32, 16), 'conv3': (1, 16, 16, 32), 'conv4': (1, 8, 8, 64)}
    """
    info = feature_info(model)
    if stages is None:
        stages = list(info)
    elif isinstance(stages, str):
        stages = [stages]
    else:
        try:
            stages = list(stages)
        except TypeError:
            raise ValueError(
                f"stages must be None, a stage name or a list of them ({', '.join(info)}), "
                f"received {stages!r}."
            ) from None
    if not stages:
        raise ValueError(f"stages is empty: give None for all or some of {', '.join(info)}.")
    unknown = [stage for stage in stages if stage not in info]
    if unknown:
        raise ValueError(
            f"Unknown stage{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(stage) for stage in unknown)} for {model.name!r}: "
            f"its stages are {', '.join(info)}."
        )
    if trainable is not None and not isinstance(trainable, bool):
        raise ValueError(f"trainable must be None, True or False, received {trainable!r}.")
    outputs = {
        stage: model.get_layer(info[stage].layer).output for stage in info if stage in stages
    }
    extractor = ResNetModel(model.input, outputs, name=name or f"{model.name}_features")
    if trainable is not None:
        # Layer by layer: on TensorFlow, `extractor.trainable = True` does nothing when
        # the new model's own flag is already True (its attribute tracking skips
        # `x.a = x.a`), which would leave layers that an earlier call froze frozen.
        for layer in extractor.layers:
            layer.trainable = trainable
        extractor.trainable = trainable
    return extractor
