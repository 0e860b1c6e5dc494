"""ResNet builders: every network of He et al., "Deep Residual Learning for
Image Recognition" (CVPR 2016, arXiv:1512.03385), and their plain counterparts.

The variant implemented is the original v1 (post-activation) network: conv ->
BN -> ReLU, addition before the block's last ReLU, no conv biases, He
initialisation, global average pooling and a dense classifier. Bottleneck
blocks stride on their first 1x1 conv by default, as the paper's models do
(`bottleneck_stride="3x3"` gives torchvision's "v1.5").

Trainable parameters (tested exactly in tests/test_models.py):

| network     | stem     | shortcut | parameters |
|-------------|----------|----------|-----------:|
| ResNet-20   | CIFAR    | A        |    269,722 |
| ResNet-32   | CIFAR    | A        |    464,154 |
| ResNet-44   | CIFAR    | A        |    658,586 |
| ResNet-56   | CIFAR    | A        |    853,018 |
| ResNet-110  | CIFAR    | A        |  1,727,962 |
| ResNet-1202 | CIFAR    | A        | 19,421,274 |
| ResNet-18   | ImageNet | B        | 11,689,512 |
| ResNet-34   | ImageNet | B        | 21,797,672 |
| ResNet-50   | ImageNet | B        | 25,557,032 |
| ResNet-101  | ImageNet | B        | 44,549,160 |
| ResNet-152  | ImageNet | B        | 60,192,808 |

A plain network has the layers of its residual twin without shortcuts, so it
has the parameters of option A.

Layer names follow `keras.applications`: `conv1_conv`, `conv1_bn`,
`conv1_relu` (and `conv1_pad`, `pool1_pad`, `pool1_pool` for the ImageNet
stem); then per block `convS_blockB_K_{pad,conv,bn,relu}` for its K-th conv,
`convS_blockB_0_{conv,bn}` for a projection shortcut or
`convS_blockB_0_zeropad` for an option-A shortcut that changes shape,
`convS_blockB_add` and `convS_blockB_out`; `input_normalization`, `avg_pool`,
`max_pool` and `predictions` around them. Stages are numbered from 2 as in the
paper's Table 1 (`conv2` .. `conv5`; `conv2` .. `conv4` for CIFAR).

`keras_resnet.features.feature_extractor(model)` turns any of these networks
into a backbone: a model whose outputs are the stages' outputs by name.
"""

import math
import re
import warnings

import keras

from keras_resnet import _compat, specs
from keras_resnet import weights as weights_lib
from keras_resnet.blocks import DATA_FORMAT, LayerDefaults, conv_bn, residual_stages
from keras_resnet.layers import InputNormalization


