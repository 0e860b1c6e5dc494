"""SavedModel inference against calling the Keras model directly.

For CIFAR ResNet-20 (32x32) and ResNet-50 (224x224), untrained weights: the
SavedModel that train.py exports (`serving_default`, float pixels in,
probabilities out, loaded with `tf.saved_model.load` as TF Serving loads it)
against `model.predict_on_batch` (Keras's compiled predict function) and the
eager `model(x, training=False)`. Latency at batch 1 is the median of
repeated calls after warm-up; throughput at batch 256 is images per second.
The eager call is not run at batch 256 for ResNet-50: that process was killed
for memory on the 24 GiB machine (an eager functional call holds its
activations).

    python benchmarks/serving.py --output benchmarks/results.md
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import common
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(function, x, calls):
    function(x)  # warm-up: tracing and first allocation
    function(x)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        function(x)
        seconds.append(time.perf_counter() - start)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-calls", type=int, default=50)
    parser.add_argument("--throughput-calls", type=int, default=3)
    parser.add_argument("--output")
    args = parser.parse_args()

    # oneDNN on unless the environment says otherwise, as the commands set it; TensorFlow
    # reads the variable once, when it loads.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import keras_resnet
    import tensorflow as tf
    from keras_resnet import export

    rows = [
        "| network | path | batch 1 latency, median (ms) | batch 256 images/s |",
        "|---|---|---:|---:|",
    ]
    for name, build, size in (
        ("ResNet-20", keras_resnet.ResNet20, 32),
        ("ResNet-50", keras_resnet.ResNet50, 224),
    ):
        model = build()
        with tempfile.TemporaryDirectory() as base:
            version = export.export_saved_model(model, base)
            serving = tf.saved_model.load(version).signatures["serving_default"]
            paths = {
                "SavedModel serving_default": lambda x: serving(images=tf.constant(x)),
                "Keras predict_on_batch": model.predict_on_batch,
                "Keras eager model(x)": lambda x: model(x, training=False),
            }
            rng = np.random.default_rng(0)
            one = rng.uniform(0, 255, (1, size, size, 3)).astype("float32")
            many = rng.uniform(0, 255, (256, size, size, 3)).astype("float32")
            for path, function in paths.items():
                latency = 1000 * statistics.median(timed(function, one, args.latency_calls))
                if "eager" in path and size > 32:
                    rate = "not run"
                else:
                    seconds = sum(timed(function, many, args.throughput_calls))
                    rate = f"{256 * args.throughput_calls / seconds:.0f}"
                rows.append(f"| {name} | {path} | {latency:.2f} | {rate} |")
                print(rows[-1], flush=True)
    common.report(
        "Inference: SavedModel against a direct model call",
        f"python benchmarks/serving.py --latency-calls {args.latency_calls} "
        f"--throughput-calls {args.throughput_calls}",
        rows,
        args.output,
    )


if __name__ == "__main__":
    main()
