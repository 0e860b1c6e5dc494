"""Data sources and tf.data pipelines with the paper's preprocessing.

Sources (`load_data`):

- a local copy through `data_dir`, recognised by its layout:
  - class folders: `DIR/train/<class>/*.jpg|png|...` and `DIR/test/<class>/...`
    (class order: sorted folder names);
  - CIFAR-10/100 binary batches (`cifar-10-batches-bin`, `cifar-100-binary`), or
    the python batches (`cifar-10-batches-py`, `cifar-100-python`), which are
    unpickled with a warning and only when no binary batches exist;
  - IDX files (MNIST, Fashion-MNIST): `train-images-idx3-ubyte[.gz]` and friends;
- a TensorFlow Datasets name (`cifar10`, `cifar100`, `mnist`, `fashion_mnist`,
  `imagenet2012`, `imagenette`, ...), with `tfds_data_dir`;
- `digits`: scikit-learn's bundled 8x8 handwritten digits (real, offline);
- `synthetic`: random images of CIFAR's shape, for benchmarks and smoke runs.

Small fixed-size images (CIFAR, MNIST, digits) are decoded once into memory and
get the paper's CIFAR treatment: per-pixel mean of the training split (carried
into the model by `input_normalization`), 4-pixel zero padding (scaled with the
image size), random crops and horizontal flips for training, nothing at test.
Larger or variable-size images stream from their files and get the paper's
ImageNet treatment: the shorter side resized to a random length in [256, 480]
(scaled to `image_size / 224`), a random `image_size` crop and a flip; at test,
the shorter side at 256 and a centre crop.
"""

import dataclasses
import gzip
import logging
import os
import pickle
import struct

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SYNTHETIC_SHAPE, SYNTHETIC_CLASSES, SYNTHETIC_EXAMPLES = (32, 32, 3), 10, (10_000, 2_000)
# Images whose decoded size exceeds this stream from disk instead of memory.
IN_MEMORY_LIMIT_BYTES = 4 << 30
# Pixels are divided by this after mean subtraction: inputs of about [-1, 1].
PIXEL_SCALE = 255.0
# ImageNet scale augmentation of the paper (Section 3.4), for 224-pixel crops.
SCALE_RANGE, TEST_SHORT_SIDE = (256, 480), 256
# Datasets whose images must not be mirrored (digits are not symmetric).
NO_FLIP = ("digits", "mnist", "emnist", "kmnist", "svhn_cropped")
STREAMED_TFDS = ("imagenet2012", "imagenet2012_subset", "imagenette", "imagewang", "food101")


class DataError(ValueError):
    """A data source that cannot be used, with the file or folder at fault."""


@dataclasses.dataclass
class Split:
    """One split: in memory (`images`, `labels`) or as a stream of examples.

    Attributes:
        num_examples: int.
        images: uint8 array (N, height, width, channels), or None when streamed.
        labels: int32 array (N,), or None when streamed.
        stream: callable returning a `tf.data.Dataset` of (uint8 image of any
            size, int32 label), or None when in memory.
    """

    num_examples: int
    images: np.ndarray = None
    labels: np.ndarray = None
    stream: object = None

    def dataset(self):
        if self.images is not None:
            return tf.data.Dataset.from_tensor_slices((self.images, self.labels))
        return self.stream()


@dataclasses.dataclass
class Data:
    """A loaded dataset.

    Attributes:
        name: dataset name.
        source: where it came from (`"folder /path"`, `"tfds cifar10"`, ...).
        class_names: list of class names in label order.
        image_shape: (height, width, channels) the model takes.
        train, validation, test: `Split`s; `validation` is None without
            `validation_split`.
        augmentation: `"pad_crop"` (CIFAR) or `"scale"` (ImageNet).
        flip: whether training flips images horizontally.
        mean: array subtracted from the pixels: per-pixel (H, W, C) for
            `pad_crop`, per-channel (C,) for `scale`.
    """

    name: str
    source: str
    class_names: list
    image_shape: tuple
    train: Split
    validation: Split
    test: Split
    augmentation: str
    flip: bool
    mean: np.ndarray = None

    @property
    def num_classes(self):
        return len(self.class_names)

    def describe(self):
        """JSON-ready description for the run's config."""
        return {
            "dataset": self.name,
            "source": self.source,
            "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),
            "num_train": self.train.num_examples,
            "num_validation": self.validation.num_examples if self.validation else 0,
            "num_test": self.test.num_examples,
            "augmentation": self.augmentation,
            "flip": self.flip,
        }