def ResNet(
    depth,
    *,
    stem=None,
    block=None,
    shortcut=None,
    plain=False,
    bottleneck_stride=None,
    base_width=None,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    class_names=None,
    classifier_activation="softmax",
    input_mean=None,
    input_std=None,
    weight_decay=1e-4,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    name=None,
):
    """Builds a ResNet or plain network of He et al. (2015) as a functional model.

    Reference:
    - [Deep Residual Learning for Image Recognition](https://arxiv.org/abs/1512.03385)
      (CVPR 2016)

    Args:
        depth: int, weighted layers. ImageNet stem: 18, 34, 50, 101 or 152.
            CIFAR stem: 6n+2 (20, 32, 44, 56, 110, 1202 in the paper), or 9n+2
            with `block="bottleneck"`.
        stem: `"cifar"` (3x3 conv with `base_width` filters, stages at full,
            1/2 and 1/4 resolution), `"imagenet"` (7x7/2 conv and 3x3/2 max
            pool, four stages) or None (default) to infer it from `depth`,
            ImageNet depths first: `ResNet(50)` is the ImageNet ResNet-50.
        block: `"basic"`, `"bottleneck"` or None (default) for the paper's
            choice: the depth table for ImageNet, basic blocks for CIFAR.
        shortcut: `"A"` (identity, zero-padded where the shape changes),
            `"B"` (projection only where the shape changes) or `"C"`
            (projection everywhere). Default None: `"A"` for the CIFAR stem,
            `"B"` for ImageNet, as in the paper. Must be None when `plain`.
        plain: bool, build the paper's plain counterpart: the same layers
            without shortcuts. Default False.
        bottleneck_stride: where a bottleneck block strides: `"1x1"` (the
            paper's v1; the default for bottleneck nets) or `"3x3"` ("v1.5").
            Must be None for basic-block networks.
        base_width: int, filters of the first stage, doubled at each later
            stage. Default None: 16 for CIFAR, 64 for ImageNet.
        include_top: bool, end with global average pooling and the dense
            classifier. Default True.
        weights: None (random initialisation, default), `"imagenet"` (the
            paper's MSRA ResNet-50/101/152, the files keras.applications
            downloads), `"cifar10"` (ResNet-20/32/44/56/110 trained on CIFAR-10,
            shipped with the package), or a path: a keras.applications
            ResNet `.h5`/`.weights.h5`, a PyTorch checkpoint (`.pth`, `.th`,
            `.pt`, `.safetensors`; torchvision or akamaster CIFAR layout), or a
            `.weights.h5` saved from a keras_resnet model of the same
            architecture; or the `keras_resnet.weights.Source` that
            `keras_resnet.weights.resolve` read from one of these (read once,
            build many), or a `keras_resnet.weights.Pretrained`. Pretrained
            weights must fit the requested network
            (the error names both) and bring their own input normalization;
            with `include_top=False` everything but the classifier is loaded.
            `keras_resnet.weights` has the details.
        input_tensor: optional Keras tensor (output of `keras.Input()`) to use
            as the model's input.
        input_shape: optional `(height, width, channels)`. Default: the shape
            of `input_tensor`, else (32, 32, 3) for CIFAR and (224, 224, 3) for
            ImageNet; with `include_top=False`, (None, None, 3) as in
            keras.applications (any height and width), unless a per-pixel
            `input_mean` or `input_std` (its own or its weights') fixes them.
            Height and width may be None. Every model is
            channels-last, whatever `keras.config.image_data_format()` is set
            to: inputs are `(batch, height, width, channels)`.
        pooling: with `include_top=False`: None (the last stage's 4D output),
            `"avg"` or `"max"` (global pooling to a 2D output).
        classes: int, classifier outputs. Default 10 (CIFAR) or 1000 (ImageNet).
        class_names: optional sequence of `classes` names in label order,
            kept with the model as `model.class_names`: saved in its `.keras`
            file, written to `assets/labels.txt` by an export, read by
            `keras_resnet.decode_predictions(predictions, class_names=model)`.
            Default None: with pretrained weights and their classifier, their
            classes' names (`"cifar10"`: CIFAR-10's; `"imagenet"`: ImageNet's,
            from keras.applications' class index in the Keras cache, with a
            warning and no names when it cannot be fetched); else none. Needs
            `include_top=True`.
        classifier_activation: activation of the classifier: `"softmax"`
            (default), None for logits, or any Keras activation.
        input_mean: optional array subtracted from the input by a first
            `input_normalization` layer, e.g. the paper's per-pixel training
            mean of shape `input_shape`, or a per-channel mean. Default None;
            pretrained weights set their own.
        input_std: optional array the centred input is divided by (e.g. 255.0
            to scale pixels to about [-1, 1]). Default None; pretrained
            weights set their own.
        weight_decay: float, the paper's L2 decay coefficient, applied to every
            weight as a loss of `0.5 * weight_decay * sum(w**2)` (gradient
            `weight_decay * w`). Default 1e-4, the paper's. 0 disables it.
        bn_momentum: float, batch norm moving-average momentum. Default 0.9
            (PyTorch and Torch's 0.1).
        bn_epsilon: float, batch norm epsilon. Default 1e-5.
        name: model name. Default `"resnet{depth}"` or `"plain{depth}"`.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: for any invalid argument, before any layer is built.

    Example:

    >>> model = ResNet(20, stem="cifar")
    >>> model.count_params()
    271098
    >>> model.output_shape
    (None, 10)
    """
    spec = specs.make_spec(depth, stem, block, base_width, shortcut, plain, bottleneck_stride)
    defaults = specs.STEM_DEFAULTS[spec.stem]
    specs.check_head(include_top, pooling, defaults["classes"] if classes is None else classes)
    source, pretrained, normalization = weights_lib.resolve(weights), None, None
    if isinstance(source, weights_lib.KerasResNetFile):  # Keras loads it, but not into a
        normalization = source.input_normalization  # layer the model would lack
    elif source is not None:
        pretrained = source.load(spec, include_top, classes)
        classes = pretrained.classes if include_top else classes
        normalization = pretrained.input_mean, pretrained.input_std
    normalization_source = None  # where input_mean and input_std come from, when not the caller
    if normalization is not None:
        normalization_source = f"weights from {pretrained.source if pretrained else source.label}"
        if input_mean is not None or input_std is not None:
            raise ValueError(
                f"{normalization_source} come with their own input normalization; input_mean "
                "and input_std must be None with them."
            )
        input_mean, input_std = normalization
    classes = defaults["classes"] if classes is None else classes
    class_names = _check_class_names(class_names, include_top, classes)
    if class_names is None and include_top and pretrained is not None:
        class_names = _class_names_of(source)
    if input_shape is None:
        if input_tensor is not None and input_tensor.shape is not None:
            input_shape = tuple(input_tensor.shape[1:])
        else:
            input_shape = _default_input_shape(defaults, include_top, input_mean, input_std)
    input_shape = specs.check_input_shape(input_shape, spec.stem)
    layer_defaults = LayerDefaults(
        weight_decay=specs.check_non_negative("weight_decay", weight_decay),
        bn_momentum=specs.check_non_negative("bn_momentum", bn_momentum),
        bn_epsilon=specs.check_non_negative("bn_epsilon", bn_epsilon),
    )
    name = name or spec.name

    if input_tensor is None:
        inputs = keras.Input(shape=input_shape)
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=input_shape)

    x = inputs
    if input_mean is not None or input_std is not None:
        x = _input_normalization(input_mean, input_std, input_shape, normalization_source)(x)
    x = _stem(x, spec, layer_defaults)
    x = residual_stages(x, spec, layer_defaults)
    x = _head(x, include_top, pooling, classes, classifier_activation, layer_defaults)

    model_inputs = inputs if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    model = ResNetModel(model_inputs, x, name=name, class_names=class_names)
    if pretrained is not None:
        weights_lib.assign(model, pretrained)
    elif source is not None:
        model.load_weights(source.path)
    return model


