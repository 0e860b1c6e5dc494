"""Pretrained weights: the paper's ImageNet models, trained CIFAR-10 nets, PyTorch checkpoints.

`ResNet(weights=...)` and the training command's `--weights` take:

- `"imagenet"`: the MSRA ResNet-50/101/152 released with the paper, in the
  files keras.applications publishes (same names, URLs and hashes), fetched
  with `keras.utils.get_file` into the Keras cache (`~/.keras/models`; a file
  keras.applications already downloaded is reused, and no network is touched
  while it is there).
- `"cifar10"`: ResNet-20/32/44/56 trained on CIFAR-10, shipped with the
  package: akamaster/pytorch_resnet_cifar10's checkpoints (BSD 2-Clause, notice
  in `keras_resnet/pretrained/`), converted by
  `scripts/make_cifar10_weights.py`.
- a path: a keras.applications ResNet50/101/152 file (the legacy `.h5` it
  downloads, or a `.weights.h5` saved from such a model); a PyTorch
  checkpoint (`.pth`, `.th`, `.pt` with torch installed, `.safetensors`) in the
  torchvision/timm layout (ResNet-18..152) or the CIFAR layout of
  akamaster/pytorch_resnet_cifar10 (option A); an `.npz` written by
  `save_npz`; or a `.weights.h5` saved from a keras_resnet model of the same
  architecture (loaded by Keras as it is).

Every source except the last is read into a `Pretrained`: arrays in this
package's layout under its layer names, with the input normalization they
were trained with. The conversions are exact, not approximations:

- keras.applications convs carry biases: each is folded into the mean of the
  batch norm that follows. Its batch norm's epsilon (1.001e-5) is kept and
  moved into the variance for a model with another epsilon. Its inputs are
  Caffe's BGR minus the ImageNet mean: the first conv's input channels are
  reversed and the mean becomes the model's `input_normalization`, so the
  model takes RGB pixels 0-255 like every keras_resnet model.
- PyTorch kernels are transposed from (out, in, h, w) to (h, w, in, out).
  torchvision's bottleneck blocks stride their 3x3 conv: such checkpoints fit
  `bottleneck_stride="3x3"` only. akamaster's option A pads the identity with
  zero channels on both sides, ours after it: every stage's channels are
  permuted so that each of ours is one of theirs.
"""

import dataclasses
import json
import os

import h5py
import keras
import numpy as np

from keras_resnet import specs

# Named weights and the classes of their classifiers.
NAMED_WEIGHTS = {"imagenet": 1000, "cifar10": 10}
KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# keras.applications' md5 hashes of (with classifier, without) for each depth.
KERAS_APPLICATIONS_HASHES = {
    50: ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    101: ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    152: ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
}
KERAS_APPLICATIONS_BN_EPSILON = 1.001e-5
# keras.applications' "caffe" preprocessing subtracts this (given here in RGB order).
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
# torchvision's normalization of RGB pixels in [0, 1]; akamaster's is the same.
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
TORCH_BN_EPSILON = 1e-5
TORCH_SUFFIXES = (".pth", ".th", ".pt", ".safetensors")
# The `ResNet` arguments a weights file fixes (`implied_architecture`).
ARCHITECTURE_FLAGS = ("depth", "stem", "shortcut", "bottleneck_stride")
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
CIFAR10_DEPTHS = (20, 32, 44, 56)
INSTALL_PYTORCH = "pip install 'keras-resnet-paper[pytorch]'"


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """Trained weights in this package's layout, with what they fit.

    Attributes:
        source: where they come from, for messages and metadata.
        spec: the `keras_resnet.specs.Spec` of the network they belong to.
        classes: outputs of their classifier; None when they have none.
        input_mean: per-channel RGB mean the model subtracts from pixels 0-255.
        input_std: per-channel RGB divisor applied after it.
        bn_epsilon: the batch-norm epsilon the statistics were computed for.
        layers: layer name -> list of arrays in the order of the layer's
            `get_weights()` (batch norm: gamma, beta, moving mean, variance);
            None in what a resumed run recorded of its weights (its
            checkpoint holds the layers).
    """

    source: str
    spec: specs.Spec
    classes: int
    input_mean: np.ndarray
    input_std: np.ndarray
    bn_epsilon: float
    layers: dict


