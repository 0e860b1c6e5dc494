"""A loaded dataset (`Data`) and its tf.data pipelines."""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_resnet.data.preprocessing import Preprocessing
from keras_resnet.data.sources import (
    DataError,
    Split,
    any_may_be_bmp,
    convert_channels,
    decode_image_file,
    fingerprint,
    read_source,
)


@dataclasses.dataclass
class Data:
    """A loaded dataset.

    Attributes:
        name: dataset name.
        source: where it came from (`"folder /path"`, `"tfds cifar10"`, ...).
        class_names: list of class names in label order.
        image_shape: (height, width, channels) the model takes.
        train, validation, test: `Split`s; `validation` is None without
            `validation_split`, `train` is None for test data alone
            (`load_test_data`).
        preprocessing: the `Preprocessing` of this dataset.
        mean: array the model subtracts from the pixels: per-pixel
            (H, W, C) for `"cifar"` preprocessing, per-channel (C,) for `"imagenet"`.
        fingerprint: `sources.fingerprint` of the source's training and test
            images, before any hold-out or subset; None for images read from
            their files or a stream, and for synthetic images.
    """

    name: str
    source: str
    class_names: list
    image_shape: tuple
    train: Split
    validation: Split
    test: Split
    preprocessing: Preprocessing
    mean: np.ndarray = None
    fingerprint: str = None

    @property
    def validation_or_test(self):
        """The split a run is tested on after each epoch: the held-out one, else the test split."""
        return self.validation or self.test

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
            "preprocessing": self.preprocessing.describe(),
            "fingerprint": self.fingerprint,
        }


def load_data(
    name,
    data_dir=None,
    tfds_data_dir=None,
    image_size=224,
    validation_split=0,
    train_subset=None,
    seed=0,
):
    """Loads a dataset, chooses its preprocessing and computes its training mean.

    Args:
        name: dataset name: a TFDS name, `"digits"` or `"synthetic"`. With
            `data_dir`, the name labels the local copy.
        data_dir: optional local copy (class folders, CIFAR batches or IDX files).
        tfds_data_dir: optional TFDS data directory.
        image_size: crop size for large-image (ImageNet-style) datasets.
        validation_split: training examples held out for validation: a count
            (5000 gives the paper's 45k/5k CIFAR split) or a fraction in (0, 1).
            0 for none.
        train_subset: optional int, keep N training examples: the first N of a
            fixed random permutation (class-sorted sources stay balanced).
        seed: seed of the validation hold-out (and of synthetic images).

    Returns:
        A `Data`.

    Raises:
        DataError: for a missing, empty, corrupt or inconsistent source.
    """
    train, test, class_names, source = read_source(name, data_dir, tfds_data_dir, seed)
    # Synthetic images are drawn from the seed: a second seed's run is a second run, not other data.
    digest = None if source == "synthetic" else fingerprint(train, test)
    if train_subset is not None:
        if train_subset < 1:
            raise DataError(f"train_subset must be a positive int, received {train_subset!r}.")
        train = _take(train, min(train_subset, train.num_examples))
    train, validation = _hold_out(train, validation_split, seed)
    preprocessing, image_shape = _preprocessing(name, train, image_size)
    return Data(
        name,
        source,
        list(class_names),
        image_shape,
        train,
        validation,
        test,
        preprocessing,
        preprocessing.training_mean(train),
        digest,
    )


def load_test_data(name, data_dir=None, tfds_data_dir=None, image_size=224):
    """The test split alone, for evaluation: `Data` with no training split and no mean.

    A folder with only `test/<class>/` works, and the training images are
    neither read nor decoded. Arguments as `load_data`'s.
    """
    _, test, class_names, source = read_source(name, data_dir, tfds_data_dir, test_only=True)
    preprocessing, image_shape = _preprocessing(name, test, image_size)
    return Data(name, source, list(class_names), image_shape, None, None, test, preprocessing)


