"""Network specifications of He et al. (2015) and every check made on them.

A spec says which block a network uses and how many blocks each stage has.
ImageNet depths come from one table (the paper's Table 1); CIFAR depths follow
the paper's 6n+2 rule (Section 4.2), or 9n+2 for bottleneck blocks (three
layers a block, as in the follow-up paper's ResNet-164). Every validation of a
user's architecture arguments lives here, so that a bad argument fails with a
`ValueError` before any layer is built.
"""

import dataclasses
import math

STEMS = ("cifar", "imagenet")
SHORTCUTS = ("A", "B", "C")
BLOCKS = ("basic", "bottleneck")
BOTTLENECK_STRIDES = ("1x1", "3x3")
POOLINGS = (None, "avg", "max")

# Table 1 of the paper: depth -> (block, blocks in conv2_x .. conv5_x).
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# Per stem: first-stage width, default shortcut option, input shape, classes, and
# the depth a training run picks when none is given.
STEM_DEFAULTS = {
    "cifar": {
        "base_width": 16,
        "shortcut": "A",
        "input_shape": (32, 32, 3),
        "classes": 10,
        "depth": 20,
    },
    "imagenet": {
        "base_width": 64,
        "shortcut": "B",
        "input_shape": (224, 224, 3),
        "classes": 1000,
        "depth": 50,
    },
}
# Total downsampling of each stem's network: the smallest input side it takes.
MIN_INPUT_SIZE = {"cifar": 4, "imagenet": 32}
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A complete, validated network architecture: everything but the head.

    Attributes:
        depth: number of weighted layers (convolutions and the classifier).
        stem: `"cifar"` (3x3 conv, 16 filters) or `"imagenet"` (7x7/2 conv
            and 3x3/2 max pool).
        block: `"basic"` (two 3x3 convs) or `"bottleneck"` (1x1, 3x3, 1x1).
        stage_blocks: number of blocks in each stage.
        base_width: filters of the first stage; each later stage doubles it.
        shortcut: `"A"`, `"B"` or `"C"`; None for a plain network.
        bottleneck_stride: `"1x1"` or `"3x3"` for bottleneck blocks; None for
            basic blocks.
    """

    depth: int
    stem: str
    block: str
    stage_blocks: tuple
    base_width: int
    shortcut: str = None
    bottleneck_stride: str = None

    @property
    def plain(self):
        """True for the paper's plain counterpart: no shortcuts."""
        return self.shortcut is None

    @property
    def stage_widths(self):
        """Filters of each stage's 3x3 convolutions."""
        return tuple(self.base_width * 2**i for i in range(len(self.stage_blocks)))

    @property
    def name(self):
        """The model's default name: `resnet56`, `plain20`."""
        return model_name(self.depth, self.plain)


def model_name(depth, plain):
    """`resnet56` or `plain20`: the name of models, run directories and sweeps."""
    return f"{'plain' if plain else 'resnet'}{depth}"


def describe(spec):
    """A spec in words, for messages.

    Example: `ResNet-50 (ImageNet stem, bottleneck blocks 3x4x6x3, option B,
    base width 64, stride on the 1x1 conv)`.
    """
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


def _choices(values):
    return ", ".join(repr(v) for v in values)


def resolve_stem(depth, stem):
    """Returns the stem for `depth`, inferring it when `stem` is None."""
    if stem is not None:
        if stem not in STEMS:
            raise ValueError(f"Unknown stem {stem!r}. Allowed: {_choices(STEMS)}.")
        return stem
    if isinstance(depth, int) and depth in IMAGENET_DEPTHS:
        return "imagenet"
    if isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0:
        return "cifar"
    raise ValueError(
        f"Cannot infer the stem for depth={depth!r}: it is neither an ImageNet depth "
        f"({_choices(IMAGENET_DEPTHS)}) nor a CIFAR depth 6n+2 (8, 14, 20, ...). "
        "Pass stem='cifar' or stem='imagenet'."
    )