def describe(spec):
    """`ResNet-50 (ImageNet stem, bottleneck blocks, option B, stride on the 1x1 conv)`."""
    kind = "Plain" if spec.plain else "ResNet"
    parts = [
        f"{'ImageNet' if spec.stem == 'imagenet' else 'CIFAR'} stem",
        f"{spec.block} blocks {'x'.join(map(str, spec.stage_blocks))}",
        "no shortcuts" if spec.plain else f"option {spec.shortcut}",
        f"base width {spec.base_width}",
    ]
    if spec.bottleneck_stride:
        parts.append(f"stride on the {spec.bottleneck_stride} conv")
    return f"{kind}-{spec.depth} ({', '.join(parts)})"


def is_keras_resnet_file(weights):
    """True for a `.weights.h5` saved from a keras_resnet model (Keras loads it as it is)."""
    if not isinstance(weights, (str, os.PathLike)):
        return False
    path = os.fspath(weights)
    if not path.endswith(".weights.h5") or not os.path.isfile(path):
        return False
    return _keras_h5_layout(path)["kind"] == "keras_resnet"


def read(weights, spec, include_top=True, classes=None):
    """Reads pretrained weights for a network of `spec` and checks that they fit it.

    Args:
        weights: `"imagenet"`, `"cifar10"`, a path (see the module docstring),
            or a `Pretrained` that `prepare` read already.
        spec: the requested network's `keras_resnet.specs.Spec`.
        include_top: whether the model has the classifier: chooses the
            keras.applications file with or without it for `"imagenet"`.
        classes: the classes the caller asks for, if any: checked against
            named weights' before anything is fetched.

    Returns:
        A `Pretrained`.

    Raises:
        ValueError: for weights that do not exist, cannot be read, or hold
            another architecture than `spec` (the message names both).
        ImportError: for a PyTorch file when torch (or safetensors) is missing.
    """
    named_classes = NAMED_WEIGHTS.get(weights) if isinstance(weights, str) else None
    if include_top and None not in (classes, named_classes) and classes != named_classes:
        raise ValueError(_classes_message(weights, named_classes, classes))
    if isinstance(weights, Pretrained):
        pretrained = weights
    elif weights == "imagenet":
        pretrained = _read_imagenet(spec, include_top)
    elif weights == "cifar10":
        pretrained = _read_cifar10(spec)
    else:
        pretrained = read_file(weights)
    check_fits(pretrained.spec, spec, weights)
    return pretrained


def check_fits(theirs, spec, weights):
    """Raises a `ValueError` naming both when weights of spec `theirs` do not fit `spec`."""
    if theirs == spec:
        return
    hint = ""
    if dataclasses.replace(theirs, bottleneck_stride=spec.bottleneck_stride) == spec:
        hint = f" Pass bottleneck_stride={theirs.bottleneck_stride!r}."
    raise ValueError(
        f"weights={_label(weights)} hold a {describe(theirs)}; the requested model is a "
        f"{describe(spec)}.{hint}"
    )


