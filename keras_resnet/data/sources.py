"""Data sources: where images and labels come from, before any preprocessing.

`read_source` returns the training and test `Split`s of:

- a local copy through `data_dir`, recognised by its layout:
  - class folders: `DIR/train/<class>/*.jpg|png|...` and `DIR/test/<class>/...`
    (class order: sorted folder names);
  - CIFAR-10/100 binary batches (`cifar-10-batches-bin`, `cifar-100-binary`), or
    the python batches (`cifar-10-batches-py`, `cifar-100-python`), read only
    when no binary batches exist and with an unpickler that builds nothing but
    what the format holds (dicts, lists, bytes, numbers, numpy arrays), so a
    crafted file is an error, not code that runs;
  - IDX files (MNIST, Fashion-MNIST): `train-images-idx3-ubyte[.gz]` and friends;
- a TensorFlow Datasets name (`cifar10`, `cifar100`, `mnist`, `fashion_mnist`,
  `imagenet2012`, `imagenette`, ...), with `tfds_data_dir`;
- `digits`: scikit-learn's bundled 8x8 handwritten digits (real, offline);
- `synthetic`: random images of CIFAR's shape, for benchmarks and smoke runs.

Small fixed-size images are decoded once into memory; larger or variable-size
images are read from their files as they are needed.
"""

import dataclasses
import gzip
import hashlib
import os
import pickle
import re
import struct

import numpy as np
import tensorflow as tf

from keras_resnet.progress import Progress


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SYNTHETIC_SHAPE, SYNTHETIC_CLASSES, SYNTHETIC_EXAMPLES = (32, 32, 3), 10, (10_000, 2_000)
# Images whose decoded size exceeds this are read from their files as needed, not held in memory.
IN_MEMORY_LIMIT_BYTES = 4 << 30
# Images with a larger side than this are read from their files (ImageNet-style data).
IN_MEMORY_MAX_SIDE = 64
STREAMED_TFDS = ("imagenet2012", "imagenet2012_subset", "imagenette", "imagewang", "food101")


class DataError(ValueError):
    """A data source that cannot be used, with the file or folder at fault."""


