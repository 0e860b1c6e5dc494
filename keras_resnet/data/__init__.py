"""Datasets: where images come from (`sources`), how they are prepared
(`preprocessing`) and the tf.data pipelines over them (`datasets`).

    data = keras_resnet.data.load_data("cifar10", data_dir=".data")
    data.preprocessing          # Preprocessing(kind="cifar", flip=True, image_size=None)
    keras_resnet.data.train_dataset(data, batch_size=128, seed=0)
"""

from keras_resnet.data.datasets import (
    Data,
    eval_dataset,
    load_data,
    load_test_data,
    ten_crop_dataset,
    train_dataset,
    training_files,
    with_channels,
)
from keras_resnet.data.preprocessing import PIXEL_SCALE, Preprocessing
from keras_resnet.data.sources import (
    DataError,
    Split,
    decode_image,
    name_unreadable_image,
    read_source,
)