def read_file(path):
    """Reads a weights file of any supported format into a `Pretrained` (no fit check)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"weights must be None, {' or '.join(map(repr, NAMED_WEIGHTS))}, or a path; "
            f"received {path!r}."
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"weights file {path!r} does not exist (named weights: "
            f"{', '.join(map(repr, NAMED_WEIGHTS))})."
        )
    if path.endswith(TORCH_SUFFIXES):
        return from_torch_state(read_torch_state(path), path)
    if path.endswith(".npz"):
        return read_npz(path)
    if path.endswith(".h5"):
        return _read_keras_applications(path)
    raise ValueError(
        f"weights file {path!r} has an unknown format. Allowed: .h5 or .weights.h5 "
        f"(keras.applications or keras_resnet), {', '.join(TORCH_SUFFIXES)} (PyTorch), .npz."
    )


def check_head(pretrained, include_top, classes, weights):
    """The classifier a model may have with `pretrained`: as keras.applications allows.

    Returns:
        The number of classes to build: `classes`, or the weights' own when
        `classes` is None.
    """
    if not include_top:
        return classes
    if pretrained.classes is None:
        raise ValueError(
            f"weights={_label(weights)} have no classifier: build the model with "
            "include_top=False (and any pooling), or train a new head."
        )
    if classes is not None and classes != pretrained.classes:
        raise ValueError(_classes_message(weights, pretrained.classes, classes))
    return pretrained.classes


def _classes_message(weights, theirs, classes):
    return (
        f"weights={_label(weights)} have a {theirs}-class classifier, but classes={classes} "
        f"with include_top=True. Use classes={theirs}, or include_top=False to load everything "
        "but the classifier."
    )


def prepare(weights):
    """`weights` ready to pass on: a file read into a `Pretrained`, once.

    Names (`"imagenet"`, `"cifar10"`, which need the network to choose a
    file), None, a `Pretrained` and a keras_resnet `.weights.h5` (which Keras
    loads itself) come back as they are. The commands read `--weights` once
    with this, then take the architecture from it (`implied_architecture`)
    and build the model from it (`ResNet(weights=...)`, `read`).
    """
    if weights is None or isinstance(weights, Pretrained) or weights in ("imagenet", "cifar10"):
        return weights
    if is_keras_resnet_file(weights):
        return weights
    return read_file(weights)


def implied_architecture(weights):
    """The `ResNet` arguments that weights fix: all of them for a file, the stem for a name.

    The training and evaluation commands fill the architecture flags a user
    left out from these, so that `--weights resnet50.pth` needs no `--depth`.
    `weights` is a name, a path or a `Pretrained` (see `prepare`).
    """
    if weights == "imagenet":
        return {"stem": "imagenet"}
    if weights == "cifar10":
        return {"stem": "cifar"}
    spec = (weights if isinstance(weights, Pretrained) else read_file(weights)).spec
    return {flag: getattr(spec, flag) for flag in ARCHITECTURE_FLAGS}


def assign(model, pretrained, new_classifier=False):
    """Sets every weight of `model` from `pretrained`, checking names and shapes.

    A model without `predictions` (include_top=False) takes everything else;
    a model with it needs the weights' classifier unless `new_classifier`,
    which keeps the model's freshly initialised one (fine-tuning on other
    classes). The input normalization is the weights' own.
    """
    assigned = set()
    for layer in model.layers:
        if not layer.weights or (new_classifier and layer.name == "predictions"):
            continue
        if layer.name == "input_normalization":
            arrays = [pretrained.input_mean, pretrained.input_std]
        elif layer.name in pretrained.layers:
            arrays = list(pretrained.layers[layer.name])
            assigned.add(layer.name)
        else:
            raise ValueError(
                f"weights from {pretrained.source} have nothing for layer {layer.name!r} of "
                f"{model.name}."
            )
        if isinstance(layer, keras.layers.BatchNormalization):
            # The same normalization with this layer's epsilon: var + eps is what counts.
            arrays[3] = np.maximum(arrays[3] + pretrained.bn_epsilon - layer.epsilon, 0)
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(a.shape) for a in arrays]
        if expected != received:
            raise ValueError(
                f"weights from {pretrained.source} for layer {layer.name!r} have shapes "
                f"{received}; the layer has {expected}."
            )
        layer.set_weights(arrays)
    unused = sorted(set(pretrained.layers) - assigned - {"predictions"})
    if unused:
        raise ValueError(
            f"{model.name} has no layers {unused[:5]} that weights from {pretrained.source} have."
        )


def save_npz(pretrained, path):
    """Writes `pretrained` as one `.npz` file that `read_file` reads back exactly."""
    from keras_resnet import rundir

    meta = {
        "source": pretrained.source,
        "spec": dataclasses.asdict(pretrained.spec),
        "classes": pretrained.classes,
        "bn_epsilon": pretrained.bn_epsilon,
    }
    arrays = {
        f"{name}/{i}": array
        for name, layer_arrays in pretrained.layers.items()
        for i, array in enumerate(layer_arrays)
    }
    arrays["input_mean"] = pretrained.input_mean
    arrays["input_std"] = pretrained.input_std
    with rundir.atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **arrays)


def read_npz(path):
    """Reads a `.npz` file that `save_npz` wrote."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
        meta = json.loads(str(arrays.pop("__meta__")))
        spec_fields = meta["spec"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path!r} is not a weights .npz of keras_resnet ({error}).") from None
    spec = specs.Spec(**{**spec_fields, "stage_blocks": tuple(spec_fields["stage_blocks"])})
    layers = {}
    for key in sorted(k for k in arrays if "/" in k):
        name, index = key.rsplit("/", 1)
        layers.setdefault(name, {})[int(index)] = arrays[key]
    return Pretrained(
        meta["source"],
        spec,
        meta["classes"],
        arrays["input_mean"],
        arrays["input_std"],
        meta["bn_epsilon"],
        {name: [by_index[i] for i in sorted(by_index)] for name, by_index in layers.items()},
    )