@dataclasses.dataclass
class Split:
    """One split: in memory (`images`), as image files (`paths`), or as a stream.

    In memory and file splits are indexable: training shuffles all their
    examples each pass and a resumed run goes on with the same batches.

    Attributes:
        num_examples: int.
        images: uint8 array (N, height, width, channels), or None.
        labels: int32 array (N,), or None for a stream.
        paths: array (N,) of image file paths (images of any size, decoded as
            they are read), or None.
        stream: callable returning a `tf.data.Dataset` of (uint8 image of any
            size, int32 label) for a source that can only be read in order
            (TFDS), or None.
    """

    num_examples: int
    images: np.ndarray = None
    labels: np.ndarray = None
    paths: np.ndarray = None
    stream: object = None

    @property
    def indexable(self):
        """Whether example `i` can be read alone: held in memory or in its own file."""
        return self.images is not None or self.paths is not None

    def dataset(self):
        """(image, label) pairs in the split's order."""
        if self.images is not None:
            return tf.data.Dataset.from_tensor_slices((self.images, self.labels))
        if self.paths is not None:
            files = tf.data.Dataset.from_tensor_slices((self.paths, self.labels))
            palette_bmps = any_may_be_bmp(self.paths)
            return files.map(
                lambda path, label: (decode_image_file(path, 3, palette_bmps), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return self.stream()

    def subset(self, indices):
        """The examples at `indices` (an indexable split's), in that order."""
        return Split(
            len(indices),
            None if self.images is None else self.images[indices],
            self.labels[indices],
            None if self.paths is None else self.paths[indices],
        )

    def sample(self, n):
        """n examples of an indexable split, the same for every run, in the split's order.

        Sources list their examples class by class, so the first n would be a
        few classes; n of a fixed permutation keep every class in proportion.
        """
        return self.subset(np.sort(np.random.RandomState(0).permutation(self.num_examples)[:n]))


def fingerprint(*splits):
    """A short digest of the splits' images and labels, whatever their order or files.

    The same pixels give the same digest however they are stored (CIFAR's
    batches, lossless PNG folders cut from them), so runs on one dataset can
    be told from runs on a re-encoding of it (CIFAR-10's JPEG copy). None when
    a split is not held in memory: reading every file of a large dataset
    only to digest it is not worth its time.
    """
    if any(split.images is None for split in splits):
        return None
    digest = hashlib.sha256()
    for split in splits:
        digest.update(repr((split.num_examples, split.images.shape[1:])).encode())
        examples = sorted(
            hashlib.sha256(image.tobytes() + int(label).to_bytes(4, "little")).digest()
            for image, label in zip(split.images, split.labels, strict=True)
        )
        digest.update(b"".join(examples))
    return digest.hexdigest()[:16]


def decode_image(contents, channels=3, palette_bmps=True):
    """Decodes a JPEG, PNG, BMP, GIF or WebP image into uint8 pixels with `channels` channels.

    TensorFlow's decoders convert only some formats to some channel counts (a
    GIF, BMP, WebP or CMYK JPEG never to gray, a GIF or JPEG never to RGBA, a
    WebP with alpha not even to RGB), and give a palette BMP's color indices
    as its pixels. Where the decoder does the conversion it is left to it;
    otherwise the image is decoded with its own channels (a palette BMP's
    colors looked up here, a CMYK JPEG's as RGB) and converted: gray is
    repeated into RGB, color becomes gray by ITU-R 601 luma, rounded (PIL's
    "L"), alpha is dropped, or opaque where the file has none.

    Args:
        contents: a scalar string tensor, the file's bytes.
        channels: 1, 3 or 4.
        palette_bmps: whether `contents` may be a palette BMP: a bool, or a
            scalar bool tensor (per image in a pipeline). Default True. False
            leaves a palette BMP to TensorFlow, which gives an 8-bit one's
            indices as gray pixels and refuses 1, 2 and 4 bits;
            `decode_image_file` passes False for files named as another
            format. A pipeline in which it is not the constant False decodes
            each image about 0.2 ms slower (twice a 32x32 PNG's decoding).

    Returns:
        A uint8 tensor of shape (height, width, channels), the first frame of
        an animation.
    """
    if channels not in (1, 3, 4):
        raise ValueError(f"Images are decoded to 1, 3 or 4 channels, not {channels}.")
    png, jpeg = _starts_with(contents, b"\x89PNG"), tf.io.is_jpeg(contents)
    bmp = _starts_with(contents, b"BM")
    if palette_bmps is not False:
        bmp = bmp & ~_is_palette_bmp(contents, palette_bmps)
    if channels == 1:  # libjpeg makes a CMYK JPEG RGB, never gray
        cmyk = tf.cond(
            jpeg, lambda: tf.image.extract_jpeg_shape(contents)[2] == 4, lambda: tf.constant(False)
        )
        decoder_converts = png | (jpeg & ~cmyk)
    elif channels == 3:
        decoder_converts = png | jpeg | bmp | _starts_with(contents, b"GIF")
    else:
        decoder_converts = png | bmp
    return tf.ensure_shape(
        tf.cond(
            decoder_converts,
            lambda: tf.io.decode_image(contents, channels=channels, expand_animations=False),
            lambda: _convert_channels(_decode_own_channels(contents, palette_bmps), channels),
        ),
        [None, None, channels],
    )


# A file named as one of these formats is decoded as TensorFlow decodes it, never looked at as
# a palette BMP: that check slows a pipeline (`decode_image`), and only BMPs need it.
_NOT_BMP_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e != ".bmp")


def may_be_bmp(path):
    """Whether image file `path` (a path, or a string tensor) is not named as another format.

    A Python bool for a path, a bool tensor for a tensor: `decode_image`'s
    `palette_bmps` for the file.
    """
    if isinstance(path, tf.Tensor):
        pattern = "|".join(re.escape(e) for e in _NOT_BMP_EXTENSIONS)
        return ~tf.strings.regex_full_match(tf.strings.lower(path), f".*({pattern})")
    return not os.fsdecode(path).lower().endswith(_NOT_BMP_EXTENSIONS)


def any_may_be_bmp(paths):
    """Whether any of `paths` `may_be_bmp`: else a pipeline over them skips the palette check."""
    return any(may_be_bmp(path) for path in paths)


def _starts_with(contents, magic):
    return tf.equal(tf.strings.substr(contents, 0, len(magic)), magic)  # takes what there is


def _decode_own_channels(contents, palette_bmps=True):
    """An image's pixels with the file's own channels (1 to 4), a palette BMP's as colors."""

    def decode():
        return tf.io.decode_image(contents, channels=0, expand_animations=False)

    if palette_bmps is False:
        return decode()
    return tf.cond(
        _is_palette_bmp(contents, palette_bmps), lambda: _decode_palette_bmp(contents), decode
    )


def _convert_channels(image, channels):
    """uint8 `image` of 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA) channels as `channels`."""
    own = tf.shape(image)[-1]
    color = tf.cond(own >= 3, lambda: image[..., :3], lambda: tf.repeat(image[..., :1], 3, -1))
    if channels == 3:
        return color
    if channels == 1:
        # PIL's integer luma: (19595 R + 38470 G + 7471 B + 2^15) >> 16.
        weighted = tf.cast(color, tf.int32) * tf.constant([19595, 38470, 7471])
        luma = tf.bitwise.right_shift(tf.reduce_sum(weighted, -1, keepdims=True) + (1 << 15), 16)
        return tf.cond(own <= 2, lambda: image[..., :1], lambda: tf.cast(luma, tf.uint8))
    opaque = tf.fill(tf.shape(image[..., :1]), tf.constant(255, tf.uint8))
    alpha = tf.cond(own % 2 == 0, lambda: image[..., -1:], lambda: opaque)
    return tf.concat([color, alpha], axis=-1)


def convert_channels(images, channels, chunk=4096):
    """uint8 `images` (N, height, width, own channels) as `channels`, as `decode_image` converts
    a BMP's pixels: gray repeated into RGB, color made gray by PIL's luma, alpha dropped or
    opaque. Chunks bound the memory of the conversion."""
    return np.concatenate(
        [
            _convert_channels(tf.constant(images[start : start + chunk]), channels).numpy()
            for start in range(0, len(images), chunk)
        ]
    )


# A BMP's file header (14 bytes) and BITMAPINFOHEADER (40 bytes, or a later, longer version).
_BMP_HEADERS_BYTES = 54


def _bmp_field(contents, offset, dtype=tf.int32):
    """The little-endian number at byte `offset` of a BMP's headers (int64); 0 past the end."""
    headers = tf.strings.substr(contents, 0, _BMP_HEADERS_BYTES)
    padded = tf.strings.join([headers, b"\0" * _BMP_HEADERS_BYTES])
    raw = tf.strings.substr(padded, offset, dtype.size)
    return tf.cast(tf.io.decode_raw(raw, dtype, little_endian=True)[0], tf.int64)


def _is_palette_bmp(contents, palette_bmps=True):
    """Whether `contents` is a BMP of 1, 2, 4 or 8 bits per pixel: indices into its palette.

    False where `palette_bmps` (`decode_image`'s, a bool or a bool tensor) is.
    """
    bits = _bmp_field(contents, 28, tf.uint16)
    return (
        tf.convert_to_tensor(palette_bmps)
        & _starts_with(contents, b"BM")
        & (_bmp_field(contents, 14) >= 40)  # TensorFlow reads no older (OS/2) header either
        & (bits > 0)  # 0: a JPEG or PNG inside
        & (bits <= 8)
    )


def _decode_palette_bmp(contents):
    """A palette BMP's pixels: each row's indices unpacked and looked up in its palette.

    RGB, or gray (one channel) where every color of the palette is gray.
    """
    # In int64: a header's fields are 32-bit, their products are not.
    pixels_at, info_bytes = _bmp_field(contents, 10), _bmp_field(contents, 14)
    width, height = _bmp_field(contents, 18), _bmp_field(contents, 22)
    bits, compression = _bmp_field(contents, 28, tf.uint16), _bmp_field(contents, 30)
    colors_used = _bmp_field(contents, 46)
    file_bytes = tf.cast(tf.strings.length(contents), tf.int64)
    most_colors = tf.bitwise.left_shift(tf.constant(1, tf.int64), bits)
    colors = tf.where(colors_used != 0, colors_used, most_colors)
    palette_at, rows = 14 + info_bytes, tf.abs(height)
    row_bytes = (bits * width + 31) // 32 * 4  # rows fill 4-byte words

    def read(start, length):  # what there is of `length` bytes from `start`, never out of range
        start = tf.clip_by_value(start, 0, file_bytes)
        return tf.io.decode_raw(tf.strings.substr(contents, start, tf.maximum(length, 0)), tf.uint8)

    palette, packed = read(palette_at, 4 * colors), read(pixels_at, rows * row_bytes)
    checks = [
        tf.debugging.assert_equal(
            compression,
            tf.constant(0, tf.int64),
            message="only uncompressed palette BMPs decode, not RLE or others",
        ),
        tf.debugging.assert_equal(
            tf.reduce_any(tf.equal(bits, tf.constant([1, 2, 4, 8], tf.int64))),
            True,
            message="a palette BMP has 1, 2, 4 or 8 bits per pixel",
        ),
        tf.debugging.assert_positive(width, message="the BMP's width is not positive"),
        tf.debugging.assert_positive(rows, message="the BMP has no rows"),
        tf.debugging.assert_less_equal(
            colors, most_colors, message="the BMP's palette is too long"
        ),
        tf.debugging.assert_positive(colors, message="the BMP's palette is empty"),
        tf.debugging.assert_less_equal(
            palette_at + 4 * colors, pixels_at, message="the BMP's palette overlaps its pixels"
        ),
        tf.debugging.assert_equal(
            tf.size(palette, tf.int64), 4 * colors, message="the BMP ends inside its palette"
        ),
        tf.debugging.assert_equal(
            tf.size(packed, tf.int64), rows * row_bytes, message="the BMP ends inside its pixels"
        ),
    ]
    with tf.control_dependencies(checks):
        per_byte = 8 // bits
        shifts = 8 - bits * (tf.range(per_byte) + 1)  # the leftmost pixel is the high bits
        mask = most_colors - 1
        packed = tf.reshape(tf.cast(packed, tf.int64), [rows, row_bytes, 1])
        indices = tf.bitwise.bitwise_and(tf.bitwise.right_shift(packed, shifts), mask)
        indices = tf.reshape(indices, [rows, row_bytes * per_byte])[:, :width]
        # Rows are stored bottom-up, or top-down where the height is negative.
        indices = tf.cond(height > 0, lambda: tf.reverse(indices, [0]), lambda: indices)
        rgb = tf.reshape(palette, [-1, 4])[:, 2::-1]  # entries are blue, green, red, unused
    in_palette = tf.debugging.assert_less(
        tf.reduce_max(indices), colors, message="a pixel of the BMP indexes past its palette"
    )
    gray = tf.reduce_all(tf.equal(rgb, rgb[:, :1]))  # a gray image stays one channel
    with tf.control_dependencies([in_palette]):
        return tf.cond(
            gray, lambda: tf.gather(rgb[:, :1], indices), lambda: tf.gather(rgb, indices)
        )


def decode_image_file(path, channels=3, palette_bmps=True):
    """An image file's pixels as uint8 with `channels` channels (`decode_image`).

    A file named as another format than BMP (`.png`, ...) is not looked at as
    a palette BMP; nor is any file where `palette_bmps` is False, which a
    pipeline passes where none of its files `may_be_bmp` (`any_may_be_bmp`),
    to decode as fast as it can.
    """
    if palette_bmps:
        palette_bmps = may_be_bmp(path)
    return decode_image(tf.io.read_file(path), channels, palette_bmps)


def read_source(name, data_dir=None, tfds_data_dir=None, seed=0, test_only=False):
    """Reads a dataset's training and test splits and class names.

    Args:
        name: a TFDS name, `"digits"` or `"synthetic"`; with `data_dir`, the
            name only labels the local copy.
        data_dir: optional local copy (class folders, CIFAR batches or IDX files).
        tfds_data_dir: optional TFDS data directory.
        seed: seed of the synthetic images.
        test_only: read the test split only (train is then None): evaluation
            neither decodes the training images nor needs them on disk.

    Returns:
        (train `Split`, test `Split`, class names, a description of the source).

    Raises:
        DataError: for a missing, empty, corrupt or inconsistent source.
    """
    if data_dir is not None:
        return _load_local(data_dir, test_only)
    if name == "digits":
        train, *rest = _load_digits()
    elif name == "synthetic":
        train, *rest = _load_synthetic(seed)
    else:
        return _load_tfds(name, tfds_data_dir, test_only)
    return (None if test_only else train, *rest)


def _load_local(data_dir, test_only):
    if not os.path.isdir(data_dir):
        raise DataError(f"data_dir {data_dir!r} is not a directory.")
    train_dir, test_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "test")
    if os.path.isdir(train_dir) or os.path.isdir(test_dir):
        return _load_folders(train_dir, test_dir, test_only)
    for folder, binary in (
        ("cifar-10-batches-bin", True),
        ("cifar-100-binary", True),
        ("cifar-10-batches-py", False),
        ("cifar-100-python", False),
    ):
        for candidate in (os.path.join(data_dir, folder), data_dir):
            if os.path.basename(os.path.normpath(candidate)) == folder and os.path.isdir(candidate):
                return _load_cifar(candidate, binary, test_only)
    if _idx_path(data_dir, "train-images-idx3-ubyte") or _idx_path(
        data_dir, "t10k-images-idx3-ubyte"
    ):
        return _load_idx(data_dir, test_only)
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
                    f"Not an image file: {path!r} (allowed extensions: "
                    f"{', '.join(IMAGE_EXTENSIONS)})."
                )
        paths += files
        labels += [label] * len(files)
    return classes, paths, np.asarray(labels, np.int32)


