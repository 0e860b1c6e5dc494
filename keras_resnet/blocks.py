"""Building blocks of the paper's networks: conv-BN(-ReLU) units, shortcuts, blocks.

All blocks are the original (v1, post-activation) design of He et al. 2015:
conv -> BN -> ReLU, with the addition before the block's last ReLU. Layer
names follow `keras.applications` (`conv2_block1_1_conv`, `conv2_block1_0_conv`
for a projection, `conv2_block1_add`, `conv2_block1_out`).
"""

import dataclasses

import keras

from keras_resnet.layers import FusedBatchNormalization, WeightDecay, ZeroPadShortcut

# Bottleneck blocks widen their output by this factor (paper, Fig. 5).
BOTTLENECK_EXPANSION = 4
# Every layer is built channels-last, whatever keras.config.image_data_format()
# says: TensorFlow's CPU convolutions and fused batch norm, the data pipelines,
# the SavedModel signatures and every weight layout this package reads are NHWC.
DATA_FORMAT = "channels_last"


@dataclasses.dataclass(frozen=True)
class LayerDefaults:
    """Initializer, regularizer and batch-norm settings, set once per model.

    Args:
        weight_decay: float, the paper's decay (gradient `rate * w`) on every
            weight: conv kernels, BN scales and offsets, the classifier. 0 adds none.
        bn_momentum: float, moving-average momentum of batch norm (Keras
            convention: 0.9 keeps 90% of the old statistic, PyTorch's 0.1).
        bn_epsilon: float, batch norm's variance epsilon.
    """

    weight_decay: float = 1e-4
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5

    @property
    def regularizer(self):
        return WeightDecay(self.weight_decay) if self.weight_decay else None

    def conv(self, filters, kernel_size, strides, name):
        """A bias-free conv with He (fan-out) initialisation, as in the paper's [13]."""
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same" if strides == 1 else "valid",
            use_bias=False,
            data_format=DATA_FORMAT,
            kernel_initializer=keras.initializers.VarianceScaling(
                2.0, mode="fan_out", distribution="untruncated_normal"
            ),
            kernel_regularizer=self.regularizer,
            name=name,
        )

    def batch_norm(self, name):
        """Batch norm in one fused kernel on TensorFlow (`FusedBatchNormalization`)."""
        return FusedBatchNormalization(
            axis=-1,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            gamma_regularizer=self.regularizer,
            beta_regularizer=self.regularizer,
            name=name,
        )


def conv_bn(x, filters, kernel_size, strides, name, defaults, relu=True):
    """Conv -> BN (-> ReLU), the unit every layer of the paper is made of.

    A strided conv pads symmetrically (`kernel_size // 2` on each side), as
    Caffe and PyTorch do, instead of TensorFlow's "same" which pads only the
    bottom and right: outputs then sit on input positions 0, s, 2s, ..., the
    same ones the option-A shortcut keeps.
    """
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(
            kernel_size // 2, data_format=DATA_FORMAT, name=f"{name}_pad"
        )(x)
    x = defaults.conv(filters, kernel_size, strides, name=f"{name}_conv")(x)
    x = defaults.batch_norm(name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def shortcut(x, filters, strides, option, name, defaults):
    """The block's shortcut; the one place where the paper's options are decided.

    Args:
        x: the block's input.
        filters: channels of the block's output.
        strides: the block's spatial stride.
        option: `"A"` zero-pads (identity where shapes match), `"B"` projects
            only where the shape changes, `"C"` always projects; None for a
            plain network (no shortcut).
        name: the block's name prefix.
        defaults: `LayerDefaults`.

    Returns:
        The shortcut tensor, or None for a plain network.
    """
    if option is None:
        return None
    shape_changes = strides != 1 or x.shape[-1] != filters
    if option == "C" or (option == "B" and shape_changes):
        return conv_bn(x, filters, 1, strides, f"{name}_0", defaults, relu=False)
    if option == "A" and shape_changes:
        return ZeroPadShortcut(filters, strides, name=f"{name}_0_zeropad")(x)
    return x


def _merge(residual, identity, name):
    """Adds the shortcut (if any) and applies the block's last ReLU."""
    if identity is not None:
        residual = keras.layers.Add(name=f"{name}_add")([identity, residual])
    return keras.layers.ReLU(name=f"{name}_out")(residual)


def basic_block(x, filters, strides, option, name, defaults):
    """Two 3x3 convs (paper, Fig. 5 left); the first carries the stride."""
    identity = shortcut(x, filters, strides, option, name, defaults)
    y = conv_bn(x, filters, 3, strides, f"{name}_1", defaults)
    y = conv_bn(y, filters, 3, 1, f"{name}_2", defaults, relu=False)
    return _merge(y, identity, name)


def bottleneck_block(x, filters, strides, option, name, defaults, bottleneck_stride):
    """1x1 reduce, 3x3, 1x1 expand to `4 * filters` (paper, Fig. 5 right).

    `bottleneck_stride="1x1"` strides the first 1x1 conv, as the paper's
    released models do ("v1"; Table 1's FLOPs); `"3x3"` strides the 3x3 conv,
    as torchvision and NVIDIA's "v1.5" do (more FLOPs, slightly more accurate).
    """
    outputs = filters * BOTTLENECK_EXPANSION
    identity = shortcut(x, outputs, strides, option, name, defaults)
    stride_1x1, stride_3x3 = (strides, 1) if bottleneck_stride == "1x1" else (1, strides)
    y = conv_bn(x, filters, 1, stride_1x1, f"{name}_1", defaults)
    y = conv_bn(y, filters, 3, stride_3x3, f"{name}_2", defaults)
    y = conv_bn(y, outputs, 1, 1, f"{name}_3", defaults, relu=False)
    return _merge(y, identity, name)


def residual_stages(x, spec, defaults):
    """The stages of blocks `spec` describes, named `conv2_block1` onwards."""
    for stage, (blocks, filters) in enumerate(zip(spec.stage_blocks, spec.stage_widths)):
        for index in range(blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            name = f"conv{stage + 2}_block{index + 1}"
            if spec.block == "bottleneck":
                x = bottleneck_block(
                    x, filters, strides, spec.shortcut, name, defaults, spec.bottleneck_stride
                )
            else:
                x = basic_block(x, filters, strides, spec.shortcut, name, defaults)
    return x
