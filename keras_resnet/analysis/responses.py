"""Fig. 7 of He et al. (2015): the standard deviations of the layers' responses.

The response of a 3x3 convolution is its output after its batch
normalization and before the addition and the ReLU. Its standard deviation
is taken per channel over all images and positions of the test set, then
averaged over the channels of the layer; the paper plots these in layer
order and sorted by magnitude, for plain and residual nets.

    model = keras_resnet.ResNet(20, stem="cifar", input_shape=(32, 32, 3), classes=10)
    layer_responses(model, dataset)   # [("conv1_bn", 0.71), ("conv2_block1_1_bn", 0.68), ...]
"""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_resnet import data as data_lib
from keras_resnet import evaluation, model_files
from keras_resnet.analysis import reports


def response_layers(model):
    """The batch normalizations that follow the 3x3 convolutions, in order.

    Relies on the fixed layer names: `<unit>_conv` is followed by `<unit>_bn`.

    Args:
        model: a keras_resnet model.

    Returns:
        list of `keras.layers.BatchNormalization`.

    Raises:
        ValueError: when a 3x3 convolution has no batch normalization of its
            name, or the model has no 3x3 convolution.
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (3, 3):
            unit = layer.name.removesuffix("_conv")
            try:
                found.append(model.get_layer(f"{unit}_bn"))
            except ValueError:
                raise ValueError(
                    f"Model {model.name!r}: no batch normalization named {unit}_bn "
                    f"after the 3x3 convolution {layer.name!r}; layer responses "
                    "need a keras_resnet model."
                ) from None
    if not found:
        raise ValueError(f"Model {model.name!r} has no 3x3 convolutions.")
    return found


def layer_responses(model, dataset):
    """Std of each 3x3 layer's response (after BN, before add/ReLU) over `dataset`.

    Args:
        model: a keras_resnet model (raw pixels in).
        dataset: `tf.data.Dataset` of (images, labels) batches.

    Returns:
        list of (layer name, std): per-channel standard deviation over all
        images and positions, averaged over the layer's channels.

    Raises:
        ValueError: for an empty dataset, or a model `response_layers` refuses.
    """
    layers = response_layers(model)
    probe = keras.Model(model.inputs, [layer.output for layer in layers])

    @tf.function
    def batch_moments(images):
        outputs = probe(tf.cast(images, tf.float32), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        moments = []
        for output in outputs:
            output = tf.cast(output, tf.float32)
            moments.append(
                (tf.reduce_sum(output, [0, 1, 2]), tf.reduce_sum(tf.square(output), [0, 1, 2]))
            )
        return moments

    sums = squares = None
    num_images = 0
    for images, _ in dataset:
        moments = [
            (a.numpy().astype(np.float64), b.numpy().astype(np.float64))
            for a, b in batch_moments(images)
        ]
        if sums is None:
            sums, squares = [a for a, _ in moments], [b for _, b in moments]
        else:
            sums = [total + a for total, (a, _) in zip(sums, moments)]
            squares = [total + b for total, (_, b) in zip(squares, moments)]
        num_images += int(images.shape[0])
    if not num_images:
        raise ValueError("The dataset is empty.")
    result = []
    for layer, total, total_sq in zip(layers, sums, squares):
        height, width = layer.output.shape[1:3]
        n = num_images * height * width
        variance = np.maximum(total_sq / n - (total / n) ** 2, 0.0)
        result.append((layer.name, float(np.sqrt(variance).mean())))
    return result


def response_rows(label, responses):
    """`layer_responses`'s list as `reports.RESPONSES` rows.

    Args:
        label: the model's name in the table (`ResNet-20`).
        responses: list of (layer name, std), in layer order.

    Returns:
        list of dicts: model, layer index (from 1) and name, std, and rank by
        std (1 for the largest).
    """
    ranked = sorted((std for _, std in responses), reverse=True)
    return [
        {"model": label, "layer_index": i, "layer": name, "std": std, "rank": ranked.index(std) + 1}
        for i, (name, std) in enumerate(responses, start=1)
    ]


def load_models(model_paths):
    """{path: Keras model} of run directories or `.keras` files; a file that cannot be read
    stops with a `ValueError` naming it."""
    return {path: model_files.load_model(path, saved_model=False).model for path in model_paths}


def layer_response_analysis(
    model_paths, data, output_dir="runs/layer-responses", batch_size=256, log=print
):
    """Fig. 7 for trained models: measures them, writes `layer_responses.csv` and its PNG.

    Args:
        model_paths: run directories or `.keras` files, or a dict of such a
            path to its model as `model_files.load_model` read it.
        data: the `Data` whose test split is measured.
        output_dir: where the CSV and the PNG go. Default: `runs/layer-responses`.
        batch_size: images per batch. Default: 256.
        log: function taking one line of progress text.

    Returns:
        dict with `responses` ({label: [(layer, std), ...]}) and the paths
        written, `csv` and `png`.

    Raises:
        ValueError: for a model that cannot be read, or whose classes or
            input do not fit `data`.
    """
    if not isinstance(model_paths, dict):
        model_paths = load_models(model_paths)
    # Each model with the test images in its channels: a gray set measures an RGB model, say.
    models = [
        (path, model, data_lib.with_channels(data, model.input_shape[-1]))
        for path, model in model_paths.items()
    ]
    for _, model, its_data in models:
        evaluation.check_compatible(evaluation.classifier_from_model(model), its_data)
    labels = [reports.display_name(model.name) for _, model, _ in models]
    measured = {}
    for (path, model, its_data), label in zip(models, labels):
        if labels.count(label) > 1:
            label = f"{label} ({path})"
        test_images = data_lib.eval_dataset(its_data, its_data.test, batch_size)
        measured[label] = layer_responses(model, test_images)
        stds = [std for _, std in measured[label]]
        log(
            f"{label}: {len(stds)} 3x3 layers, response std mean {np.mean(stds):.3f}, "
            f"max {max(stds):.3f}"
        )
    rows = [row for label, values in measured.items() for row in response_rows(label, values)]
    csv_path = reports.RESPONSES.write(output_dir, rows)
    png_path = os.path.join(output_dir, "layer_responses.png")
    reports.draw_layer_responses(rows, png_path)
    log(f"Wrote {csv_path} and {png_path}")
    return {"responses": measured, "csv": csv_path, "png": png_path}