def _load_folders(train_dir, test_dir, test_only=False):
    test_classes, test_paths, test_labels = _list_class_folders(test_dir)
    if test_only:
        train_classes, train_paths, train_labels = test_classes, [], None
    else:
        train_classes, train_paths, train_labels = _list_class_folders(train_dir)
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"Class folders of {train_dir!r} and {test_dir!r} differ: only in train: "
            f"{only_train}, only in test: {only_test}."
        )
    first = _decode_file((train_paths or test_paths)[0])
    height, width = first.shape[:2]
    source = f"folder {os.path.dirname(os.path.abspath(test_dir))}"
    reads = [(train_paths, train_labels, train_dir)] if train_paths else []
    reads.append((test_paths, test_labels, test_dir))

    def fit_in_memory(channels):
        size = height * width * channels * (len(train_paths) + len(test_paths))
        return size <= IN_MEMORY_LIMIT_BYTES and height <= IN_MEMORY_MAX_SIDE

    splits = None
    if fit_in_memory(1 if first.shape[-1] <= 2 else 3):  # gray with alpha is gray
        splits = [
            _decode_all(paths, labels, (height, width), split_dir)
            for paths, labels, split_dir in reads
        ]
        # Gray only when every image is: one gray image does not make a color set gray.
        if any(split.images.shape[-1] == 3 for split in splits):
            splits = [_as_rgb(split) for split in splits]
            if not fit_in_memory(3):  # a color set whose first image is gray
                splits = None
    if splits is None:  # read from their files as RGB, as training needs them
        splits = [
            Split(len(paths), labels=labels, paths=np.asarray(paths, dtype=object))
            for paths, labels, _ in reads
        ]
    *train, test = splits
    return (train[0] if train else None), test, test_classes, source