def from_weights(weights, depth=None, *, bottleneck_stride=None, input_shape=None):
    """The network pretrained weights fit, built with them and their classifier.

    Args:
        weights: a name (`"cifar10"`, `"imagenet"`), a file, as `ResNet` takes,
            or the source `weights_network` returned.
        depth: int, the network's depth: needed for a name, taken from a
            file when None (a file that names its network must agree).
        bottleneck_stride: where bottleneck blocks stride (default: the weights').
        input_shape: the input's shape (default: the stem's, 32x32 CIFAR,
            224x224 ImageNet).

    Returns:
        A `ResNetModel` with the weights' class names when they have them.

    Raises:
        ValueError: for weights that do not exist or fit, or a name without `depth`.
    """
    source, architecture = weights_network(weights, depth, bottleneck_stride=bottleneck_stride)
    return ResNet(**architecture, weights=source, input_shape=input_shape)


def weights_network(weights, depth=None, *, bottleneck_stride=None):
    """Reads `weights` once and checks the network they fit, before named weights are fetched.

    Args: as `from_weights` takes them.

    Returns:
        (the `keras_resnet.weights.Source`, `ResNet`'s architecture arguments:
        depth, stem, shortcut and bottleneck_stride).

    Raises:
        ValueError: for weights that do not exist for that network, an invalid
            depth, or a name without `depth`.
    """
    source = weights_lib.resolve(weights)
    implied = source.architecture
    depth = implied.get("depth") if depth is None else depth
    if depth is None:
        entry = weights_lib.NAMED.get(weights) if isinstance(weights, str) else None
        depths = f" ({', '.join(map(str, entry.depths))})" if entry else ""
        raise ValueError(
            f"--weights {weights} needs --depth{depths}: the network to load them into."
        )
    architecture = {
        "depth": depth,
        "stem": implied.get("stem"),
        "shortcut": implied.get("shortcut"),
        "bottleneck_stride": bottleneck_stride or implied.get("bottleneck_stride"),
    }
    source.check(specs.make_spec(**architecture))
    return source, architecture