# ---------------------------------------------------------------- sources


def add_evaluation_data_flags(parser):
    """Adds the flags of a command that reads a dataset's test split in batches.

    --dataset, --data-dir, --tfds-data-dir and --image-size are `load_data`'s
    arguments; --batch-size is the evaluation batch.
    """
    parser.add_argument("--dataset", default="cifar10", help="dataset name (default: cifar10)")
    parser.add_argument("--data-dir", help="local copy: class folders, CIFAR batches or IDX files")
    parser.add_argument("--tfds-data-dir", help="TFDS data directory")
    parser.add_argument("--image-size", type=int, default=224, help="crop size for large images")
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")


def load_data(name, data_dir=None, tfds_data_dir=None, image_size=224, validation_split=0,
              train_subset=None, seed=0):
    """Loads a dataset and computes its training mean.

    Args:
        name: dataset name: a TFDS name, `"digits"` or `"synthetic"`. With
            `data_dir`, the name labels the local copy.
        data_dir: optional local copy (class folders, CIFAR batches or IDX files).
        tfds_data_dir: optional TFDS data directory.
        image_size: crop size for streamed (ImageNet-style) datasets.
        validation_split: training examples held out for validation: a count
            (5000 gives the paper's 45k/5k CIFAR split) or a fraction in (0, 1).
            0 for none.
        train_subset: optional int, keep N training examples: the first N of a
            fixed random permutation (class-sorted sources stay balanced).
        seed: seed of the validation hold-out.

    Returns:
        A `Data`.

    Raises:
        DataError: for a missing, empty, corrupt or inconsistent source.
    """
    if data_dir is not None:
        train, test, class_names, source = _load_local(data_dir)
    elif name == "digits":
        train, test, class_names, source = _load_digits()
    elif name == "synthetic":
        train, test, class_names, source = _load_synthetic(seed)
    else:
        train, test, class_names, source = _load_tfds(name, tfds_data_dir)

    if train_subset is not None:
        if train_subset < 1:
            raise DataError(f"train_subset must be a positive int, received {train_subset!r}.")
        train = _take(train, min(train_subset, train.num_examples))
    validation = None
    if 0 < validation_split < 1:
        validation_split = max(1, round(validation_split * train.num_examples))
    validation_split = int(validation_split)
    if validation_split:
        if not 0 < validation_split < train.num_examples:
            raise DataError(
                f"validation_split={validation_split} must be between 1 and the "
                f"{train.num_examples - 1} training examples less one."
            )
        if train.images is None:
            raise DataError("validation_split needs an in-memory dataset; this one streams.")
        order = np.random.RandomState(seed).permutation(train.num_examples)
        held, kept = np.sort(order[:validation_split]), np.sort(order[validation_split:])
        validation = Split(len(held), train.images[held], train.labels[held])
        train = Split(len(kept), train.images[kept], train.labels[kept])

    in_memory = train.images is not None
    flip = not any(name.startswith(n) for n in NO_FLIP)
    if in_memory:
        image_shape = tuple(train.images.shape[1:])
        # The paper's per-pixel mean, from the training split only.
        mean = train.images.mean(axis=0, dtype=np.float64).astype(np.float32)
        augmentation = "pad_crop"
    else:
        image_shape = (image_size, image_size, 3)
        mean = _channel_mean(train)
        augmentation = "scale"
    return Data(name, source, list(class_names), image_shape, train, validation, test,
                augmentation, flip, mean)


def _take(split, n):
    """The first n of a fixed permutation (a stream's first n after a seeded shuffle)."""
    if split.images is not None:
        keep = np.sort(np.random.RandomState(0).permutation(split.num_examples)[:n])
        return Split(n, split.images[keep], split.labels[keep])
    stream = split.stream
    return Split(n, stream=lambda: stream().shuffle(10_000, seed=0,
                                                     reshuffle_each_iteration=False).take(n))