def make_spec(
    depth,
    stem=None,
    block=None,
    base_width=None,
    shortcut=None,
    plain=False,
    bottleneck_stride=None,
):
    """Validates architecture arguments and returns a complete `Spec`.

    Args:
        depth: int, the number of weighted layers. ImageNet stem: one of
            18, 34, 50, 101, 152. CIFAR stem: 6n+2 with basic blocks
            (20, 32, 44, 56, 110, 1202 in the paper), 9n+2 with bottlenecks.
        stem: `"cifar"`, `"imagenet"` or None to infer it from the depth
            (ImageNet depths first).
        block: `"basic"`, `"bottleneck"` or None for the paper's choice. With
            the ImageNet stem the block is fixed by the depth.
        base_width: filters of the first stage, or None for the paper's
            (16 for CIFAR, 64 for ImageNet).
        shortcut: `"A"`, `"B"`, `"C"`, or None for the stem's default (A for
            CIFAR, B for ImageNet). Must be None when `plain`.
        plain: bool, the plain counterpart (no shortcuts).
        bottleneck_stride: `"1x1"`, `"3x3"`, or None (`"1x1"` for bottleneck
            blocks). Must be None for basic blocks.

    Returns:
        A `Spec`.

    Raises:
        ValueError: for any argument outside what is allowed.
    """
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise ValueError(f"depth must be an int, received {depth!r}.")
    stem = resolve_stem(depth, stem)
    if block is not None and block not in BLOCKS:
        raise ValueError(f"Unknown block {block!r}. Allowed: {_choices(BLOCKS)} or None.")
    if base_width is None:
        base_width = STEM_DEFAULTS[stem]["base_width"]
    elif isinstance(base_width, bool) or not isinstance(base_width, int) or base_width < 1:
        raise ValueError(f"base_width must be a positive int, received {base_width!r}.")
    if not isinstance(plain, bool):
        raise ValueError(f"plain must be True or False, received {plain!r}.")
    if not plain and shortcut is None:
        shortcut = STEM_DEFAULTS[stem]["shortcut"]
    block, stage_blocks = _blocks(depth, stem, block)
    return Spec(
        depth,
        stem,
        block,
        stage_blocks,
        base_width,
        check_shortcut(shortcut, plain),
        check_bottleneck_stride(bottleneck_stride, block),
    )


def _blocks(depth, stem, block):
    """(block, blocks per stage) of a depth: Table 1 for ImageNet, 6n+2 or 9n+2 for CIFAR."""
    if stem == "imagenet":
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(
                f"Invalid depth {depth} for the ImageNet stem. Allowed: "
                f"{_choices(IMAGENET_DEPTHS)}."
            )
        table_block, stage_blocks = IMAGENET_DEPTHS[depth]
        if block is not None and block != table_block:
            raise ValueError(
                f"ImageNet depth {depth} uses {table_block!r} blocks; received block={block!r}."
            )
        return table_block, stage_blocks

    block = block or "basic"
    per_stage = 3 * LAYERS_PER_BLOCK[block]  # three stages; +2 for the stem and classifier
    if depth < per_stage + 2 or (depth - 2) % per_stage:
        raise ValueError(
            f"Invalid depth {depth} for the CIFAR stem with {block} blocks: depth must be "
            f"{per_stage}n+2 with n >= 1 "
            f"(e.g. {', '.join(str(per_stage * n + 2) for n in (1, 3, 9))})."
        )
    n = (depth - 2) // per_stage
    return block, (n, n, n)


def check_shortcut(shortcut, plain):
    """Validates the shortcut option; a plain network takes none."""
    if plain:
        if shortcut is not None:
            raise ValueError(
                f"A plain network has no shortcuts; received shortcut={shortcut!r} with plain=True."
            )
        return None
    if shortcut not in SHORTCUTS:
        raise ValueError(f"Unknown shortcut {shortcut!r}. Allowed: {_choices(SHORTCUTS)}.")
    return shortcut


def check_bottleneck_stride(bottleneck_stride, block):
    """Validates where a bottleneck block strides; None means the paper's 1x1."""
    if block != "bottleneck":
        if bottleneck_stride is not None:
            raise ValueError(
                f"bottleneck_stride applies to bottleneck blocks only; this network uses "
                f"{block!r} blocks (received bottleneck_stride={bottleneck_stride!r})."
            )
        return None
    if bottleneck_stride is None:
        return "1x1"
    if bottleneck_stride not in BOTTLENECK_STRIDES:
        raise ValueError(
            f"Unknown bottleneck_stride {bottleneck_stride!r}. Allowed: "
            f"{_choices(BOTTLENECK_STRIDES)} (the paper's v1, and torchvision's v1.5)."
        )
    return bottleneck_stride


def check_input_shape(input_shape, stem):
    """Validates an (height, width, channels) input shape for `stem`."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels), received {input_shape!r}."
        )
    *spatial, channels = input_shape
    if channels is None or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"input_shape needs a positive channel count, received {input_shape!r}.")
    smallest = MIN_INPUT_SIZE[stem]
    for side in spatial:
        if side is not None and (not isinstance(side, int) or side < smallest):
            raise ValueError(
                f"input_shape {tuple(input_shape)} is too small for the {stem} stem: height and "
                f"width must be at least {smallest} (or None)."
            )
    return tuple(input_shape)


def check_head(include_top, pooling, classes):
    """Validates the classifier and pooling arguments."""
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}. Allowed: {_choices(POOLINGS)}.")
    if include_top:
        if pooling == "max":
            raise ValueError(
                "include_top=True uses the paper's global average pooling; pooling='max' "
                "needs include_top=False."
            )
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classes must be a positive int, received {classes!r}.")


def check_non_negative(name, value):
    """Validates a float argument that must be finite and >= 0."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (numeric and 0 <= value < math.inf):  # NaN fails too
        raise ValueError(f"{name} must be a finite number >= 0, received {value!r}.")
    return float(value)