def _label(weights):
    if isinstance(weights, Pretrained):
        return repr(weights.source)
    return repr(os.fspath(weights)) if isinstance(weights, os.PathLike) else repr(weights)


# --- keras.applications ---------------------------------------------------------------


def keras_applications_file_name(depth, include_top):
    """keras.applications' file name for ResNet-`depth` weights."""
    suffix = "" if include_top else "_notop"
    return f"resnet{depth}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"


def _read_imagenet(spec, include_top):
    if spec.stem != "imagenet" or spec.depth not in KERAS_APPLICATIONS_HASHES:
        raise ValueError(
            f"weights='imagenet' exist for ResNet-50, 101 and 152 (the paper's MSRA models, "
            f"as keras.applications publishes them); the requested model is a "
            f"{describe(spec)}. For ResNet-18/34, pass a torchvision checkpoint as "
            "weights='resnet18.pth' (PyTorch layout; needs bottleneck_stride only for "
            "bottleneck nets)."
        )
    check_fits(specs.make_spec(spec.depth, "imagenet"), spec, "imagenet")  # before fetching

    file_name = keras_applications_file_name(spec.depth, include_top)
    url = KERAS_APPLICATIONS_URL + file_name
    try:
        path = keras.utils.get_file(
            file_name,
            url,
            cache_subdir="models",
            file_hash=KERAS_APPLICATIONS_HASHES[spec.depth][0 if include_top else 1],
        )
    except Exception as error:  # get_file raises plain Exceptions for network failures
        raise ValueError(
            f"Could not fetch {file_name} from {url}: {error}. Without a network, copy the file "
            "into the Keras cache (~/.keras/models, or $KERAS_HOME/models) or pass its path "
            "as weights=."
        ) from None
    return _read_keras_applications(path)


def _keras_h5_layout(path):
    """What a Keras `.h5` weights file holds: its kind, conv count and classes."""

    def text(value):
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as f:
            if "layers" in f:  # Keras 3 .weights.h5: layers/<class name>/vars/<index>
                groups = [f["layers"][name] for name in f["layers"]]
                shapes = [
                    [g["vars"][k].shape for k in sorted(g["vars"], key=int)]
                    for g in groups
                    if "vars" in g and len(g["vars"])
                ]
            else:  # legacy .h5 of Keras 2 (what keras.applications downloads)
                root = f["model_weights"] if "model_weights" in f else f
                shapes = []
                for name in map(text, root.attrs["layer_names"]):
                    weight_names = [text(w) for w in root[name].attrs["weight_names"]]
                    if weight_names:
                        shapes.append([root[name][w].shape for w in weight_names])
    except (OSError, KeyError) as error:
        raise ValueError(f"{path!r} is not a Keras weights file ({error}).") from None
    convs = [s for s in shapes if len(s[0]) == 4]
    dense = [s for s in shapes if len(s[0]) == 2]
    kind = "keras_applications" if convs and all(len(s) == 2 for s in convs) else "keras_resnet"
    return {
        "kind": kind,
        "convs": len(convs),
        "classes": dense[-1][0][1] if dense else None,
    }


def _read_keras_applications(path):
    layout = _keras_h5_layout(path)
    # ResNet-d has d - 1 convs in its stages and stem, plus 4 projections.
    depth = layout["convs"] - 3
    if layout["kind"] != "keras_applications" or depth not in KERAS_APPLICATIONS_HASHES:
        raise ValueError(
            f"{path!r} is not a keras.applications ResNet50/101/152 weights file (it has "
            f"{layout['convs']} conv layers"
            + (", none with a bias)" if layout["kind"] != "keras_applications" else ")")
            + ". A .weights.h5 saved from a keras_resnet model loads only into the same "
            "architecture."
        )
    include_top = layout["classes"] is not None
    source_model = getattr(keras.applications, f"ResNet{depth}")(
        weights=None,
        include_top=include_top,
        classes=layout["classes"] or 1000,
        input_shape=(224, 224, 3) if include_top else (None, None, 3),
    )
    try:
        source_model.load_weights(path)
    except Exception as error:  # Keras raises several types for a mismatched file
        raise ValueError(
            f"{path!r} does not load into keras.applications.ResNet{depth}: {error}"
        ) from None
    layers = {}
    for layer in source_model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            if layer.name == "conv1_conv":
                kernel = kernel[:, :, ::-1, :]  # BGR -> RGB input channels
            bn_name = layer.name[: -len("conv")] + "bn"
            gamma, beta, mean, variance = source_model.get_layer(bn_name).get_weights()
            layers[layer.name] = [kernel]
            layers[bn_name] = [gamma, beta, mean - bias, variance]
        elif isinstance(layer, keras.layers.Dense):
            layers["predictions"] = layer.get_weights()
    return Pretrained(
        f"keras.applications ResNet{depth} weights {os.path.basename(path)}",
        specs.make_spec(depth, "imagenet"),
        layout["classes"],
        np.array(CAFFE_MEAN_RGB, np.float32),
        np.ones(3, np.float32),
        KERAS_APPLICATIONS_BN_EPSILON,
        layers,
    )