@keras.saving.register_keras_serializable(package="keras_resnet")
class ResNetModel(keras.Model):
    """The functional model every builder of this package returns.

    A plain `keras.Model(inputs, outputs)` in every respect, except that it
    builds, loads (`keras.saving.load_model`) and clones however deep its
    graph is: Keras walks a functional graph with one Python frame per layer,
    which ResNet-1202 takes past Python's default recursion limit
    (`keras_resnet._compat.recursion_headroom`). A saved model names this
    class, so loading it needs `import keras_resnet`, as its layers do.

    It also keeps the names of its classes, `class_names` (a tuple in label
    order, or None), in its config: a `.keras` file carries them, and one
    saved before they existed loads with None. `keras.models.clone_model`
    rebuilds the model from its inputs and outputs only, so a clone has None:
    set `clone.class_names = model.class_names`.
    """

    def __init__(self, *args, class_names=None, **kwargs):
        outputs = kwargs["outputs"] if "outputs" in kwargs else args[1]
        with _compat.recursion_headroom(_compat.count_graph_operations(outputs)):
            super().__init__(*args, **kwargs)
        self.class_names = None if class_names is None else tuple(map(str, class_names))

    def get_config(self):
        config = super().get_config()
        if self.class_names is not None:
            config["class_names"] = list(self.class_names)
        return config


def check_takes_pixels(model, label):
    """Refuses a model whose input goes straight into a keras.applications ResNet.

    Every keras_resnet model takes RGB pixels 0-255 (any normalization is
    inside it), and evaluation, prediction and serving give a model exactly
    that. A keras.applications ResNet expects its own `preprocess_input`
    instead (ResNet50/101/152: BGR minus the ImageNet mean; the V2 nets:
    pixels scaled to [-1, 1]), so given pixels it runs and answers wrong. It
    is told apart by its first conv's bias: keras_resnet's convs have none,
    and layer names cannot tell, ours being keras.applications'. Looked for
    where the model's input goes first, inside nested models too (a
    `Sequential` or functional model around one, as in transfer learning):
    one with its preprocessing in front (a `Rescaling` layer, or
    `preprocess_input` applied to the input before `input_tensor=`) passes.

    Args:
        model: a Keras model.
        label: how messages name it (a path, or the model's name).

    Raises:
        ValueError: for such a model, saying how to make one that takes pixels.
    """
    owner, first = _first_layer(model)
    if first is None or first.name not in ("conv1_pad", "conv1_conv"):
        return
    try:
        stem = owner.get_layer("conv1_conv")
    except ValueError:  # no such layer: not a ResNet laid out as keras.applications'
        return
    if getattr(stem, "use_bias", False):
        raise ValueError(
            f"The model {label} gives its input straight to a keras.applications ResNet (its "
            "first conv, conv1_conv, has a bias; keras_resnet's have none), which expects "
            "keras.applications' preprocess_input (ResNet50/101/152: BGR minus the ImageNet "
            "mean; the V2 nets: pixels scaled to [-1, 1]); keras_resnet gives every model RGB "
            "pixels 0-255, so its answers would be wrong. A whole ResNet50/101/152 with its "
            "classifier converts exactly: model.save_weights('resnet.weights.h5'), then "
            "--weights resnet.weights.h5 (keras-resnet-predict, keras-resnet-evaluate) or "
            "keras_resnet.models.from_weights('resnet.weights.h5') in Python, whose "
            "save('resnet.keras') gives a --model for any command. Any other: put its "
            "preprocessing inside the model, in front, so that it takes pixels."
        )


def _first_layer(model):
    """(the model holding it, the layer) that a model gives its input to first, looking into
    nested models; (model, None) for a model whose graph is not known (a subclassed one)."""
    if isinstance(model, keras.Sequential):
        layers = model.layers
    else:
        operations = getattr(model, "operations", ())
        layers = [op for op in operations if not isinstance(op, keras.layers.InputLayer)]
    first = layers[0] if layers else None
    if isinstance(first, keras.Model):
        return _first_layer(first)
    return model, first


def _check_class_names(class_names, include_top, classes):
    """`class_names` as a tuple of str, checked against the classifier; None stays None."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not hasattr(class_names, "__len__"):
        raise ValueError(
            f"class_names must be a list of {classes} names, received {class_names!r}."
        )
    if not include_top:
        raise ValueError("class_names name a classifier's outputs: they need include_top=True.")
    if len(class_names) != classes:
        raise ValueError(
            f"class_names has {len(class_names)} names; the classifier has {classes} classes."
        )
    return tuple(map(str, class_names))


def _class_names_of(source):
    """The names of pretrained weights' classes; None, with a warning, when not to be had."""
    try:
        return source.class_names()
    except ValueError as error:
        warnings.warn(f"The model gets no class names: {error}", stacklevel=3)
        return None