def with_channels(data, channels):
    """`data` with images of `channels` channels, as pretrained weights or a model take them.

    Gray is repeated into RGB, color made gray by PIL's luma
    (`sources.convert_channels`). So RGB weights fine-tune on a gray dataset,
    and a gray dataset tests an RGB model.

    Args:
        data: a `Data`.
        channels: 1, 3 or 4.

    Returns:
        `data` itself when its images have `channels` already, else a `Data`
        with converted in-memory splits and their training mean.

    Raises:
        ValueError: for images read from their files or a stream (always RGB)
            that are to be converted.
    """
    if channels not in (1, 3, 4):
        raise ValueError(f"Images have 1, 3 or 4 channels; the model takes {channels}.")
    if data.image_shape[-1] == channels:
        return data
    names = [name for name in ("train", "validation", "test") if getattr(data, name) is not None]
    if any(getattr(data, name).images is None for name in names):
        raise ValueError(
            f"The model or weights take images of {channels} channel(s); {data.name}'s images "
            "are read as RGB from their files or a stream, as they are needed."
        )
    converted = {
        name: dataclasses.replace(
            getattr(data, name), images=convert_channels(getattr(data, name).images, channels)
        )
        for name in names
    }
    mean = data.mean
    if mean is not None:
        mean = data.preprocessing.training_mean(converted["train"])
    return dataclasses.replace(
        data, image_shape=(*data.image_shape[:2], channels), mean=mean, **converted
    )


def _preprocessing(name, split, image_size):
    """The dataset's `Preprocessing` and the image shape the model takes, from one split."""
    in_memory = split.images is not None
    preprocessing = Preprocessing.for_dataset(name, in_memory, image_size)
    image_shape = tuple(split.images.shape[1:]) if in_memory else (image_size, image_size, 3)
    return preprocessing, image_shape


def _take(split, n):
    """The first n of a fixed permutation, kept in source order (a TFDS stream's
    first n after a seeded shuffle)."""
    if split.indexable:
        return split.sample(n)
    stream = split.stream
    return Split(
        n, stream=lambda: stream().shuffle(10_000, seed=0, reshuffle_each_iteration=False).take(n)
    )


def _hold_out(train, validation_split, seed):
    """(training split, validation split or None): a seeded hold-out of the training split."""
    if 0 < validation_split < 1:
        validation_split = max(1, round(validation_split * train.num_examples))
    validation_split = int(validation_split)
    if not validation_split:
        return train, None
    if not 0 < validation_split < train.num_examples:
        raise DataError(
            f"validation_split={validation_split} must be between 1 and the "
            f"{train.num_examples - 1} training examples less one."
        )
    if not train.indexable:
        raise DataError(
            "validation_split needs training examples in memory or in files of their own; "
            "this TFDS dataset streams (use a local copy with --data-dir)."
        )
    order = np.random.RandomState(seed).permutation(train.num_examples)
    held, kept = np.sort(order[:validation_split]), np.sort(order[validation_split:])
    return train.subset(kept), train.subset(held)