def _load_local(data_dir):
    if not os.path.isdir(data_dir):
        raise DataError(f"data_dir {data_dir!r} is not a directory.")
    train_dir, test_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "test")
    if os.path.isdir(train_dir) or os.path.isdir(test_dir):
        return _load_folders(train_dir, test_dir)
    for folder, binary in (("cifar-10-batches-bin", True), ("cifar-100-binary", True),
                           ("cifar-10-batches-py", False), ("cifar-100-python", False)):
        for candidate in (os.path.join(data_dir, folder), data_dir):
            if os.path.basename(os.path.normpath(candidate)) == folder and os.path.isdir(candidate):
                return _load_cifar(candidate, binary)
    if _idx_path(data_dir, "train-images-idx3-ubyte"):
        return _load_idx(data_dir)
    raise DataError(
        f"Unrecognised layout in data_dir {data_dir!r}. Expected one of: train/<class>/<image> "
        "and test/<class>/<image> folders; cifar-10-batches-bin, cifar-100-binary, "
        "cifar-10-batches-py or cifar-100-python; or IDX files (train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])."
    )


def _list_class_folders(split_dir):
    if not os.path.isdir(split_dir):
        raise DataError(f"Missing directory {split_dir!r}: class folders need train/ and test/.")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not classes:
        raise DataError(f"No class folders in {split_dir!r}.")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(split_dir, name)
        files = sorted(e.path for e in os.scandir(folder) if e.is_file())
        if not files:
            raise DataError(f"Empty class folder {folder!r}.")
        for path in files:
            if not path.lower().endswith(IMAGE_EXTENSIONS):
                raise DataError(
                    f"Not an image file: {path!r} (allowed extensions: {', '.join(IMAGE_EXTENSIONS)})."
                )
        paths += files
        labels += [label] * len(files)
    return classes, paths, np.asarray(labels, np.int32)


def _load_folders(train_dir, test_dir):
    train_classes, train_paths, train_labels = _list_class_folders(train_dir)
    test_classes, test_paths, test_labels = _list_class_folders(test_dir)
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"Class folders of {train_dir!r} and {test_dir!r} differ: only in train: "
            f"{only_train}, only in test: {only_test}."
        )
    first = _decode_file(train_paths[0])
    decoded_bytes = first.nbytes * (len(train_paths) + len(test_paths))
    source = f"folder {os.path.dirname(os.path.abspath(train_dir))}"
    if decoded_bytes <= IN_MEMORY_LIMIT_BYTES and first.shape[0] <= 64:
        channels = first.shape[-1]
        train = _decode_all(train_paths, train_labels, channels, first.shape)
        test = _decode_all(test_paths, test_labels, channels, first.shape)
    else:
        train = _file_stream(train_paths, train_labels)
        test = _file_stream(test_paths, test_labels)
    return train, test, train_classes, source


def _decode_file(path):
    try:
        return tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
    except tf.errors.OpError as error:
        raise DataError(f"Cannot decode image file {path!r}: {error.message}") from None


def _decode_all(paths, labels, channels, shape):
    """Decodes image files in parallel into one uint8 array; names a bad file."""
    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        return tf.ensure_shape(image, shape)

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    try:
        images = np.concatenate(list(dataset.batch(4096).as_numpy_iterator()))
    except tf.errors.OpError:
        # Find and name the file at fault (rare path: decode one by one).
        for path in paths:
            image = _decode_file(path)
            if image.shape != shape:
                raise DataError(
                    f"Image {path!r} has shape {image.shape}; the other images have {shape}."
                ) from None
        raise
    return Split(len(paths), images, labels)


def _file_stream(paths, labels):
    def stream():
        def decode(path, label):
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return image, label

        files = tf.data.Dataset.from_tensor_slices((paths, labels))
        return files.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return Split(len(paths), stream=stream)


