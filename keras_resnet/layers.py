"""Serializable custom objects of keras_resnet: three layers and a regularizer.

Everything a saved model needs to deserialize lives here; only what Keras
lacks, each written with `keras.ops` so that it runs on
every Keras backend and saves to `.keras` without `Lambda` layers (which need
`safe_mode=False` to load).
"""

import keras
from keras import ops

try:  # The fused kernel is TensorFlow's; other backends use Keras's own.
    import tensorflow as tf
except ImportError:
    tf = None


@keras.saving.register_keras_serializable(package="keras_resnet")
class ZeroPadShortcut(keras.layers.Layer):
    """The paper's option-A shortcut: identity with subsampling and zero channels.

    "The shortcut still performs identity mapping, with extra zero entries
    padded for increasing dimensions ... when the shortcuts go across feature
    maps of two sizes, they are performed with a stride of 2" (He et al. 2015,
    Section 3.3). It has no parameters. Inputs are channels-last; the new
    channels are appended after the existing ones.

    Args:
        filters: int, channels of the output; at least the input's.
        strides: int, spatial subsampling: keeps rows and columns 0, s, 2s, ...,
            the positions a symmetrically padded stride-s convolution centres on.

    Example:

    >>> x = keras.ops.ones((1, 32, 32, 16))
    >>> ZeroPadShortcut(filters=32, strides=2)(x).shape
    (1, 16, 16, 32)
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive int, received {filters!r}.")
        if isinstance(strides, bool) or not isinstance(strides, int) or strides < 1:
            raise ValueError(f"strides must be a positive int, received {strides!r}.")
        self.filters = filters
        self.strides = strides

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] > self.filters:
            raise ValueError(
                f"ZeroPadShortcut cannot reduce channels: input has {input_shape[-1]}, "
                f"filters={self.filters}."
            )

    def call(self, inputs):
        s = self.strides
        # A 1x1 average pool with stride s is exactly the slice [:, ::s, ::s, :], and
        # on TensorFlow's CPU kernels it and its gradient run several times faster than
        # the slice (benchmarks/results.md has the numbers).
        x = inputs
        if s > 1:
            x = ops.average_pool(
                x, pool_size=1, strides=s, padding="valid", data_format="channels_last"
            )
        extra = self.filters - ops.shape(x)[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape

        def subsample(side):
            return None if side is None else -(-side // self.strides)

        return (batch, subsample(height), subsample(width), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


@keras.saving.register_keras_serializable(package="keras_resnet")
class InputNormalization(keras.layers.Layer):
    """Computes `(inputs - mean) / std` with constants stored as weights.

    Carries the paper's mean subtraction inside the model, so that a saved
    model takes raw pixels. `mean` and `std` are non-trainable weights of any
    shape that broadcasts against one example: `(height, width, channels)` for
    the paper's per-pixel mean, `(channels,)` per channel, `()` for a scalar.
    They are saved with the other weights, so the layer's config stays small.

    Args:
        mean_shape: tuple, shape of the mean.
        std_shape: tuple, shape of the standard deviation (divisor).
        mean: optional array to initialise the mean with (default zeros).
        std: optional array to initialise the divisor with (default ones).

    Example:

    >>> layer = InputNormalization((), (), mean=127.5, std=255.0)
    >>> float(layer(keras.ops.full((1, 2, 2, 3), 255.0))[0, 0, 0, 0])
    0.5
    """

    def __init__(self, mean_shape, std_shape, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self.mean_shape = tuple(mean_shape)
        self.std_shape = tuple(std_shape)
        self._initial_mean = mean
        self._initial_std = std

    def build(self, input_shape):
        def constant(value, default):
            if value is None:
                return default
            return keras.initializers.Constant(ops.convert_to_numpy(value))

        self.mean = self.add_weight(
            name="mean",
            shape=self.mean_shape,
            trainable=False,
            initializer=constant(self._initial_mean, "zeros"),
        )
        self.std = self.add_weight(
            name="std",
            shape=self.std_shape,
            trainable=False,
            initializer=constant(self._initial_std, "ones"),
        )

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        mean = ops.cast(self.mean, self.compute_dtype)
        std = ops.cast(self.std, self.compute_dtype)
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean_shape": self.mean_shape, "std_shape": self.std_shape}


@keras.saving.register_keras_serializable(package="keras_resnet")
class WeightDecay(keras.regularizers.Regularizer):
    """The paper's weight decay as a regularizer: adds `0.5 * rate * sum(w**2)`.

    Its gradient is `rate * w`, which is exactly the paper's "weight decay of
    0.0001" (the Caffe/Torch convention, g += 1e-4 * w). Keras's
    `regularizers.L2(l)` has gradient `2 * l * w` (so `L2(5e-5)` would match),
    and `SGD(weight_decay=...)` is decoupled: it shrinks weights by
    `lr * rate * w` outside the gradient, which differs once momentum is used.

    Args:
        rate: float, the decay coefficient (1e-4 in the paper).
    """

    def __init__(self, rate):
        self.rate = float(rate)

    def __call__(self, x):
        return 0.5 * self.rate * ops.sum(ops.square(x))

    def get_config(self):
        return {"rate": self.rate}


@keras.saving.register_keras_serializable(package="keras_resnet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` trained with one fused kernel on TensorFlow.

    Keras 3 normalizes with separate moment, subtract, multiply and add ops;
    TensorFlow's `FusedBatchNormV3` (oneDNN's on CPUs, cuDNN's on GPUs) does
    it, and its gradient, in one pass over the tensor, which is what tf.keras
    2 used and what PyTorch does. Same weights, same arguments, same moving
    averages (the biased batch variance, as Keras keeps). Inference, other
    backends, masks, renorm and synchronized batch norm use the Keras
    implementation. benchmarks/results.md has the speed differences.

    Example:

    >>> layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> layer(keras.ops.ones((2, 4, 4, 8)), training=True).shape
    (2, 4, 4, 8)
    """

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.scale
            and self.center
        )

    def call(self, inputs, training=None, mask=None):
        # Inference keeps Keras's ops: under oneDNN the fused inference kernel made a
        # batch-1 call of ResNet-50 an order of magnitude slower (benchmarks/results.md).
        if not (training and self.trainable) or not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        # FusedBatchNormV3 takes float16/bfloat16/float32 inputs with float32 statistics.
        x = tf.cast(inputs, self.compute_dtype)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The kernel returns the unbiased variance; Keras averages the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs
