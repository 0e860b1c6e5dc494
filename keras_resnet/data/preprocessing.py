"""The paper's preprocessing, chosen once per dataset and used everywhere.

A `Preprocessing` is one of two treatments:

- `"cifar"` (Section 4.2), for small fixed-size images held in memory: the
  per-pixel mean of the training split (subtracted inside the model), 4-pixel
  zero padding (scaled with the image size), a random crop and a horizontal
  flip for training; nothing at test.
- `"imagenet"` (Section 3.4), for large or variable-size images read from
  their files: the per-channel mean, the shorter side resized to a random
  length in [256, 480] (scaled to `image_size / 224`), a random `image_size`
  crop and a flip for training; at test the shorter side at 256 and a centre
  crop, or the paper's 10 crops.

Training (`keras_resnet.data.train_dataset`), evaluation (`evaluation.evaluate`)
and the exported SavedModel's `serving_bytes` signature all take their maps
from the same object, which the run records in its `config.json`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_resnet.data.sources import IN_MEMORY_MAX_SIDE, DataError, name_unreadable_image

KINDS = ("cifar", "imagenet")
# Pixels are divided by this after mean subtraction: inputs of about [-1, 1].
PIXEL_SCALE = 255.0
# ImageNet scale augmentation of the paper (Section 3.4), for 224-pixel crops.
SCALE_RANGE, TEST_SHORT_SIDE = (256, 480), 256
# Datasets whose images must not be mirrored (digits are not symmetric).
NO_FLIP = ("digits", "mnist", "emnist", "kmnist", "svhn_cropped")
# Training images of all classes the per-channel mean of large images comes from.
MEAN_SAMPLE = 2000


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images are prepared for training, evaluation and serving.

    Attributes:
        kind: `"cifar"` or `"imagenet"` (see the module docstring).
        flip: bool, training flips images horizontally.
        image_size: int, the crop size of `"imagenet"` preprocessing; None for
            `"cifar"`, whose images keep their own size.
    """

    kind: str
    flip: bool = True
    image_size: int = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Unknown preprocessing {self.kind!r}. Allowed: {', '.join(KINDS)}.")
        if self.kind == "imagenet" and not (
            isinstance(self.image_size, int) and self.image_size > 0
        ):
            raise ValueError(
                f"imagenet preprocessing needs a positive image_size, received {self.image_size!r}."
            )

    @classmethod
    def for_dataset(cls, name, in_memory, image_size):
        """The paper's choice for a dataset: `"cifar"` for images held in memory."""
        flip = not any(name.startswith(prefix) for prefix in NO_FLIP)
        return cls("cifar", flip) if in_memory else cls("imagenet", flip, image_size)

    @classmethod
    def for_input_shape(cls, input_shape):
        """The choice for a model without a recorded one, from its input size.

        As for training data: images up to `IN_MEMORY_MAX_SIDE` pixels a side
        are used as they are (`"cifar"`); larger ones get the paper's test
        crop (`"imagenet"`, at the input's size).
        """
        height, width = input_shape[:2]
        if max(height, width) <= IN_MEMORY_MAX_SIDE:
            return cls("cifar")
        return cls("imagenet", image_size=int(height))

    @classmethod
    def from_description(cls, described):
        """The `Preprocessing` a run's `config.json` `data` entry records, or None.

        Also reads runs written before this class existed (`augmentation`:
        `"pad_crop"` or `"scale"`).
        """
        if "preprocessing" in described:
            return cls(**described["preprocessing"])
        if "augmentation" in described:
            if described["augmentation"] == "scale":
                return cls("imagenet", described.get("flip", True), described["image_shape"][0])
            return cls("cifar", described.get("flip", True))
        return None

    def describe(self):
        return dataclasses.asdict(self)

    def training_mean(self, split):
        """The mean the model subtracts: per-pixel for `"cifar"`, per-channel for `"imagenet"`."""
        if self.kind == "cifar":
            # The paper's per-pixel mean, from the training split only.
            return split.images.mean(axis=0, dtype=np.float64).astype(np.float32)
        return _channel_mean(split)

    def augment(self, image, seed):
        """A training image from a source image and a stateless seed (shape [2])."""
        if self.kind == "cifar":
            return _pad_crop(image, seed, self.flip)
        return _scale_augment(image, seed, self.flip, self.image_size)

    def evaluation_image(self, image):
        """A test image: unchanged for `"cifar"`, the centre crop for `"imagenet"`."""
        if self.kind == "cifar":
            return image
        image = _resize_for_test(image, self.image_size)
        shape = tf.shape(image)
        top, left = (shape[0] - self.image_size) // 2, (shape[1] - self.image_size) // 2
        return image[top : top + self.image_size, left : left + self.image_size]

    def ten_crops(self, image):
        """The paper's 10 test crops of one image: corners, centre, and their mirrors."""
        if self.kind != "imagenet":
            raise ValueError("ten_crop applies to ImageNet-style (large-image) datasets only.")
        size = self.image_size
        image = _resize_for_test(image, size)
        shape = tf.shape(image)
        bottom, right = shape[0] - size, shape[1] - size
        offsets = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
        crops = tf.stack([image[y : y + size, x : x + size] for y, x in offsets])
        return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)

    def serving_image(self, image, height, width):
        """A decoded image of any size as the float32 `(height, width)` input a
        served model takes: the test crop, then a resize if the size still differs
        (antialiased, as the test crop's: a photo shrunk to a CIFAR net's 32x32
        keeps what its pixels average to, not every eighth of them)."""
        image = self.evaluation_image(image)
        same = tf.reduce_all(tf.shape(image)[:2] == [height, width])
        return tf.cond(
            same,
            lambda: tf.cast(image, tf.float32),
            lambda: tf.image.resize(image, [height, width], antialias=True),
        )


def resize_short_side(image, short_side):
    """Resizes so that the shorter side is `short_side`, keeping the aspect ratio."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(short_side, tf.float32) / tf.reduce_min(shape)
    size = tf.cast(tf.round(shape * scale), tf.int32)
    return tf.cast(tf.image.resize(image, size, antialias=True), tf.uint8)


def _resize_for_test(image, image_size):
    """The paper's test scale: shorter side 256 for 224 crops, scaled with the crop."""
    return resize_short_side(image, round(TEST_SHORT_SIDE * image_size / 224))


def _pad_crop(image, seed, flip):
    """The paper's CIFAR augmentation: zero pad, random crop, random flip."""
    height, width = image.shape[0], image.shape[1]
    pad = max(1, round(height / 8))  # 4 pixels for 32x32 images
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = tf.image.stateless_random_crop(padded, (height, width, image.shape[2]), seeds[0])
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    return image


def _scale_augment(image, seed, flip, image_size):
    """The paper's ImageNet augmentation: random short side, random crop, flip."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    low, high = (round(s * image_size / 224) for s in SCALE_RANGE)
    short_side = tf.random.stateless_uniform((), seeds[0], low, high + 1, dtype=tf.int32)
    image = resize_short_side(image, short_side)
    image = tf.image.stateless_random_crop(image, (image_size, image_size, 3), seeds[1])
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    return image


def _channel_mean(split, sample=None):
    """Per-channel mean of `sample` (default `MEAN_SAMPLE`) training images of all classes.

    Of a stream, its first `sample` images.
    """
    sample = MEAN_SAMPLE if sample is None else sample
    if split.indexable:
        split = split.sample(min(sample, split.num_examples))
    total, count = np.zeros(3), 0
    try:
        for image, _ in split.dataset().take(sample).as_numpy_iterator():
            total += image.reshape(-1, image.shape[-1]).mean(axis=0)
            count += 1
    except tf.errors.OpError as error:
        name_unreadable_image(error, split.paths)
        raise
    if not count:
        raise DataError("The training split is empty.")
    return (total / count).astype(np.float32)