def _is_gray(images):
    """Whether RGB `images` are all gray: their three channels equal (a gray file, or a color
    one without color)."""
    return np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(
        images[..., 0], images[..., 2]
    )


def _as_rgb(split):
    """An in-memory split with RGB images, gray ones repeated into it."""
    if split.images.shape[-1] == 3:
        return split
    return dataclasses.replace(split, images=np.repeat(split.images, 3, -1))


def _decode_file(path):
    try:
        return _decode_own_channels(tf.io.read_file(path), may_be_bmp(path)).numpy()
    except tf.errors.OpError as error:
        raise DataError(_unreadable_image_message(path, error)) from None


def _unreadable_image_message(path, error):
    """The sentence naming image file `path` and why TensorFlow could not read it (`error`)."""
    # TensorFlow's message opens with the op's internal name in braces: keep its reason (an
    # assertion's first line, not the values it compared).
    reason = error.message.split("}}")[-1].split("[Op:")[0].strip().partition("\n")[0]
    if isinstance(error, tf.errors.NotFoundError):
        return f"Image file {path!r} no longer exists."
    if isinstance(error, tf.errors.InvalidArgumentError):
        return (
            f"{path!r} is not an image that can be decoded (JPEG, PNG, BMP, GIF or WebP): {reason}"
        )
    return f"Image file {path!r} cannot be read: {reason}"