def _load_cifar(folder, binary):
    hundred = "100" in os.path.basename(os.path.normpath(folder))
    if binary:
        names = ["train.bin"] if hundred else [f"data_batch_{i}.bin" for i in range(1, 6)]
        test_names = ["test.bin"] if hundred else ["test_batch.bin"]
        label_bytes = 2 if hundred else 1

        def read(name):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise DataError(f"Missing CIFAR batch file {path!r}.")
            raw = np.fromfile(path, np.uint8)
            record = label_bytes + 3072
            if raw.size % record:
                raise DataError(f"CIFAR batch file {path!r} is truncated or corrupt.")
            raw = raw.reshape(-1, record)
            return raw[:, label_bytes:], raw[:, label_bytes - 1].astype(np.int32)

        meta = os.path.join(folder, "fine_label_names.txt" if hundred else "batches.meta.txt")
        class_names = _read_lines(meta)
    else:
        logger.warning("Unpickling the CIFAR python batches in %s (pickle runs code from the "
                       "file: use only a trusted copy; the binary batches avoid it).", folder)
        names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
        test_names = ["test"] if hundred else ["test_batch"]
        label_key = b"fine_labels" if hundred else b"labels"

        def read(name):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise DataError(f"Missing CIFAR batch file {path!r}.")
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
                return np.asarray(batch[b"data"], np.uint8), np.asarray(batch[label_key], np.int32)
            except Exception as error:
                raise DataError(f"Cannot read CIFAR batch file {path!r}: {error}") from None

        meta_path = os.path.join(folder, "meta" if hundred else "batches.meta")
        with open(meta_path, "rb") as f:
            meta = pickle.load(f, encoding="bytes")
        key = b"fine_label_names" if hundred else b"label_names"
        class_names = [n.decode() for n in meta[key]]

    def split(file_names):
        parts = [read(n) for n in file_names]
        pixels = np.concatenate([p[0] for p in parts])
        images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # stored channels-first
        return Split(len(images), np.ascontiguousarray(images), np.concatenate([p[1] for p in parts]))

    return split(names), split(test_names), class_names, f"cifar batches {folder}"