def _default_input_shape(defaults, include_top, mean, std):
    """The size a per-pixel mean or std fixes; else the paper's for a classifier, and any
    height and width for a backbone, as keras.applications does with include_top=False."""
    channels = defaults["input_shape"][-1]
    size = _per_pixel_size(mean, std)
    if size is not None:
        return (*size, channels)
    return defaults["input_shape"] if include_top else (None, None, channels)


def _per_pixel_size(mean, std):
    """The (height, width) of a per-pixel mean or std; None when both are per channel."""
    for value in (mean, std):
        shape = () if value is None else tuple(keras.ops.shape(value))
        if len(shape) == 3 and shape[:2] != (1, 1):
            return shape[:2]
    return None


def _input_normalization(mean, std, input_shape, source=None):
    """`input_normalization` layer; validates that mean/std fit one example.

    `source` names the weights that brought mean/std, for the error when they do not fit.
    """
    arrays = {}
    for label, value in (("input_mean", mean), ("input_std", std)):
        if value is None:
            continue
        array = keras.ops.convert_to_numpy(value).astype("float32")
        try:
            keras.ops.broadcast_to(array, [d or 1 for d in input_shape])
        except Exception:
            if source is not None:  # the user gave no mean: say what the weights take
                size = _per_pixel_size(array, None)
                channels = array.shape[-1] if array.ndim and array.shape[-1] > 1 else None
                takes = f"{size[0]}x{size[1]} inputs" if size else "inputs"
                takes += f" with {channels} channels" if channels else ""
                wanted = (*(size or input_shape[:2]), channels or input_shape[-1])
                raise ValueError(
                    f"input_shape {input_shape} does not fit the {source}: they take {takes} "
                    f"only (their {label} has shape {array.shape}). Use input_shape={wanted}."
                ) from None
            raise ValueError(
                f"{label} of shape {array.shape} does not broadcast to input_shape "
                f"{input_shape}: use (height, width, channels), (channels,) or a scalar."
            ) from None
        if label == "input_std" and (array <= 0).any():
            raise ValueError("input_std must be positive everywhere.")
        arrays[label] = array
    mean, std = arrays.get("input_mean"), arrays.get("input_std")
    return InputNormalization(
        mean_shape=() if mean is None else mean.shape,
        std_shape=() if std is None else std.shape,
        mean=mean,
        std=std,
        name="input_normalization",
    )