# --- PyTorch --------------------------------------------------------------------------


def read_torch_state(path):
    """A PyTorch checkpoint's state dict as numpy arrays, `module.` prefixes removed."""
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError(
                f"Reading {path!r} needs the safetensors package: {INSTALL_PYTORCH}."
            ) from None
        try:
            state = load_file(path)
        except Exception as error:  # safetensors raises its own error type
            raise ValueError(f"{path!r} is not a readable .safetensors file ({error}).") from None
    else:
        try:
            import torch
        except ImportError:
            raise ImportError(f"Reading {path!r} needs PyTorch: {INSTALL_PYTORCH}.") from None
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle and torch raise many types
            raise ValueError(
                f"{path!r} is not a PyTorch checkpoint that loads with weights_only=True ({error})."
            ) from None
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
            checkpoint = checkpoint["state_dict"]
        if not isinstance(checkpoint, dict):
            raise ValueError(f"{path!r} holds a {type(checkpoint).__name__}, not a state dict.")
        state = {
            key: value.detach().cpu().numpy()
            for key, value in checkpoint.items()
            if isinstance(value, torch.Tensor)
        }
    return {key.removeprefix("module."): np.asarray(value) for key, value in state.items()}


def torch_architecture(state, source="the checkpoint"):
    """The `Spec` of a torchvision-layout or akamaster-layout state dict."""
    if "conv1.weight" not in state or not ("fc.weight" in state or "linear.weight" in state):
        raise ValueError(
            f"{source} is not a ResNet state dict in the torchvision layout (conv1, bn1, "
            "layer1..4, fc) or akamaster's CIFAR layout (conv1, bn1, layer1..3, linear)."
        )
    stage_blocks = []
    while f"layer{len(stage_blocks) + 1}.0.conv1.weight" in state:
        stage = len(stage_blocks) + 1
        blocks = 0
        while f"layer{stage}.{blocks}.conv1.weight" in state:
            blocks += 1
        stage_blocks.append(blocks)
    block = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    stem = "imagenet" if state["conv1.weight"].shape[-1] == 7 else "cifar"
    projections = [
        key for key in state if key.endswith(("downsample.0.weight", "shortcut.0.weight"))
    ]
    if not projections:
        shortcut = "A"
    elif len(projections) == sum(stage_blocks):
        shortcut = "C"
    else:
        shortcut = "B"
    if stem == "imagenet":
        layout = (block, tuple(stage_blocks))
        depths = [d for d, table in specs.IMAGENET_DEPTHS.items() if table == layout]
        depth = depths[0] if depths else None
    else:
        n = stage_blocks[0] if stage_blocks and len(set(stage_blocks)) == 1 else None
        depth = n and 3 * specs.LAYERS_PER_BLOCK[block] * n + 2
    if depth is None or len(stage_blocks) != (4 if stem == "imagenet" else 3):
        raise ValueError(
            f"{source} has blocks {stage_blocks} per stage with a {stem} stem: not a network "
            "of the paper."
        )
    return specs.make_spec(
        depth,
        stem,
        block,
        base_width=int(state["conv1.weight"].shape[0]),
        shortcut=shortcut,
        bottleneck_stride="3x3" if block == "bottleneck" else None,
    )