def _first_unreadable_image(paths):
    """The message of the first of `paths` that cannot be decoded; None if all can."""
    for path in paths:
        try:
            decode_image_file(path)
        except tf.errors.OpError as error:
            return _unreadable_image_message(path, error)
    return None


def name_unreadable_image(error, paths, advice=""):
    """Raises a DataError naming the file behind `error`, TensorFlow's error from reading `paths`.

    A pipeline's read error names none of its files: decoding the files it
    may have come from (a batch), one by one, finds it. Returns when `paths`
    is None (no files were read) or all of them can be decoded (the error was
    another), for the caller to raise `error` itself.
    """
    problem = _first_unreadable_image(paths) if paths is not None else None
    if problem:
        raise DataError(f"{problem} {advice}".rstrip()) from error


def _decode_all(paths, labels, size, split_dir):
    """Decodes image files of `size` (height, width) in parallel into one uint8 array, gray
    (1 channel) when every image is (`_is_gray`), else RGB; names a bad file."""

    palette_bmps = any_may_be_bmp(paths)
    shape = (*size, 3)

    def decode(path):
        return tf.ensure_shape(decode_image_file(path, 3, palette_bmps), shape)

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE
    )
    batches, gray = [], True
    try:
        with Progress(f"Decoding {split_dir}", len(paths)) as progress:
            for batch in dataset.batch(1024).as_numpy_iterator():
                if gray and not _is_gray(batch):  # the first color image: RGB from here
                    gray, batches = False, [np.repeat(b, 3, -1) for b in batches]
                batches.append(batch[..., :1].copy() if gray else batch)  # a gray set's bytes
                progress.add(len(batch))
        images = np.concatenate(batches)
    except tf.errors.OpError:
        # Find and name the file at fault (rare path: decode one by one).
        for path in paths:
            size = _decode_file(path).shape[:2]  # any channels are converted
            if size != shape[:2]:
                raise DataError(
                    f"Image {path!r} is {size[0]}x{size[1]} pixels; the other images are "
                    f"{shape[0]}x{shape[1]}."
                ) from None
        raise
    return Split(len(paths), images, labels)