def _read_lines(path):
    if not os.path.isfile(path):
        raise DataError(f"Missing class-name file {path!r}.")
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _idx_path(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except Exception as error:
        raise DataError(f"Cannot read IDX file {path!r}: {error}") from None


def _load_idx(folder):
    def split(prefix):
        images_path = _idx_path(folder, f"{prefix}-images-idx3-ubyte")
        labels_path = _idx_path(folder, f"{prefix}-labels-idx1-ubyte")
        if not images_path or not labels_path:
            raise DataError(f"Missing IDX files {prefix}-images/labels in {folder!r}.")
        images, labels = _read_idx(images_path), _read_idx(labels_path).astype(np.int32)
        if len(images) != len(labels):
            raise DataError(f"{images_path!r} has {len(images)} images but {labels_path!r} "
                            f"has {len(labels)} labels.")
        return Split(len(images), images[..., None], labels)

    train, test = split("train"), split("t10k")
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    return train, test, [str(i) for i in range(num_classes)], f"idx {folder}"


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    # A fixed, stratified 80/20 split (scikit-learn ships no test split).
    order = np.random.RandomState(0).permutation(len(labels))
    test_mask = np.zeros(len(labels), bool)
    for digit in range(10):
        members = order[labels[order] == digit]
        test_mask[members[: len(members) // 5]] = True
    train = Split(int((~test_mask).sum()), images[~test_mask], labels[~test_mask])
    test = Split(int(test_mask.sum()), images[test_mask], labels[test_mask])
    return train, test, [str(d) for d in range(10)], "scikit-learn digits"


def _load_synthetic(seed):
    rng = np.random.RandomState(seed)

    def split(n):
        return Split(n, rng.randint(0, 256, (n, *SYNTHETIC_SHAPE), dtype=np.uint8),
                     rng.randint(0, SYNTHETIC_CLASSES, n).astype(np.int32))

    train, test = split(SYNTHETIC_EXAMPLES[0]), split(SYNTHETIC_EXAMPLES[1])
    return train, test, [f"class_{i}" for i in range(SYNTHETIC_CLASSES)], "synthetic"


def _load_tfds(name, tfds_data_dir):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=tfds_data_dir)
    except Exception as error:
        raise DataError(f"Unknown dataset {name!r}: {error}. Use a TFDS name, 'digits', "
                        "'synthetic', or a local copy with --data-dir.") from None
    try:
        builder.download_and_prepare()
    except Exception as error:
        raise DataError(
            f"TFDS could not download or prepare {name!r} ({type(error).__name__}: "
            f"{str(error)[:300]}). Without network access, pass a local copy with --data-dir "
            "(class folders, CIFAR batches or IDX files) or a prepared --tfds-data-dir."
        ) from None
    label = builder.info.features["label"]
    splits = builder.info.splits
    test_name = "test" if "test" in splits else "validation"
    shape = builder.info.features["image"].shape
    if name in STREAMED_TFDS or None in shape or shape[0] > 64:
        def stream_of(split_name):
            return lambda: builder.as_dataset(split=split_name, as_supervised=True, shuffle_files=False)

        train = Split(splits["train"].num_examples, stream=stream_of("train"))
        test = Split(splits[test_name].num_examples, stream=stream_of(test_name))
    else:
        def arrays(split_name):
            dataset = builder.as_dataset(split=split_name, as_supervised=True, shuffle_files=False)
            batches = list(dataset.batch(4096).as_numpy_iterator())
            images = np.concatenate([b[0] for b in batches]).astype(np.uint8)
            labels = np.concatenate([b[1] for b in batches]).astype(np.int32)
            return Split(len(labels), images, labels)

        train, test = arrays("train"), arrays(test_name)
    return train, test, list(label.names), f"tfds {name}"


def _channel_mean(split, sample=2000):
    """Per-channel mean of up to `sample` streamed training images."""
    total, count = np.zeros(3), 0
    for image, _ in split.dataset().take(sample).as_numpy_iterator():
        total += image.reshape(-1, image.shape[-1]).mean(axis=0)
        count += 1
    if not count:
        raise DataError("The training split is empty.")
    return (total / count).astype(np.float32)


# -------------------------------------------------------------- pipelines


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


def resize_short_side(image, short_side):
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(short_side, tf.float32) / tf.reduce_min(shape)
    size = tf.cast(tf.round(shape * scale), tf.int32)
    return tf.cast(tf.image.resize(image, size, antialias=True), tf.uint8)


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


def center_crop(image, image_size):
    """Test-time crop of the paper's ImageNet protocol: shorter side 256 (scaled), centre crop."""
    image = resize_short_side(image, round(TEST_SHORT_SIDE * image_size / 224))
    shape = tf.shape(image)
    top, left = (shape[0] - image_size) // 2, (shape[1] - image_size) // 2
    return image[top : top + image_size, left : left + image_size]


def _options(multi_worker):
    options = tf.data.Options()
    if multi_worker:
        # In-memory sources have no files to shard: every worker takes its share of examples.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def train_dataset(data, batch_size, seed, multi_worker=False):
    """Shuffled, augmented, batched training pipeline of (uint8 images, labels).

    Augmentation draws stateless random numbers from `seed`, a fresh stream per
    pass, so runs with the same seed see the same crops and flips. The stream
    repeats forever: the trainer's `steps_per_epoch` says where an epoch ends,
    so an epoch need not be one pass over the data.
    """
    dataset = data.train.dataset()
    if data.train.images is not None:
        dataset = dataset.shuffle(data.train.num_examples, seed=seed, reshuffle_each_iteration=True)
    else:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip((dataset, randoms))

    if data.augmentation == "pad_crop":
        def augment(example, random):
            return _pad_crop(example[0], random, data.flip), example[1]
    else:
        size = data.image_shape[0]

        def augment(example, random):
            return _scale_augment(example[0], random, data.flip, size), example[1]

    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True).repeat()
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options(multi_worker))


def eval_dataset(data, split, batch_size, multi_worker=False):
    """Batched evaluation pipeline: no augmentation (centre crop for `scale`)."""
    dataset = split.dataset()
    if data.augmentation == "scale":
        size = data.image_shape[0]
        dataset = dataset.map(lambda image, label: (center_crop(image, size), label),
                              num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options(multi_worker))
