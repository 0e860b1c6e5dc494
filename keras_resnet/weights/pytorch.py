"""PyTorch checkpoints: the torchvision/timm layout and akamaster's CIFAR layout.

Reads `.pth`, `.th` and `.pt` files with `torch.load(..., weights_only=True)`
(a `{"state_dict": ...}` wrapper and DataParallel's `module.` prefixes are
taken off) and `.safetensors` with the safetensors package, both from the
`[pytorch]` extra. Two layouts:

- torchvision/timm (`conv1`, `bn1`, `layer1..4`, `fc`): ResNet-18 to 152 with
  the ImageNet stem. torchvision's bottleneck blocks stride their 3x3 conv:
  such checkpoints fit `bottleneck_stride="3x3"` only.
- akamaster/pytorch_resnet_cifar10 (`conv1`, `bn1`, `layer1..3`, `linear`):
  the paper's CIFAR nets with option A shortcuts.

The conversion is exact: kernels are transposed from (out, in, h, w) to
(h, w, in, out); batch norms keep their statistics and PyTorch's epsilon
(1e-5); the input normalization is torchvision's (the same as akamaster's),
scaled to pixels 0-255. akamaster's option A pads the identity with zero
channels on both sides, ours after it: every stage's channels are permuted
so that each of ours is one of theirs (`_option_a_permutation`).
"""

import numpy as np

from keras_resnet import specs
from keras_resnet.weights.core import Pretrained

SUFFIXES = (".pth", ".th", ".pt", ".safetensors")
# torchvision's normalization of RGB pixels in [0, 1]; akamaster's is the same.
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
BN_EPSILON = 1e-5
INSTALL = "pip install 'keras-resnet-paper[pytorch]'"


def read(path, source=None):
    """Reads a PyTorch checkpoint of either layout into a `Pretrained`.

    Args:
        path: a `.pth`, `.th`, `.pt` or `.safetensors` file.
        source: what the `Pretrained` says it comes from. Default: `path`.

    Raises:
        ValueError: for a file that does not load, or holds no ResNet of the paper.
        ImportError: when torch (or safetensors) is missing.
    """
    return convert(read_state(path), source or path)


def read_state(path):
    """A PyTorch checkpoint's state dict as numpy arrays, `module.` prefixes removed."""
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError(
                f"Reading {path!r} needs the safetensors package: {INSTALL}."
            ) from None
        try:
            state = load_file(path)
        except Exception as error:  # safetensors raises its own error type
            raise ValueError(f"{path!r} is not a readable .safetensors file ({error}).") from None
    else:
        try:
            import torch
        except ImportError:
            raise ImportError(f"Reading {path!r} needs PyTorch: {INSTALL}.") from None
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


def architecture(state, source="the checkpoint"):
    """The `keras_resnet.specs.Spec` of a torchvision-layout or akamaster-layout state dict.

    Raises:
        ValueError: for a state dict of neither layout, or not a network of the paper.
    """
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


def convert(state, source="a PyTorch state dict"):
    """Converts a torchvision- or akamaster-layout state dict into a `Pretrained`.

    Args:
        state: the state dict, numpy arrays by key (`read_state`).
        source: where it comes from, for messages and the `Pretrained`.

    Raises:
        ValueError: for a state dict that lacks a key its network needs, or
            has keys it does not.
    """
    spec = architecture(state, source)
    arrays = _Arrays(state, source, spec)
    layers = {"conv1_conv": arrays.conv("conv1"), "conv1_bn": arrays.batch_norm("bn1")}
    # perm[k]: the checkpoint's channel that our channel k of the current features holds.
    perm = np.arange(spec.base_width)
    expansion = 4 if spec.block == "bottleneck" else 1
    for stage, (blocks, width) in enumerate(zip(spec.stage_blocks, spec.stage_widths)):
        for index in range(blocks):
            ours, theirs = f"conv{stage + 2}_block{index + 1}", f"layer{stage + 1}.{index}"
            perm = _convert_block(arrays, layers, ours, theirs, perm, width * expansion)
    head = "fc" if "fc.weight" in state else "linear"
    layers["predictions"] = [arrays.take(f"{head}.weight").T[perm], arrays.take(f"{head}.bias")]
    arrays.check_all_used()
    return Pretrained(
        source,
        spec,
        int(layers["predictions"][1].shape[0]),
        (255 * np.array(MEAN_RGB)).astype(np.float32),
        (255 * np.array(STD_RGB)).astype(np.float32),
        BN_EPSILON,
        layers,
    )


class _Arrays:
    """Takes a state dict's arrays in our layout, remembering which it used."""

    def __init__(self, state, source, spec):
        self.state, self.source, self.spec = state, source, spec
        self.used = set()

    def take(self, key):
        if key not in self.state:
            raise ValueError(
                f"{self.source} has no {key!r}, which a {specs.describe(self.spec)} needs."
            )
        self.used.add(key)
        return self.state[key]

    def conv(self, theirs, in_perm=None, out_perm=None):
        kernel = self.take(f"{theirs}.weight").transpose(2, 3, 1, 0)  # (h, w, in, out)
        if in_perm is not None:
            kernel = kernel[:, :, in_perm, :]
        if out_perm is not None:
            kernel = kernel[..., out_perm]
        return [kernel]

    def batch_norm(self, theirs, perm=None):
        self.used.add(f"{theirs}.num_batches_tracked")
        names = ("weight", "bias", "running_mean", "running_var")
        arrays = [self.take(f"{theirs}.{name}") for name in names]
        return [a if perm is None else a[perm] for a in arrays]

    def check_all_used(self):
        unused = sorted(set(self.state) - self.used)
        if unused:
            raise ValueError(
                f"{self.source} has keys {unused[:5]} that a {specs.describe(self.spec)} does not."
            )


def _convert_block(arrays, layers, ours, theirs, perm, outputs):
    """Converts one residual block into `layers`; returns the permutation of its outputs."""
    projection = "downsample" if arrays.spec.stem == "imagenet" else "shortcut"
    if f"{theirs}.{projection}.0.weight" in arrays.state:
        new_perm = np.arange(outputs)
        layers[f"{ours}_0_conv"] = arrays.conv(f"{theirs}.{projection}.0", in_perm=perm)
        layers[f"{ours}_0_bn"] = arrays.batch_norm(f"{theirs}.{projection}.1")
    elif outputs != len(perm):
        new_perm = _option_a_permutation(perm, outputs)
    else:
        new_perm = perm
    convs = 3 if arrays.spec.block == "bottleneck" else 2
    for k in range(1, convs + 1):
        last = k == convs
        layers[f"{ours}_{k}_conv"] = arrays.conv(
            f"{theirs}.conv{k}",
            in_perm=perm if k == 1 else None,
            out_perm=new_perm if last else None,
        )
        layers[f"{ours}_{k}_bn"] = arrays.batch_norm(f"{theirs}.bn{k}", new_perm if last else None)
    return new_perm


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