def _load_cifar(folder, binary, test_only=False):
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
        names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
        test_names = ["test"] if hundred else ["test_batch"]
        label_key = b"fine_labels" if hundred else b"labels"

        def read(name):
            path = os.path.join(folder, name)
            batch = _unpickle_cifar(path)
            try:
                return np.asarray(batch[b"data"], np.uint8), np.asarray(batch[label_key], np.int32)
            except Exception as error:
                raise DataError(f"Cannot read CIFAR batch file {path!r}: {error}") from None

        meta_path = os.path.join(folder, "meta" if hundred else "batches.meta")
        key = b"fine_label_names" if hundred else b"label_names"
        try:
            class_names = [n.decode() for n in _unpickle_cifar(meta_path)[key]]
        except (KeyError, TypeError, AttributeError) as error:
            raise DataError(f"CIFAR meta file {meta_path!r} has no class names: {error}") from None

    def split(file_names):
        parts = []
        with Progress(f"Reading CIFAR batches in {folder}", len(file_names), "files") as progress:
            for name in file_names:
                parts.append(read(name))
                progress.add(1)
        pixels = np.concatenate([p[0] for p in parts])
        images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # stored channels-first
        return Split(
            len(images), np.ascontiguousarray(images), np.concatenate([p[1] for p in parts])
        )

    train = None if test_only else split(names)
    return train, split(test_names), class_names, f"cifar batches {folder}"