def _stem(x, spec, defaults):
    if spec.stem == "cifar":
        return conv_bn(x, spec.base_width, 3, 1, "conv1", defaults)
    x = conv_bn(x, spec.base_width, 7, 2, "conv1", defaults)
    x = keras.layers.ZeroPadding2D(1, data_format=DATA_FORMAT, name="pool1_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, data_format=DATA_FORMAT, name="pool1_pool")(x)


def _head(x, include_top, pooling, classes, activation, defaults):
    if not include_top:
        if pooling == "avg":
            return keras.layers.GlobalAveragePooling2D(data_format=DATA_FORMAT, name="avg_pool")(x)
        if pooling == "max":
            return keras.layers.GlobalMaxPooling2D(data_format=DATA_FORMAT, name="max_pool")(x)
        return x
    x = keras.layers.GlobalAveragePooling2D(data_format=DATA_FORMAT, name="avg_pool")(x)
    policy = keras.config.dtype_policy()
    # Under mixed precision the classifier (and its softmax) runs in float32.
    head_dtype = "float32" if policy.compute_dtype != policy.variable_dtype else None
    return keras.layers.Dense(
        classes,
        activation=activation,
        kernel_regularizer=defaults.regularizer,
        bias_regularizer=defaults.regularizer,
        dtype=head_dtype,
        name="predictions",
    )(x)


# Registry: lower-case name -> the network's `Spec`, in the order of the paper's tables.
SPECS = {}


def _register(display_name, depth, stem, plain=False):
    """Registers a network's spec and makes its one-line constructor; caller kwargs win."""
    spec = specs.make_spec(depth, stem, plain=plain)
    SPECS[display_name.lower()] = spec

    def constructor(**kwargs):
        return _build_registered(spec, kwargs)

    defaults = specs.STEM_DEFAULTS[stem]
    kind = "plain network (no shortcuts)" if plain else f"ResNet (option {spec.shortcut})"
    constructor.__name__ = constructor.__qualname__ = display_name
    constructor.__doc__ = (
        f"The paper's {depth}-layer {stem.upper() if stem == 'cifar' else 'ImageNet'} "
        f"{kind}: input {defaults['input_shape']} (any height and width with "
        "`include_top=False`, unless its weights' per-pixel mean fixes them), "
        f"{defaults['classes']} classes.\n\n"
        f"Same as `ResNet({depth}, stem={stem!r}, plain={plain}, **kwargs)`; every "
        "keyword argument of `ResNet` is accepted and overrides these defaults.\n\n"
        f"Example:\n\n>>> model = keras_resnet.{display_name}()\n"
    )
    return constructor


ResNet20 = _register("ResNet20", 20, "cifar")
ResNet32 = _register("ResNet32", 32, "cifar")
ResNet44 = _register("ResNet44", 44, "cifar")
ResNet56 = _register("ResNet56", 56, "cifar")
ResNet110 = _register("ResNet110", 110, "cifar")
ResNet1202 = _register("ResNet1202", 1202, "cifar")
ResNet18 = _register("ResNet18", 18, "imagenet")
ResNet34 = _register("ResNet34", 34, "imagenet")
ResNet50 = _register("ResNet50", 50, "imagenet")
ResNet101 = _register("ResNet101", 101, "imagenet")
ResNet152 = _register("ResNet152", 152, "imagenet")
Plain20 = _register("Plain20", 20, "cifar", plain=True)
Plain32 = _register("Plain32", 32, "cifar", plain=True)
Plain44 = _register("Plain44", 44, "cifar", plain=True)
Plain56 = _register("Plain56", 56, "cifar", plain=True)
Plain110 = _register("Plain110", 110, "cifar", plain=True)
Plain18 = _register("Plain18", 18, "imagenet", plain=True)
Plain34 = _register("Plain34", 34, "imagenet", plain=True)
Plain50 = _register("Plain50", 50, "imagenet", plain=True)
Plain101 = _register("Plain101", 101, "imagenet", plain=True)
Plain152 = _register("Plain152", 152, "imagenet", plain=True)


def freeze_backbone(model, unfreeze_from=None):
    """Freezes every layer but the classifier (`predictions`) and the stages from `unfreeze_from`.

    Args:
        model: a network of `ResNet`.
        unfreeze_from: None (only the classifier trains) or a stage name,
            `"conv4"`: that stage and the later ones train too.

    Raises:
        ValueError: `unfreeze_from` names no stage of `model`.
    """
    stages = {layer: re.match(r"conv(\d+)_", layer.name) for layer in model.layers}
    numbers = sorted({int(match.group(1)) for match in stages.values() if match})
    first = None
    if unfreeze_from is not None:
        names = [f"conv{number}" for number in numbers]
        if unfreeze_from not in names:
            raise ValueError(
                f"Invalid unfreeze_from {unfreeze_from!r}: {model.name} has the stages "
                f"{', '.join(names)}."
            )
        first = int(unfreeze_from[len("conv") :])
    for layer, stage in stages.items():
        layer.trainable = layer.name == "predictions" or bool(
            first and stage and int(stage.group(1)) >= first
        )


def trainable_parameters(model):
    """The number of `model`'s trainable parameters: what the paper's tables count."""
    return sum(math.prod(weight.shape) for weight in model.trainable_weights)


def list_models():
    """Names accepted by `build_model`, e.g. `"resnet56"`, `"plain18"`."""
    return list(SPECS)


def build_model(name, **kwargs):
    """Builds a registered network by name; `kwargs` go to `ResNet`.

    Args:
        name: str, case-insensitive, one of `list_models()`.
        **kwargs: any keyword argument of `ResNet`.

    Example:

    >>> model = build_model("resnet56", classes=100)
    """
    key = str(name).lower()
    if key not in SPECS:
        raise ValueError(f"Unknown model {name!r}. Allowed: {', '.join(SPECS)}.")
    return _build_registered(SPECS[key], kwargs)


def _build_registered(spec, kwargs):
    # Only the registered choices are fixed, so that a caller's shortcut or
    # bottleneck_stride is checked against them as `ResNet` checks its own.
    return ResNet(spec.depth, **{"stem": spec.stem, "plain": spec.plain, **kwargs})