def train_dataset(data, batch_size, seed, start_step=0, input_context=None):
    """Shuffled, augmented, batched training pipeline of (uint8 images, labels).

    Runs with the same seed see the same batches, crops and flips. The stream
    repeats forever: the trainer's `steps_per_epoch` says where an epoch ends,
    so an epoch need not be one pass over the data. A training set whose
    examples can be read one by one (CIFAR batches, IDX files, class folders,
    in memory or from their files) is a stream that is a function of `seed`
    and the step alone: each pass over all of it is shuffled and augmented
    with seeds of its own drawn from (`seed`, pass), so a run resumed at
    `start_step` trains on exactly the batches it would have had it not
    stopped. A TFDS dataset too large for memory (ImageNet) streams in its
    record order: it is shuffled in a buffer of 10,000 examples and starts
    its order again on a resume.

    Args:
        data: a `Data` with a training split.
        batch_size: examples per batch; a cluster's global batch.
        seed: the seed of the shuffles and of the augmentation.
        start_step: batches already trained: an indexable stream starts after them.
        input_context: a `tf.distribute.InputContext`, for
            `strategy.distribute_datasets_from_function`: the pipeline of one
            worker of a cluster, in per-replica batches. Of an indexable
            split each worker takes its slice of every global batch before
            anything is read, so each image file is decoded by one worker
            alone; of a TFDS stream every worker decodes every example (TFDS
            decodes as it reads) and keeps its share.
    """
    workers, worker, replica_batch = 1, 0, batch_size
    if input_context is not None:
        workers, worker = input_context.num_input_pipelines, input_context.input_pipeline_id
        replica_batch = input_context.get_per_replica_batch_size(batch_size)
    split = data.train
    if not split.indexable:
        examples = split.dataset().shuffle(10_000, seed=seed).repeat()
        randoms = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((examples, randoms))
        if workers > 1:  # same records, same seed: every worker shuffles alike, keeps its own
            dataset = dataset.shard(workers, worker)

        def augment(example, random):
            return data.preprocessing.augment(example[0], random), example[1]

    else:
        dataset = _indexed_stream(split, seed, start_step * batch_size)
        if workers > 1:  # worker i keeps the i-th slice of each global batch
            share = batch_size // workers
            dataset = dataset.batch(share, drop_remainder=True).shard(workers, worker).unbatch()
        labels = tf.constant(split.labels)
        if split.images is not None:
            images = tf.constant(split.images)

            def read(index):
                return tf.gather(images, index)

        else:
            paths, palette_bmps = tf.constant(split.paths), any_may_be_bmp(split.paths)

            def read(index):
                return decode_image_file(tf.gather(paths, index), 3, palette_bmps)

        def augment(index, random):
            return data.preprocessing.augment(read(index), random), labels[index]

    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(replica_batch, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _indexed_stream(split, seed, start):
    """(example index, 2 random int64s) pairs, pass after pass, from the `start`-th on.

    Stateless: pass `p`'s order and randoms come from the seed (`seed`, `p`)
    alone, so the stream can start anywhere without producing what comes before.
    """
    count = split.num_examples
    first_pass, skipped = divmod(start, count)

    def one_pass(index):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), index]), 2
        )
        order_seed, random_seed = seeds[0], seeds[1]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=order_seed
        )
        randoms = tf.random.stateless_uniform(
            [count, 2], seed=random_seed, minval=None, maxval=None, dtype=tf.int64
        )
        pairs = tf.data.Dataset.from_tensor_slices((order, randoms))
        return pairs.skip(tf.where(index == first_pass, tf.constant(skipped, tf.int64), 0))

    return tf.data.Dataset.range(first_pass, 2**62).flat_map(one_pass)


def training_files(data, batch_size, seed, step, steps=1):
    """The image files training batches `step` to `step + steps - 1` read, in order.

    The stream is stateless (`_indexed_stream`), so a batch's files can be
    named long after it was read: where to look when a file cannot be.
    Only for a training split read from its files.
    """
    pairs = _indexed_stream(data.train, seed, step * batch_size).take(steps * batch_size)
    return data.train.paths[[int(index) for index, _ in pairs.as_numpy_iterator()]]


def eval_dataset(data, split, batch_size, multi_worker=False):
    """Batched evaluation pipeline of `split` with the test-time preprocessing."""
    dataset = split.dataset()
    if data.preprocessing.kind != "cifar":  # the CIFAR test map is the identity: no map at all
        dataset = dataset.map(
            lambda image, label: (data.preprocessing.evaluation_image(image), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.batch(batch_size)
    options = tf.data.Options()
    if multi_worker:
        # Every worker builds the whole test stream and keeps its share of the batches: test
        # files are decoded by every worker (the once-an-epoch cost, left as it is).
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def ten_crop_dataset(data, split, batch_size):
    """Batches of the paper's 10 crops of each image: (batch, 10, h, w, c), labels."""
    dataset = split.dataset().map(
        lambda image, label: (data.preprocessing.ten_crops(image), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.batch(max(1, batch_size // 10)).prefetch(tf.data.AUTOTUNE)