# What a CIFAR python batch may refer to: numpy's array and dtype reconstructors (the
# names numpy 1 and 2 write, old and new pickle protocols) and `_codecs.encode`, which
# protocol 2 uses for Python 3 bytes. Dicts, lists, strings and numbers need no lookup.
_CIFAR_PICKLE_GLOBALS = {
    (module, name)
    for prefix in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{prefix}.multiarray", "_reconstruct"),
        (f"{prefix}.numeric", "_frombuffer"),
    )
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what CIFAR's python batches hold."""

    def find_class(self, module, name):
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, and CIFAR batches hold only dicts, lists, "
                "bytes, numbers and numpy arrays"
            )
        return super().find_class(module, name)


def _unpickle_cifar(path):
    """A CIFAR python batch or meta file's dict, read without running code from it."""
    if not os.path.isfile(path):
        raise DataError(f"Missing CIFAR file {path!r}.")
    try:
        with open(path, "rb") as f:
            value = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as error:
        raise DataError(f"Cannot read CIFAR batch file {path!r}: {error}.") from None
    if not isinstance(value, dict):
        raise DataError(
            f"Cannot read CIFAR batch file {path!r}: it holds a {type(value).__name__}, not a dict."
        )
    return value


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


def _load_idx(folder, test_only=False):
    def split(prefix):
        images_path = _idx_path(folder, f"{prefix}-images-idx3-ubyte")
        labels_path = _idx_path(folder, f"{prefix}-labels-idx1-ubyte")
        if not images_path or not labels_path:
            raise DataError(f"Missing IDX files {prefix}-images/labels in {folder!r}.")
        images, labels = _read_idx(images_path), _read_idx(labels_path).astype(np.int32)
        if len(images) != len(labels):
            raise DataError(
                f"{images_path!r} has {len(images)} images but {labels_path!r} "
                f"has {len(labels)} labels."
            )
        return Split(len(images), images[..., None], labels)

    train, test = None if test_only else split("train"), split("t10k")
    num_classes = int(max(test.labels.max(), -1 if test_only else train.labels.max())) + 1
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
        return Split(
            n,
            rng.randint(0, 256, (n, *SYNTHETIC_SHAPE), dtype=np.uint8),
            rng.randint(0, SYNTHETIC_CLASSES, n).astype(np.int32),
        )

    train, test = split(SYNTHETIC_EXAMPLES[0]), split(SYNTHETIC_EXAMPLES[1])
    return train, test, [f"class_{i}" for i in range(SYNTHETIC_CLASSES)], "synthetic"


def _load_tfds(name, tfds_data_dir, test_only=False):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=tfds_data_dir)
    except Exception as error:
        raise DataError(
            f"Unknown dataset {name!r}: {error}. Use a TFDS name, 'digits', "
            "'synthetic', or a local copy with --data-dir."
        ) from None
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
    if name in STREAMED_TFDS or None in shape or shape[0] > IN_MEMORY_MAX_SIDE:

        def stream_of(split_name):
            return lambda: builder.as_dataset(
                split=split_name, as_supervised=True, shuffle_files=False
            )

        train = (
            None if test_only else Split(splits["train"].num_examples, stream=stream_of("train"))
        )
        test = Split(splits[test_name].num_examples, stream=stream_of(test_name))
    else:

        def arrays(split_name):
            dataset = builder.as_dataset(split=split_name, as_supervised=True, shuffle_files=False)
            batches = []
            total = splits[split_name].num_examples if split_name in splits else None
            with Progress(f"Reading TFDS {name} {split_name}", total) as progress:
                for batch in dataset.batch(1024).as_numpy_iterator():
                    batches.append(batch)
                    progress.add(len(batch[1]))
            images = np.concatenate([b[0] for b in batches]).astype(np.uint8)
            labels = np.concatenate([b[1] for b in batches]).astype(np.int32)
            return Split(len(labels), images, labels)

        train, test = None if test_only else arrays("train"), arrays(test_name)
    return train, test, list(label.names), f"tfds {name}"