def from_torch_state(state, source="a PyTorch state dict"):
    """Converts a torchvision- or akamaster-layout state dict into a `Pretrained`."""
    spec = torch_architecture(state, source)
    layers, used = {}, set()

    def take(key):
        if key not in state:
            raise ValueError(f"{source} has no {key!r}, which a {describe(spec)} needs.")
        used.add(key)
        return state[key]

    def conv(ours, theirs, in_perm=None, out_perm=None):
        kernel = take(f"{theirs}.weight").transpose(2, 3, 1, 0)  # (h, w, in, out)
        if in_perm is not None:
            kernel = kernel[:, :, in_perm, :]
        if out_perm is not None:
            kernel = kernel[..., out_perm]
        layers[f"{ours}_conv"] = [kernel]

    def batch_norm(ours, theirs, perm=None):
        used.add(f"{theirs}.num_batches_tracked")
        arrays = [take(f"{theirs}.{n}") for n in ("weight", "bias", "running_mean", "running_var")]
        layers[f"{ours}_bn"] = [a if perm is None else a[perm] for a in arrays]

    conv("conv1", "conv1")
    batch_norm("conv1", "bn1")
    # perm[k]: the checkpoint's channel that our channel k of the current features holds.
    perm = np.arange(spec.base_width)
    projection = "downsample" if spec.stem == "imagenet" else "shortcut"
    convs = 3 if spec.block == "bottleneck" else 2
    expansion = 4 if spec.block == "bottleneck" else 1
    for stage, (blocks, width) in enumerate(zip(spec.stage_blocks, spec.stage_widths)):
        for index in range(blocks):
            ours, theirs = f"conv{stage + 2}_block{index + 1}", f"layer{stage + 1}.{index}"
            outputs = width * expansion
            if f"{theirs}.{projection}.0.weight" in state:
                new_perm = np.arange(outputs)
                conv(f"{ours}_0", f"{theirs}.{projection}.0", in_perm=perm)
                batch_norm(f"{ours}_0", f"{theirs}.{projection}.1")
            elif outputs != len(perm):
                new_perm = _option_a_permutation(perm, outputs)
            else:
                new_perm = perm
            for k in range(1, convs + 1):
                last = k == convs
                conv(
                    f"{ours}_{k}",
                    f"{theirs}.conv{k}",
                    in_perm=perm if k == 1 else None,
                    out_perm=new_perm if last else None,
                )
                batch_norm(f"{ours}_{k}", f"{theirs}.bn{k}", new_perm if last else None)
            perm = new_perm
    head = "fc" if "fc.weight" in state else "linear"
    layers["predictions"] = [take(f"{head}.weight").T[perm], take(f"{head}.bias")]
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"{source} has keys {unused[:5]} that a {describe(spec)} does not.")
    return Pretrained(
        source,
        spec,
        int(layers["predictions"][1].shape[0]),
        (255 * np.array(TORCH_MEAN_RGB)).astype(np.float32),
        (255 * np.array(TORCH_STD_RGB)).astype(np.float32),
        TORCH_BN_EPSILON,
        layers,
    )


def _option_a_permutation(perm, outputs):
    """Our channels after an option-A shortcut, in the checkpoint's numbering.

    The checkpoint pads `(outputs - inputs) // 2` zero channels before the
    identity and as many after it; ours appends them all after it. Our
    channel k < inputs carries our old channel k, their channel pad + perm[k];
    our appended channels take the checkpoint's remaining ones in order.
    """
    pad = (outputs - len(perm)) // 2
    identity = pad + perm
    rest = np.setdiff1d(np.arange(outputs), identity)
    return np.concatenate([identity, rest])


# --- the package's own ----------------------------------------------------------------


def cifar10_file(depth):
    """The path of the packaged CIFAR-10 weights of ResNet-`depth`."""
    return os.path.join(PACKAGE_DIR, f"resnet{depth}_cifar10.npz")


def _read_cifar10(spec):
    if spec.stem != "cifar" or spec.depth not in CIFAR10_DEPTHS:
        raise ValueError(
            f"weights='cifar10' exist for the paper's CIFAR ResNet-"
            f"{'/'.join(map(str, CIFAR10_DEPTHS))} (option A); the requested model is a "
            f"{describe(spec)}."
        )
    check_fits(specs.make_spec(spec.depth, "cifar"), spec, "cifar10")
    path = cifar10_file(spec.depth)
    if not os.path.isfile(path):
        raise ValueError(f"The packaged weights {path!r} are missing: reinstall keras_resnet.")
    return read_npz(path)
